//! Transformer throughput on real CFPB narratives, the same measurement as
//! `scripts/compare_pytorch.py` makes with PyTorch so the two can be compared:
//! - inference: docs/s end to end (tokenize + forward + argmax) at batch 32, max length 128
//!   (or --batch / --max-length),
//!   over the first N narratives of cfpb-issues-mini, after one untimed warm-up pass;
//! - training: seconds per optimiser step (forward + backward + AdamW) on batches of 32.
//!
//!   cargo bench --bench models -- [--docs N] [--steps K] [--models minilm,smollm2,qwen]
//!   [--batch 32] [--max-length 128] [--modes lora,full] [--skip-inference]
//!   [--gradient-checkpointing]
//!
//! Training rows also carry the memory planner's estimate (`estimate_gib`) of that step, to
//! check it against the process's peak RSS (`/usr/bin/time -v` on a run of one model and one
//! mode with `--skip-inference`). The estimate includes the best-epoch snapshot of the
//! trainable tensors, which this loop does not keep.
//!
//! Models come from the offline mirror (`$CLSBENCH_MODEL_DIR` or ~/.cache/model-mirror);
//! data from `$CLSBENCH_CFPB_CSV` or `../shared/data/cfpb-issues-mini/complaints.csv` from the repository root.
//! Prints one JSON object per line.

use candle_core::{DType, Device};
use clsbench::classifier::TextClassifier;
use clsbench::models::params::{LoraSettings, Mode, ParamBuilder, Source};
use clsbench::models::text::TextEncoder;
use clsbench::models::{build_classifier, loader, TransformerClassifier};
use clsbench::train::plan::TrainMethod;
use clsbench::train::{loss, memory, optim::GroupedAdamW};
use std::path::PathBuf;
use std::time::Instant;

// The same allocator as the `clsbench` binary, so the bench measures what users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const N_CLASSES: usize = 43;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn texts(n: usize) -> Vec<String> {
    let path = std::env::var("CLSBENCH_CFPB_CSV").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/cfpb-issues-mini/complaints.csv"
        )
        .into()
    });
    let mut r = csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let col = r
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "narrative")
        .expect("narrative column");
    r.records().take(n).map(|rec| rec.unwrap()[col].to_string()).collect()
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn main() {
    let n_docs: usize = arg("--docs").map_or(256, |v| v.parse().unwrap());
    let n_steps: usize = arg("--steps").map_or(3, |v| v.parse().unwrap());
    let wanted = arg("--models").unwrap_or_else(|| "minilm,smollm2".into());
    let batch: usize = arg("--batch").map_or(32, |v| v.parse().unwrap());
    let max_length: usize = arg("--max-length").map_or(128, |v| v.parse().unwrap());
    let wanted_modes = arg("--modes").unwrap_or_else(|| "lora,full".into());
    let skip_inference = flag("--skip-inference");
    let checkpointing = flag("--gradient-checkpointing");
    let mirror = std::env::var_os("CLSBENCH_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/model-mirror"));
    let docs = texts(n_docs);
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let all = [
        ("minilm", "all-MiniLM-L6-v2", vec!["query", "key", "value", "dense"]),
        (
            "smollm2",
            "SmolLM2-135M-Instruct",
            vec!["q_proj", "k_proj", "v_proj", "o_proj"],
        ),
        (
            "qwen",
            "Qwen2.5-Coder-0.5B-Instruct",
            vec!["q_proj", "k_proj", "v_proj", "o_proj"],
        ),
    ];
    for (key, dir_name, targets) in all.iter().filter(|m| wanted.split(',').any(|w| w == m.0)) {
        let dir = mirror.join(dir_name);
        if !dir.join("config.json").is_file() {
            eprintln!("SKIPPED {key}: {} not found (run fetch-models.sh)", dir.display());
            continue;
        }
        let files = loader::from_dir(&dir).unwrap();
        let config = files.read_config().unwrap();
        let device = Device::Cpu;

        // Inference: fused ops, random 43-class head (throughput does not depend on its values).
        if !skip_inference {
            let weights = loader::Weights::open(&files.weights).unwrap();
            let p = ParamBuilder::new(
                Source::Checkpoint(weights),
                Mode::Inference { lora: None },
                DType::F32,
                device.clone(),
                0,
            );
            let (model, _) = build_classifier(&config, p, N_CLASSES, None).unwrap();
            let encoder = TextEncoder::load(&files, &config, Some(max_length), true).unwrap();
            let clf = TransformerClassifier::new(model, encoder, device.clone(), batch);
            clf.predict(&refs[..batch.min(refs.len())]).unwrap();
            let t = Instant::now();
            let preds = clf.predict(&refs).unwrap();
            let secs = t.elapsed().as_secs_f64();
            assert_eq!(preds.len(), refs.len());
            println!(
                "{}",
                serde_json::json!({"model": key, "what": "inference", "docs": refs.len(), "batch": batch,
                               "seconds": secs, "docs_per_second": refs.len() as f64 / secs})
            );
            drop(clf);
        }
        if n_steps == 0 {
            continue;
        }

        // Training: LoRA r16 on the attention projections (and full fine-tune for MiniLM).
        let mut modes = vec![(
            "lora",
            Mode::Lora(LoraSettings {
                r: 16,
                alpha: 32.0,
                dropout: 0.05,
                targets: targets.iter().map(|s| s.to_string()).collect(),
            }),
        )];
        if *key == "minilm" {
            modes.push(("full", Mode::Full));
        }
        for (mode_name, mode) in modes.into_iter().filter(|m| wanted_modes.split(',').any(|w| w == m.0)) {
            let lora = match &mode {
                Mode::Lora(l) => Some(l.clone()),
                _ => None,
            };
            let weights = loader::Weights::open(&files.weights).unwrap();
            let p = ParamBuilder::new(Source::Checkpoint(weights), mode, DType::F32, device.clone(), 0)
                .with_gradient_checkpointing(checkpointing);
            let recompute = p.recompute();
            let (model, params) = build_classifier(&config, p, N_CLASSES, None).unwrap();
            let estimate = memory::estimate(
                &memory::PlanInput {
                    config: &config,
                    method: if lora.is_some() {
                        TrainMethod::Lora
                    } else {
                        TrainMethod::Full
                    },
                    lora: lora.as_ref(),
                    dtype: DType::F32,
                    fused_ops: clsbench::models::layers::trains_fused(&device, DType::F32),
                    total_params: params.total_params(),
                    trainable_params: params.trainable_params(),
                    seq_len: max_length,
                    gradient_checkpointing: checkpointing,
                    grad_accumulation: 1,
                    // As `clsbench run` plans it on the CPU: the checkpoint stays mapped
                    // while it is copied.
                    mapped_checkpoint_bytes: device.is_cpu().then(|| {
                        loader::stored_tensors(&files.weights)
                            .unwrap()
                            .mapped_bytes(params.total_params())
                    }),
                },
                batch,
            );
            let encoder = TextEncoder::load(&files, &config, Some(max_length), true).unwrap();
            let mut opt = GroupedAdamW::new(&params.trainable, 1e-4, 0.01, false).unwrap();
            let ids = encoder.encode(&refs[..batch.min(refs.len())]).unwrap();
            let seqs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
            let padded = encoder.pad(&seqs, 8, &device).unwrap();
            let labels: Vec<usize> = (0..seqs.len()).map(|i| i % N_CLASSES).collect();
            let mut times = Vec::new();
            for i in 0..=n_steps {
                let t = Instant::now();
                let logits = model.forward(&padded.input_ids, &padded.attention_mask, true).unwrap();
                let l = loss::cross_entropy(&logits, &labels, None).unwrap();
                let mut grads = l.backward().unwrap();
                if let Some(r) = &recompute {
                    r.merge_into(&mut grads).unwrap();
                }
                opt.accumulate(&grads).unwrap();
                drop(grads);
                opt.step(1e-4, Some(1.0)).unwrap();
                if i > 0 {
                    times.push(t.elapsed().as_secs_f64());
                }
            }
            times.sort_by(f64::total_cmp);
            println!(
                "{}",
                serde_json::json!({"model": key, "what": format!("train-step-{mode_name}"), "batch": batch,
                                   "seq_len": padded.input_ids.dim(1).unwrap(), "steps": times.len(),
                                   "median_seconds_per_step": times[times.len() / 2],
                                   "gradient_checkpointing": checkpointing,
                                   "estimate_gib": estimate.total_gib(), "estimate": estimate.describe()})
            );
        }
    }
}
