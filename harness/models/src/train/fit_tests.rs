//! End-to-end tests of `fit_transformer` / `load_trained` on tiny random checkpoints written to
//! a temporary directory in Hugging Face layout (config.json, model.safetensors, a word-level
//! tokenizer.json), on a synthetic task whose label is a keyword in the text.

use super::*;
use crate::data::Example;
use crate::device::{DeviceRequest, ResolvedDevice};
use crate::params::LoraSettings;
use crate::params::{Mode, ParamBuilder, Source};
use crate::precision::DTypeRequest;
use plan::{Method, Warmup};
use rand::{Rng, SeedableRng};

fn cpu() -> ResolvedDevice {
    ResolvedDevice::cpu(DeviceRequest::Cpu)
}

const WORDS: [&str; 20] = [
    "alpha", "beta", "gamma", "the", "a", "fee", "card", "bank", "loan", "late", "paid", "account", "report", "credit",
    "charge", "money", "month", "told", "call", "again",
];

fn tokenizer_json(with_cls_sep: bool) -> serde_json::Value {
    let mut vocab = serde_json::Map::new();
    for (i, t) in ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]
        .iter()
        .chain(WORDS.iter())
        .enumerate()
    {
        vocab.insert(t.to_string(), i.into());
    }
    let special = |t: &str, id: u32| serde_json::json!({"id": t, "ids": [id], "tokens": [t]});
    let post = if with_cls_sep {
        serde_json::json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {"[CLS]": special("[CLS]", 1), "[SEP]": special("[SEP]", 2)}
        })
    } else {
        serde_json::Value::Null
    };
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": post, "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    })
}

/// A tiny random checkpoint of `config_json` in `dir` (backbone only, as a Hub base model).
fn write_tiny_model(dir: &Path, config_json: &str, encoder: bool) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config_json).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tokenizer_json(encoder).to_string()).unwrap();
    let config = ModelConfig::parse(config_json, Path::new("config.json")).unwrap();
    let p = ParamBuilder::new(Source::Random, Mode::Full, DType::F32, Device::Cpu, 11);
    let (_, params) = models::build_classifier(&config, p, 2, None).unwrap();
    let tensors: HashMap<String, Tensor> = params
        .trainable
        .iter()
        .filter(|v| !v.name.starts_with("classifier") && !v.name.starts_with("score"))
        .map(|v| (v.name.clone(), v.var.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
}

fn keyword_dataset(n_train: usize, n_val: usize) -> Dataset {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut make = |n: usize, split: &str| -> Vec<Example> {
        (0..n)
            .map(|i| {
                let label = i % 3;
                let mut words: Vec<&str> = (0..rng.gen_range(3..12))
                    .map(|_| WORDS[rng.gen_range(3..WORDS.len())])
                    .collect();
                let at = rng.gen_range(0..=words.len());
                words.insert(at, WORDS[label]);
                Example {
                    id: format!("{split}{i}"),
                    text: words.join(" "),
                    label,
                }
            })
            .collect()
    };
    let train = make(n_train, "t");
    let val = make(n_val, "v");
    Dataset {
        labels: vec!["alpha".into(), "beta".into(), "gamma".into()],
        train,
        val,
        test: vec![],
        inputs: vec![],
    }
}

/// A decoder's plan (`fam` gives another family).
fn spec(dir: &Path, method: Method, lr: f64, epochs: usize) -> TrainPlan {
    TrainPlan {
        family: Family::Decoder,
        checkpoint: dir.display().to_string(),
        local_dir: None,
        method,
        learning_rate: lr,
        epochs,
        early_stopping_patience: None,
        batch_size: 8,
        eval_batch_size: 16,
        max_length: 32,
        weight_decay: 0.01,
        decay_bias_and_norm: false,
        warmup: Warmup::Ratio(0.1),
        grad_clip: Some(1.0),
        grad_accumulation: 1,
        class_weights: ClassWeights::None,
        pooling: None,
        length_bucketing: true,
        dtype: DTypeRequest::F32,
        max_train_examples: None,
        gradient_checkpointing: false,
        max_memory_gb: None,
        quantize: Vec::new(),
    }
}

/// `s` for `family`.
fn fam(s: &TrainPlan, family: Family) -> TrainPlan {
    TrainPlan { family, ..s.clone() }
}

const TINY_BERT: &str = r#"{"model_type": "bert", "vocab_size": 24, "hidden_size": 32, "num_hidden_layers": 2,
    "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64, "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0}"#;
const TINY_QWEN2: &str = r#"{"model_type": "qwen2", "vocab_size": 24, "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": true,
    "eos_token_id": 2}"#;

#[test]
fn training_learns_the_keyword_task_and_reloads_identically() {
    let data = keyword_dataset(120, 30);
    for (config, encoder, family) in [(TINY_BERT, true, Family::Encoder), (TINY_QWEN2, false, Family::Decoder)] {
        let tmp = tempfile::tempdir().unwrap();
        let model_dir = tmp.path().join("base");
        write_tiny_model(&model_dir, config, encoder);
        let targets = if encoder {
            vec!["query", "value"]
        } else {
            vec!["q_proj", "v_proj"]
        };
        let lora = LoraSettings {
            r: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: targets.iter().map(|s| s.to_string()).collect(),
        };
        for (method, lr) in [(Method::Full, 3e-3), (Method::Lora(lora), 1e-2)] {
            let work = tmp.path().join(format!("{:?}", method.kind()));
            let label = format!("{family:?} {:?}", method.kind());
            let s = spec(&model_dir, method, lr, 8);
            let (clf, report) = fit_transformer(&fam(&s, family), &data, 42, &work, &cpu()).unwrap();
            assert_eq!(report.epochs.len(), 8, "{label}");
            assert!(
                report.epochs.last().unwrap().train_loss < report.epochs[0].train_loss,
                "{label}: {report:?}"
            );
            let best = &report.epochs[report.best_epoch - 1];
            assert!(
                best.val_accuracy > 0.9,
                "{label}: the keyword task should be learnt: {:?}",
                report.epochs
            );
            assert!(work.join("trained.json").is_file() && work.join("train_report.json").is_file());
            // The returned classifier is the best epoch's, scoring val as it did in training.
            let texts: Vec<&str> = data.val.iter().map(|e| e.text.as_str()).collect();
            let pred: Vec<usize> = clf.predict(&texts).unwrap().iter().map(|p| p.0).collect();
            let gold: Vec<usize> = data.val.iter().map(|e| e.label).collect();
            assert!(
                (metrics::macro_f1(&gold, &pred, 3).unwrap() - best.val_macro_f1).abs() < 1e-9,
                "{label}"
            );
            // Re-loading from disk gives the same probabilities.
            let again = load_trained(&fam(&s, family), 3, &work, &cpu(), None).unwrap();
            let (p1, p2) = (clf.predict_proba(&texts).unwrap(), again.predict_proba(&texts).unwrap());
            for (a, b) in p1.iter().flatten().zip(p2.iter().flatten()) {
                assert!((a - b).abs() < 1e-5, "{label}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn linear_probe_trains_only_the_head() {
    let data = keyword_dataset(30, 9);
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("base");
    write_tiny_model(&model_dir, TINY_QWEN2, false);
    let (_, report) = fit_transformer(
        &fam(&spec(&model_dir, Method::LinearProbe, 1e-2, 1), Family::Decoder),
        &data,
        1,
        &tmp.path().join("w"),
        &cpu(),
    )
    .unwrap();
    assert_eq!(report.trainable_params, 32 * 3);
}

#[test]
fn divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint() {
    let data = keyword_dataset(48, 9);
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("base");
    write_tiny_model(&model_dir, TINY_QWEN2, false);
    let work = tmp.path().join("w");
    let mut s = spec(&model_dir, Method::Full, 1e30, 3);
    s.grad_clip = None;
    s.warmup = Warmup::Steps(0);
    let err = fit_transformer(&fam(&s, Family::Decoder), &data, 1, &work, &cpu())
        .err()
        .expect("must diverge")
        .to_string();
    assert!(err.contains("diverged at optimizer step"), "{err}");
    let names: Vec<String> = std::fs::read_dir(&work)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
}

/// A NaN weight feeding a fused op (the first RMSNorm) is caught by the divergence guard at
/// the first step, which it names; nothing half-written is left behind.
#[test]
fn nan_reaching_a_fused_op_stops_training_naming_the_step() {
    let data = keyword_dataset(16, 3);
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("base");
    write_tiny_model(&model_dir, TINY_QWEN2, false);
    let file = model_dir.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&file, &Device::Cpu).unwrap();
    let name = "model.layers.0.input_layernorm.weight";
    let w = tensors.get(name).expect("the tiny model has this norm");
    let poisoned = (w.ones_like().unwrap() * f64::NAN).unwrap();
    tensors.insert(name.into(), poisoned);
    candle_core::safetensors::save(&tensors, &file).unwrap();
    let work = tmp.path().join("w");
    let err = fit_transformer(
        &fam(&spec(&model_dir, Method::Full, 1e-3, 1), Family::Decoder),
        &data,
        1,
        &work,
        &cpu(),
    )
    .err()
    .expect("must diverge")
    .to_string();
    assert!(
        err.contains("diverged at optimizer step 0 (epoch 1): loss is NaN"),
        "{err}"
    );
}

#[test]
fn wrong_family_and_missing_files_are_named_errors() {
    let data = keyword_dataset(6, 3);
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("base");
    write_tiny_model(&model_dir, TINY_BERT, true);
    let err = fit_transformer(
        &fam(&spec(&model_dir, Method::Full, 1e-3, 1), Family::Decoder),
        &data,
        1,
        tmp.path(),
        &cpu(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("bert") && err.contains("decoder"), "{err}");
    std::fs::remove_file(model_dir.join("tokenizer.json")).unwrap();
    let err = fit_transformer(
        &fam(&spec(&model_dir, Method::Full, 1e-3, 1), Family::Encoder),
        &data,
        1,
        tmp.path(),
        &cpu(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
}

/// f16 and bf16 on the CPU (slow kernels, same code paths as on a GPU): the keyword task is
/// learnt, the report says which precision ran (compute dtype, f32 master copies, the loss
/// scaler's skipped steps and final scale for f16, none for bf16), skipped steps are steps the
/// schedule did not take, and the trained tensors saved are the f32 master copies.
#[test]
fn half_precision_training_learns_and_records_its_precision() {
    let data = keyword_dataset(120, 30);
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("base");
    write_tiny_model(&model_dir, TINY_QWEN2, false);
    let lora = LoraSettings {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: vec!["q_proj".into(), "v_proj".into()],
    };
    for dtype in ["f16", "bf16"] {
        let work = tmp.path().join(dtype);
        let mut s = spec(&model_dir, Method::Lora(lora.clone()), 1e-2, 8);
        s.dtype = DTypeRequest::parse(dtype).unwrap();
        let (clf, report) = fit_transformer(&fam(&s, Family::Decoder), &data, 42, &work, &cpu()).unwrap();
        let best = &report.epochs[report.best_epoch - 1];
        assert!(best.val_accuracy > 0.9, "{dtype}: {:?}", report.epochs);
        assert_eq!((report.dtype.as_str(), report.device.as_str()), (dtype, "cpu"));
        let p = report.precision.as_ref().unwrap();
        assert_eq!((p.compute_dtype.as_str(), p.master_dtype.as_str()), (dtype, "f32"));
        assert!(p.note.as_deref().unwrap().contains("on the CPU"), "{p:?}");
        let steps_taken: usize = report.epochs.iter().map(|e| e.optimizer_steps).sum();
        match (dtype, &p.loss_scaling) {
            ("f16", Some(ls)) => {
                // No growth within 2000 good steps: the scale only halved, once per skip.
                assert!(report.total_steps < ls.growth_interval);
                assert_eq!(ls.final_scale, ls.initial_scale / 2f64.powi(ls.skipped_steps as i32));
                assert_eq!(steps_taken + ls.skipped_steps, report.total_steps, "{ls:?}");
            }
            ("bf16", None) => assert_eq!(steps_taken, report.total_steps),
            other => panic!("{other:?}"),
        }
        for (name, t) in candle_core::safetensors::load(work.join("adapter_model.safetensors"), &Device::Cpu).unwrap() {
            assert_eq!(t.dtype(), DType::F32, "{dtype}: {name}");
        }
        let texts: Vec<&str> = data.val.iter().map(|e| e.text.as_str()).collect();
        let rows = clf.predict_proba(&texts).unwrap();
        assert!(rows.iter().all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-4));
    }
}

/// The bits of every tensor in a safetensors file, by name.
fn tensor_bits(path: &Path) -> Vec<(String, Vec<u32>)> {
    let mut out: Vec<(String, Vec<u32>)> = candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            let v: Vec<f32> = t
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            (k, v.iter().map(|x| x.to_bits()).collect())
        })
        .collect();
    out.sort();
    out
}

fn proba_bits(clf: &dyn TextClassifier, texts: &[&str]) -> Vec<u32> {
    clf.predict_proba(texts)
        .unwrap()
        .iter()
        .flatten()
        .map(|p| p.to_bits())
        .collect()
}

/// Per epoch: (train loss, val macro F1, val accuracy, optimiser steps), floats as bits.
fn epoch_bits(r: &TrainReport) -> Vec<(usize, u64, u64, u64, usize)> {
    r.epochs
        .iter()
        .map(|e| {
            (
                e.epoch,
                e.train_loss.to_bits(),
                e.val_macro_f1.to_bits(),
                e.val_accuracy.to_bits(),
                e.optimizer_steps,
            )
        })
        .collect()
}

/// TINY_BERT with hidden and attention dropout 0.1 (a dropout stream replayed wrongly shows).
fn tiny_bert_with_dropout() -> String {
    TINY_BERT
        .replace(r#""hidden_dropout_prob": 0.0"#, r#""hidden_dropout_prob": 0.1"#)
        .replace(
            r#""attention_probs_dropout_prob": 0.0"#,
            r#""attention_probs_dropout_prob": 0.1"#,
        )
}

/// Defect: after SIGINT in epoch 5 of 12 the model retrained from epoch 1. Now every epoch is
/// checkpointed (weights, AdamW moments and step, scheduler step, dropout stream, history)
/// and a re-run continues after the last one, ending bit for bit where an uninterrupted run
/// ends. Dropout is on (BERT hidden/attention dropout, LoRA dropout) so that a dropout stream
/// not restored exactly would show.
#[test]
fn interrupted_training_resumes_from_last_epoch_bit_for_bit() {
    let data = keyword_dataset(48, 12);
    let texts: Vec<&str> = data.val.iter().map(|e| e.text.as_str()).collect();
    let bert_dropout = tiny_bert_with_dropout();
    let lora = LoraSettings {
        r: 4,
        alpha: 8.0,
        dropout: 0.1,
        targets: vec!["q_proj".into(), "v_proj".into()],
    };
    let cases = [
        (bert_dropout.as_str(), true, Family::Encoder, Method::Full, 3e-3, "f32"),
        (
            TINY_QWEN2,
            false,
            Family::Decoder,
            Method::Lora(lora.clone()),
            1e-2,
            "f32",
        ),
        // f16: the loss scaler's scale, good-step run and skipped steps must resume too.
        (TINY_QWEN2, false, Family::Decoder, Method::Lora(lora), 1e-2, "f16"),
    ];
    let (epochs, stop_at) = (4, 2);
    for (config, encoder, family, method, lr, dtype) in cases {
        let label = format!("{family:?} {:?} {dtype}", method.kind());
        let tmp = tempfile::tempdir().unwrap();
        let model_dir = tmp.path().join("base");
        write_tiny_model(&model_dir, config, encoder);
        let mut s = spec(&model_dir, method, lr, epochs);
        s.dtype = DTypeRequest::parse(dtype).unwrap();
        // Two micro-batches per step: the step count and the scheduler position differ.
        s.grad_accumulation = 2;
        // f16: a scale that overflows at first (skips) and grows every 3 good steps, so that
        // the scaler's whole state is in play when training resumes.
        let scaler = (dtype == "f16").then(|| loss_scale::LossScaler::new(2f64.powi(40), 2.0, 0.5, 3));
        let keep = FitOptions {
            keep_epoch_checkpoint: true,
            loss_scaler: scaler.clone(),
            ..FitOptions::default()
        };

        let straight = tmp.path().join("straight");
        let (clf_a, rep_a) =
            fit_transformer_with(&fam(&s, family), &data, 42, &straight, &cpu(), &keep, &Quiet).unwrap();
        assert_eq!(rep_a.resumed_after_epoch, None, "{label}");

        let interrupted = tmp.path().join("interrupted");
        let stop = FitOptions {
            stop_after_epoch: Some(stop_at),
            loss_scaler: scaler.clone(),
            ..FitOptions::default()
        };
        let err = fit_transformer_with(&fam(&s, family), &data, 42, &interrupted, &cpu(), &stop, &Quiet)
            .err()
            .expect("stops after epoch 2")
            .to_string();
        assert!(err.contains("stopped after epoch 2"), "{label}: {err}");
        assert!(interrupted.join("resume/state.json").is_file(), "{label}");
        let said = crate::observer::Recorder::default();
        let (clf_b, rep_b) =
            fit_transformer_with(&fam(&s, family), &data, 42, &interrupted, &cpu(), &keep, &said).unwrap();

        assert_eq!(rep_b.resumed_after_epoch, Some(stop_at), "{label}: did not resume");
        // What the resumed run told its observer: the checkpoint it resumed from, then only
        // the epochs after it.
        let said = said.lines();
        assert!(
            said.iter()
                .any(|l| l.starts_with(&format!("  resuming after epoch {stop_at}/{epochs} from "))),
            "{label}: {said:?}"
        );
        let epoch_lines: Vec<&String> = said.iter().filter(|l| l.starts_with("  epoch ")).collect();
        assert_eq!(epoch_lines.len(), epochs - stop_at, "{label}: {said:?}");
        assert!(
            epoch_lines[0].starts_with(&format!("  epoch {}: train loss ", stop_at + 1)),
            "{label}: {said:?}"
        );
        assert_eq!(epoch_bits(&rep_b), epoch_bits(&rep_a), "{label}");
        assert_eq!(rep_b.precision, rep_a.precision, "{label}");
        assert_eq!(rep_a.dtype, dtype, "{label}");
        if dtype == "f16" {
            // Steps were skipped and the scale grew: a scaler restarted on resuming would skip
            // or grow at other steps, and show in the epochs' step counts and losses.
            let ls = rep_a.precision.as_ref().and_then(|p| p.loss_scaling.clone()).unwrap();
            assert!(ls.skipped_steps > 0 && ls.growth_interval == 3, "{label}: {ls:?}");
        }
        assert_eq!(rep_b.best_epoch, rep_a.best_epoch, "{label}");
        // The last epoch's trainable weights and AdamW moments, and the kept (best) weights.
        for file in [
            format!("resume/weights-epoch-{epochs}.safetensors"),
            format!("resume/optimizer-epoch-{epochs}.safetensors"),
        ] {
            assert_eq!(
                tensor_bits(&interrupted.join(&file)),
                tensor_bits(&straight.join(&file)),
                "{label}: {file}"
            );
        }
        let saved = checkpoint::load(&straight, &Device::Cpu).unwrap().0.files;
        assert_eq!(
            checkpoint::load(&interrupted, &Device::Cpu).unwrap().0.files,
            saved,
            "{label}"
        );
        assert_eq!(
            proba_bits(clf_b.as_ref(), &texts),
            proba_bits(clf_a.as_ref(), &texts),
            "{label}"
        );

        // Without the test hook the finished run's checkpoint is removed.
        let (_, rep_c) = fit_transformer(&fam(&s, family), &data, 42, &interrupted, &cpu()).unwrap();
        assert_eq!(
            rep_c.resumed_after_epoch,
            Some(epochs),
            "{label}: resumes after the last epoch"
        );
        assert_eq!(epoch_bits(&rep_c), epoch_bits(&rep_a), "{label}");
        assert!(!interrupted.join(resume::RESUME_DIR).exists(), "{label}");
    }
}

/// A checkpoint is used only for the settings and data it was written with.
#[test]
fn epoch_checkpoint_from_other_settings_is_ignored() {
    let data = keyword_dataset(24, 6);
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("base");
    write_tiny_model(&model_dir, TINY_QWEN2, false);
    let s = spec(&model_dir, Method::Full, 1e-3, 2);
    let mut other_lr = s.clone();
    other_lr.learning_rate = 2e-3;
    let mut other_data = data.clone();
    other_data.train[0].label = (other_data.train[0].label + 1) % 3;
    let interrupted = |work: &Path| {
        let stop = FitOptions {
            stop_after_epoch: Some(1),
            ..FitOptions::default()
        };
        assert!(fit_transformer_with(&fam(&s, Family::Decoder), &data, 7, work, &cpu(), &stop, &Quiet).is_err());
        assert!(work.join("resume/state.json").is_file());
    };
    // Another learning rate, another seed, other train labels: each trains from epoch 1.
    for (i, (spec_, data_, seed)) in [(&other_lr, &data, 7), (&s, &data, 8), (&s, &other_data, 7)]
        .into_iter()
        .enumerate()
    {
        let work = tmp.path().join(format!("w{i}"));
        interrupted(&work);
        let (_, report) = fit_transformer(&fam(spec_, Family::Decoder), data_, seed, &work, &cpu()).unwrap();
        assert_eq!(report.resumed_after_epoch, None, "case {i}");
        assert_eq!(report.epochs.len(), 2, "case {i}");
    }
    // The same settings resume.
    let work = tmp.path().join("same");
    interrupted(&work);
    let (_, report) = fit_transformer(&fam(&s, Family::Decoder), &data, 7, &work, &cpu()).unwrap();
    assert_eq!(report.resumed_after_epoch, Some(1));
}

/// A `max_memory_gb` between the planner's estimates at 4 and 8 rows of `s`: batches of 8
/// then run as 2 x 4.
fn cap_between_4_and_8_rows(config: &str, s: &TrainPlan, dtype: DType) -> f64 {
    let config = ModelConfig::parse(config, Path::new("config.json")).unwrap();
    let mode = s.method.mode();
    let lora = s.method.lora();
    let counting = ParamBuilder::new(Source::Zeros, mode, dtype, Device::Cpu, 0);
    let (_, counted) = models::build_classifier(&config, counting, 3, None).unwrap();
    let input = memory::PlanInput {
        config: &config,
        method: s.method.kind(),
        lora,
        dtype,
        fused_ops: crate::layers::trains_fused(&Device::Cpu, dtype),
        total_params: counted.total_params(),
        trainable_params: counted.trainable_params(),
        seq_len: s.max_length,
        gradient_checkpointing: s.gradient_checkpointing,
        grad_accumulation: 2,
        // What the run's plan adds on the CPU (the tiny checkpoint's f32 tensors): the caps
        // below must sit between training peaks, not under the load peak.
        mapped_checkpoint_bytes: Some(counted.total_params() as f64 * 4.0),
    };
    let (at4, at8) = (
        memory::estimate(&input, 4).total_gib(),
        memory::estimate(&input, 8).total_gib(),
    );
    assert!(at4 < at8);
    (at4 + at8) / 2.0
}

/// The largest |a - b| over the trained tensors two runs saved, and how many they saved.
fn trained_max_diff(a: &Path, b: &Path) -> (f32, usize) {
    let (_, ta) = checkpoint::load(a, &Device::Cpu).unwrap();
    let (_, tb) = checkpoint::load(b, &Device::Cpu).unwrap();
    assert_eq!(ta.len(), tb.len());
    let worst = ta
        .iter()
        .map(|(n, t)| crate::layers::testing::max_abs(&(t - &tb[n]).unwrap()))
        .fold(0f32, f32::max);
    (worst, ta.len())
}

#[test]
fn micro_batches_reach_the_weights_of_whole_batches() {
    let data = keyword_dataset(40, 9);
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("base");
    write_tiny_model(&model_dir, TINY_BERT, true);
    let mut whole = spec(&model_dir, Method::Full, 1e-2, 2);
    whole.class_weights = ClassWeights::SqrtInverse;
    let mut split = whole.clone();
    split.max_memory_gb = Some(cap_between_4_and_8_rows(TINY_BERT, &whole, DType::F32));
    let (wa, wb) = (tmp.path().join("whole"), tmp.path().join("split"));
    let (_, ra) = fit_transformer(&fam(&whole, Family::Encoder), &data, 3, &wa, &cpu()).unwrap();
    let (_, rb) = fit_transformer(&fam(&split, Family::Encoder), &data, 3, &wb, &cpu()).unwrap();
    let (pa, pb) = (ra.memory_plan.unwrap(), rb.memory_plan.unwrap());
    assert_eq!((pa.micro_batches, pa.micro_batch_size), (1, 8));
    assert_eq!((pb.micro_batches, pb.micro_batch_size), (2, 4));
    assert_eq!(pb.max_memory_gb, split.max_memory_gb);
    // On the CPU the load peak counts the mapped checkpoint: every tensor it stores is read
    // (the new head is not in it).
    let stored = crate::loader::stored_tensors(&[model_dir.join("model.safetensors")]).unwrap();
    assert!(stored.bytes > 0 && stored.elements < ra.total_params);
    assert_eq!(pa.estimate.load_bytes, stored.bytes as f64);
    // Same optimiser steps, same effective batch.
    assert_eq!(ra.total_steps, rb.total_steps);
    for (ea, eb) in ra.epochs.iter().zip(&rb.epochs) {
        assert_eq!(ea.optimizer_steps, eb.optimizer_steps);
        assert!(
            (ea.train_loss - eb.train_loss).abs() < 1e-4,
            "{} vs {}",
            ea.train_loss,
            eb.train_loss
        );
    }
    let (diff, n) = trained_max_diff(&wa, &wb);
    assert!(n > 10 && diff < 1e-4, "max |weight diff| {diff} over {n} tensors");
}

#[test]
fn checkpointed_training_reaches_the_weights_of_kept_activations() {
    let data = keyword_dataset(32, 9);
    let with_dropout = tiny_bert_with_dropout();
    for (config, encoder, family, targets) in [
        (with_dropout.as_str(), true, Family::Encoder, vec!["query", "value"]),
        (TINY_QWEN2, false, Family::Decoder, vec!["q_proj", "v_proj"]),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let model_dir = tmp.path().join("base");
        write_tiny_model(&model_dir, config, encoder);
        let lora = LoraSettings {
            r: 4,
            alpha: 8.0,
            dropout: 0.1,
            targets: targets.iter().map(|t| t.to_string()).collect(),
        };
        let kept = spec(&model_dir, Method::Lora(lora), 5e-3, 2);
        let recomputed = TrainPlan {
            gradient_checkpointing: true,
            ..kept.clone()
        };
        let (wa, wb) = (tmp.path().join("kept"), tmp.path().join("recomputed"));
        let (_, ra) = fit_transformer(&fam(&kept, family), &data, 4, &wa, &cpu()).unwrap();
        let (_, rb) = fit_transformer(&fam(&recomputed, family), &data, 4, &wb, &cpu()).unwrap();
        assert!(!ra.gradient_checkpointing && rb.gradient_checkpointing);
        let (diff, n) = trained_max_diff(&wa, &wb);
        assert!(
            n > 4 && diff < 1e-5,
            "{family:?}: max |weight diff| {diff} over {n} tensors"
        );
        for (ea, eb) in ra.epochs.iter().zip(&rb.epochs) {
            assert!((ea.train_loss - eb.train_loss).abs() < 1e-5);
        }
    }
}

#[test]
fn max_memory_below_one_row_is_refused_before_the_weights_are_read() {
    let data = keyword_dataset(12, 3);
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("base");
    write_tiny_model(&model_dir, TINY_BERT, true);
    // Weights that cannot be read: the planner must refuse before anything opens them.
    std::fs::write(model_dir.join("model.safetensors"), b"not safetensors").unwrap();
    let mut s = spec(&model_dir, Method::Full, 1e-3, 1);
    s.max_memory_gb = Some(0.01);
    let err = fit_transformer(&fam(&s, Family::Encoder), &data, 1, &tmp.path().join("w"), &cpu())
        .err()
        .expect("must be refused");
    assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("max_memory_gb = 0.01") && msg.contains("one row at a time") && msg.contains("GiB"),
        "{msg}"
    );
}

#[test]
fn f16_micro_batches_scale_the_loss_and_skip_as_whole_batches_do() {
    let data = keyword_dataset(48, 9);
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("base");
    write_tiny_model(&model_dir, TINY_QWEN2, false);
    let lora = LoraSettings {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: vec!["q_proj".into(), "v_proj".into()],
    };
    let mut whole = spec(&model_dir, Method::Lora(lora.clone()), 1e-2, 2);
    whole.dtype = DTypeRequest::parse("f16").unwrap();
    let mut split = whole.clone();
    split.max_memory_gb = Some(cap_between_4_and_8_rows(TINY_QWEN2, &whole, DType::F16));
    let (wa, wb) = (tmp.path().join("whole"), tmp.path().join("split"));
    let (_, ra) = fit_transformer(&fam(&whole, Family::Decoder), &data, 6, &wa, &cpu()).unwrap();
    let (_, rb) = fit_transformer(&fam(&split, Family::Decoder), &data, 6, &wb, &cpu()).unwrap();
    assert_eq!(rb.memory_plan.as_ref().unwrap().micro_batches, 2);
    let scaling = |r: &TrainReport| {
        r.precision
            .as_ref()
            .unwrap()
            .loss_scaling
            .clone()
            .expect("f16 scales the loss")
    };
    let (la, lb) = (scaling(&ra), scaling(&rb));
    assert_eq!((la.skipped_steps, la.final_scale), (lb.skipped_steps, lb.final_scale));
    let steps = |r: &TrainReport| r.epochs.iter().map(|e| e.optimizer_steps).collect::<Vec<_>>();
    assert_eq!(steps(&ra), steps(&rb));
    // f16 activations: the two cuts of each batch round differently.
    let (diff, n) = trained_max_diff(&wa, &wb);
    assert!(n > 4 && diff < 2e-3, "max |weight diff| {diff} over {n} tensors");
}

/// `early_stopping_patience`: a run whose val macro F1 cannot rise (learning rate 0, so every
/// epoch's weights are the first's) stops after `1 + patience` epochs, keeps epoch 1, says so
/// in its report; interrupted on the epoch that exhausts the patience, it resumes and stops
/// there without training another epoch.
#[test]
fn early_stopping_ends_after_patience_epochs_without_improvement_and_on_resume() {
    let data = keyword_dataset(24, 6);
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("base");
    write_tiny_model(&model_dir, TINY_BERT, true);
    let mut s = spec(&model_dir, Method::Full, 0.0, 6);
    s.early_stopping_patience = Some(2);
    let (_, report) = fit_transformer(&fam(&s, Family::Encoder), &data, 7, &tmp.path().join("a"), &cpu()).unwrap();
    assert_eq!(report.epochs.len(), 3);
    assert_eq!((report.best_epoch, report.stopped_early_after), (1, Some(3)));
    assert!(report
        .epochs
        .iter()
        .all(|e| e.val_macro_f1 == report.epochs[0].val_macro_f1));

    let work = tmp.path().join("b");
    let stop = FitOptions {
        stop_after_epoch: Some(3),
        ..FitOptions::default()
    };
    assert!(fit_transformer_with(&fam(&s, Family::Encoder), &data, 7, &work, &cpu(), &stop, &Quiet).is_err());
    let (_, resumed) = fit_transformer(&fam(&s, Family::Encoder), &data, 7, &work, &cpu()).unwrap();
    assert_eq!(resumed.resumed_after_epoch, Some(3));
    assert_eq!((resumed.epochs.len(), resumed.stopped_early_after), (3, Some(3)));

    // Without patience every epoch trains; an improving run is never stopped.
    s.early_stopping_patience = None;
    s.epochs = 3;
    let (_, full) = fit_transformer(&fam(&s, Family::Encoder), &data, 7, &tmp.path().join("c"), &cpu()).unwrap();
    assert_eq!((full.epochs.len(), full.stopped_early_after), (3, None));
}
