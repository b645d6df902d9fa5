//! Tests across the model families and training methods, on tiny random models of the real
//! architectures: gradients reach every trainable tensor (the fused-op trap), padding does not
//! change predictions, the training ops compute what the inference ops compute, and
//! trainable-parameter counts equal PEFT's for real-size configs.

use super::loss::cross_entropy;
use super::optim::GroupedAdamW;
use crate::params::{LoraSettings, Mode, ParamBuilder, ParamKind, Source};
use crate::text::{pad_batch, PadSide};
use crate::{build_classifier, ModelConfig};
use candle_core::{DType, Device, Tensor};
use std::path::Path;

use crate::tiny::{TINY_BERT, TINY_LLAMA, TINY_QWEN2};

fn families() -> Vec<(&'static str, ModelConfig, Vec<&'static str>, PadSide)> {
    let parse = |s: &str| ModelConfig::parse(s, Path::new("tiny.json")).unwrap();
    vec![
        (
            "bert",
            parse(TINY_BERT),
            vec!["query", "key", "value", "dense"],
            PadSide::Right,
        ),
        (
            "llama",
            parse(TINY_LLAMA),
            vec!["q_proj", "k_proj", "v_proj", "o_proj"],
            PadSide::Left,
        ),
        (
            "qwen2",
            parse(TINY_QWEN2),
            vec!["q_proj", "k_proj", "v_proj", "o_proj"],
            PadSide::Left,
        ),
    ]
}

fn lora(targets: &[&str]) -> LoraSettings {
    LoraSettings {
        r: 4,
        alpha: 8.0,
        dropout: 0.1,
        targets: targets.iter().map(|s| s.to_string()).collect(),
    }
}

/// Three sequences of different lengths, padded on `side`.
fn batch(side: PadSide) -> (Tensor, Tensor, Vec<usize>) {
    let seqs: [&[u32]; 3] = [&[1, 5, 9, 13, 2], &[1, 7, 2], &[1, 3, 4, 6, 8, 10, 12, 2]];
    let b = pad_batch(&seqs, 0, side, 8, &Device::Cpu).unwrap();
    (b.input_ids, b.attention_mask, vec![0, 1, 2])
}

fn grad_norm(g: &Tensor) -> f32 {
    g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn every_trainable_tensor_gets_a_gradient_for_every_family_and_method() {
    for (name, config, targets, side) in families() {
        for mode in [Mode::Full, Mode::Lora(lora(&targets)), Mode::LinearProbe] {
            let label = format!("{name} {mode:?}");
            let p = ParamBuilder::new(Source::Random, mode.clone(), DType::F32, Device::Cpu, 3);
            let (model, params) = build_classifier(&config, p, 3, None).unwrap();
            assert!(!params.trainable.is_empty(), "{label}");
            match &mode {
                Mode::LinearProbe => assert!(params.trainable.iter().all(|v| v.kind == ParamKind::Head), "{label}"),
                Mode::Lora(_) => {
                    assert!(params.trainable.iter().any(|v| v.kind == ParamKind::LoraA), "{label}");
                    assert!(params.trainable.iter().all(|v| v.kind != ParamKind::Base), "{label}");
                }
                _ => assert!(params.trainable.iter().any(|v| v.kind == ParamKind::Base), "{label}"),
            }
            let (ids, mask, labels) = batch(side);
            let mut opt = GroupedAdamW::new(&params.trainable, 1e-2, 0.01, false).unwrap();
            // One step first: LoRA's B starts at zero, so A's gradient is zero until B moves.
            let loss = cross_entropy(&model.forward(&ids, &mask, true).unwrap(), &labels, None).unwrap();
            opt.accumulate(&loss.backward().unwrap()).unwrap();
            opt.step(1e-2, Some(1.0)).unwrap();
            let loss = cross_entropy(&model.forward(&ids, &mask, true).unwrap(), &labels, None).unwrap();
            let grads = loss.backward().unwrap();
            for v in &params.trainable {
                let g = grads
                    .get(v.var.as_tensor())
                    .unwrap_or_else(|| panic!("{label}: no gradient for {}", v.name));
                assert!(grad_norm(g) > 0.0, "{label}: zero gradient for {}", v.name);
            }
        }
    }
}

#[test]
fn padding_does_not_change_logits() {
    for (name, config, _, side) in families() {
        let p = ParamBuilder::new(
            Source::Random,
            Mode::Inference { lora: None },
            DType::F32,
            Device::Cpu,
            5,
        );
        let (model, _) = build_classifier(&config, p, 3, None).unwrap();
        let (ids, mask, _) = batch(side);
        let padded: Vec<Vec<f32>> = model.forward(&ids, &mask, false).unwrap().to_vec2().unwrap();
        let seqs: [&[u32]; 3] = [&[1, 5, 9, 13, 2], &[1, 7, 2], &[1, 3, 4, 6, 8, 10, 12, 2]];
        for (row, seq) in seqs.iter().enumerate() {
            let alone = pad_batch(&[seq], 0, side, 1, &Device::Cpu).unwrap();
            let got: Vec<Vec<f32>> = model
                .forward(&alone.input_ids, &alone.attention_mask, false)
                .unwrap()
                .to_vec2()
                .unwrap();
            for (a, b) in got[0].iter().zip(&padded[row]) {
                assert!((a - b).abs() < 1e-5, "{name} row {row}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn training_ops_compute_what_inference_ops_compute() {
    // Decoders have no dropout, so train = true differs from train = false only in which
    // implementation of softmax / rms norm / rope runs.
    for (name, config, _, side) in families().into_iter().filter(|f| f.0 != "bert") {
        let p = ParamBuilder::new(Source::Random, Mode::Full, DType::F32, Device::Cpu, 7);
        let (model, _) = build_classifier(&config, p, 3, None).unwrap();
        let (ids, mask, _) = batch(side);
        let a: Vec<Vec<f32>> = model.forward(&ids, &mask, true).unwrap().to_vec2().unwrap();
        let b: Vec<Vec<f32>> = model.forward(&ids, &mask, false).unwrap().to_vec2().unwrap();
        for (ra, rb) in a.iter().zip(&b) {
            for (x, y) in ra.iter().zip(rb) {
                assert!((x - y).abs() < 1e-5, "{name}: {x} vs {y}");
            }
        }
    }
}

#[test]
fn lora_target_matching_nothing_is_a_named_error() {
    let (_, config, _, _) = families().remove(1);
    let p = ParamBuilder::new(
        Source::Random,
        Mode::Lora(lora(&["q_proj", "Wqkv"])),
        DType::F32,
        Device::Cpu,
        1,
    );
    let err = build_classifier(&config, p, 3, None).err().unwrap().to_string();
    assert!(
        err.contains("Wqkv") && err.contains("q_proj") && err.contains("match no module"),
        "{err}"
    );
}

fn fixture_config(name: &str) -> ModelConfig {
    ModelConfig::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/configs")
            .join(name),
    )
    .unwrap()
}

#[test]
fn qwen2_5_0_5b_lora_counts_equal_peft() {
    let config = fixture_config("qwen2.5-0.5b.json");
    let mode = Mode::Lora(LoraSettings {
        r: 16,
        alpha: 32.0,
        dropout: 0.05,
        targets: vec!["q_proj".into(), "k_proj".into(), "v_proj".into(), "o_proj".into()],
    });
    let p = ParamBuilder::new(Source::Zeros, mode, DType::F32, Device::Cpu, 42);
    let (_, params) = build_classifier(&config, p, 113, None).unwrap();
    assert_eq!(params.trainable_params(), 2_263_936);
    // PEFT's total also counts the frozen original of the `score` head kept beside its trained copy.
    assert_eq!(params.total_params() + 896 * 113, 496_397_952);
}

/// Identity forward, NaN backward: a NaN that appears only in the gradient, upstream of every
/// fused op's backward.
struct NanInBackward;

impl candle_core::CustomOp1 for NanInBackward {
    fn name(&self) -> &'static str {
        "nan-in-backward"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let candle_core::CpuStorage::F32(v) = storage else {
            candle_core::bail!("f32 only")
        };
        let (a, b) = layout.contiguous_offsets().expect("contiguous logits");
        Ok((candle_core::CpuStorage::F32(v[a..b].to_vec()), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some((grad * f64::NAN)?))
    }
}

/// The four families with dropout on wherever the architecture has it (ModernBERT's config
/// defaults it to 0; here every site draws).
fn families_with_dropout() -> Vec<(&'static str, ModelConfig, Vec<&'static str>, PadSide)> {
    let mut out = families();
    let mut mb: serde_json::Value = serde_json::from_str(crate::tiny::TINY_MODERNBERT).unwrap();
    for field in ["attention_dropout", "mlp_dropout", "embedding_dropout"] {
        mb[field] = 0.1.into();
    }
    out.push((
        "modernbert",
        ModelConfig::parse(&mb.to_string(), Path::new("tiny.json")).unwrap(),
        vec!["Wqkv", "Wo"],
        PadSide::Right,
    ));
    out
}

/// One training step of a fresh model built with `seed`, then the trainable tensors'
/// gradients of a second forward/backward (after the step, so LoRA's B is non-zero and A's
/// gradient is too), and the dropout stream's position afterwards.
fn second_step_gradients(
    config: &ModelConfig,
    mode: &Mode,
    side: PadSide,
    checkpointing: bool,
) -> (Vec<(String, Tensor)>, rand_chacha::ChaCha8Rng) {
    let p = ParamBuilder::new(Source::Random, mode.clone(), DType::F32, Device::Cpu, 21)
        .with_gradient_checkpointing(checkpointing);
    let rng = p.dropout_rng();
    let recompute = p.recompute();
    assert_eq!(recompute.is_some(), checkpointing);
    let (model, params) = build_classifier(config, p, 3, None).unwrap();
    let (ids, mask, labels) = batch(side);
    let backward = || {
        let loss = cross_entropy(&model.forward(&ids, &mask, true).unwrap(), &labels, None).unwrap();
        let mut grads = loss.backward().unwrap();
        if let Some(r) = &recompute {
            r.merge_into(&mut grads).unwrap();
        }
        grads
    };
    let mut opt = GroupedAdamW::new(&params.trainable, 1e-2, 0.01, false).unwrap();
    opt.accumulate(&backward()).unwrap();
    opt.step(1e-2, Some(1.0)).unwrap();
    let grads = backward();
    let out = params
        .trainable
        .iter()
        .map(|v| {
            let g = grads
                .get(v.var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {}", v.name));
            (v.name.clone(), g.clone())
        })
        .collect();
    if let Some(r) = &recompute {
        let layers = config.dims().0;
        assert_eq!(
            r.recomputed_layers(),
            2 * layers,
            "every layer recomputed in both backwards"
        );
    }
    let rng = rng.lock().unwrap().clone();
    (out, rng)
}

#[test]
fn recomputed_layers_give_the_gradients_of_kept_ones() {
    for (name, config, targets, side) in families_with_dropout() {
        for mode in [Mode::Full, Mode::Lora(lora(&targets))] {
            let label = format!("{name} {}", if mode == Mode::Full { "full" } else { "lora" });
            let (kept, rng_kept) = second_step_gradients(&config, &mode, side, false);
            let (recomputed, rng_recomputed) = second_step_gradients(&config, &mode, side, true);
            // Same draws in the same order: the recompute rewound and restored the stream.
            assert_eq!(rng_kept, rng_recomputed, "{label}: dropout stream moved differently");
            assert_eq!(kept.len(), recomputed.len());
            for ((n, a), (_, b)) in kept.iter().zip(&recomputed) {
                assert!(grad_norm(a) > 0.0, "{label}: zero gradient for {n}");
                let scale = crate::layers::testing::max_abs(a).max(1e-6);
                let diff = crate::layers::testing::max_abs(&(a - b).unwrap());
                assert!(
                    diff <= 1e-5 * scale.max(1.0),
                    "{label}: {n}: max |diff| {diff} (|g| {scale})"
                );
            }
        }
    }
}

#[test]
fn nan_in_a_fused_backward_reaches_every_gradient_and_the_divergence_guard() {
    for (name, config, _, side) in families() {
        let p = ParamBuilder::new(Source::Random, Mode::Full, DType::F32, Device::Cpu, 13);
        let (model, params) = build_classifier(&config, p, 3, None).unwrap();
        let (ids, mask, labels) = batch(side);
        let logits = model
            .forward(&ids, &mask, true)
            .unwrap()
            .apply_op1(NanInBackward)
            .unwrap();
        let loss = cross_entropy(&logits, &labels, None).unwrap();
        assert!(
            loss.to_scalar::<f32>().unwrap().is_finite(),
            "{name}: the forward must stay finite"
        );
        let grads = loss.backward().unwrap();
        // Through the head, every layer's norms, activations, attention softmax (and rope):
        // no fused backward may swallow the NaN (a max or clamp that skips it, a zero branch).
        for v in &params.trainable {
            let g = grads
                .get(v.var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient for {}", v.name));
            assert!(grad_norm(g).is_nan(), "{name}: the NaN did not reach {}", v.name);
        }
        let mut opt = GroupedAdamW::new(&params.trainable, 1e-2, 0.01, false).unwrap();
        opt.accumulate(&grads).unwrap();
        let err = opt.step(1e-2, Some(1.0)).unwrap_err().to_string();
        assert!(err.contains("gradient norm is NaN"), "{name}: {err}");
        // What the training loop reports for it (fit_tests run the loop itself).
        let report = super::diverged(err, 7, 2, &None, Path::new("work")).to_string();
        assert!(report.contains("diverged at optimizer step 7 (epoch 2)"), "{report}");
    }
}

#[test]
fn micro_batch_gradients_sum_to_the_full_batch_gradients() {
    use super::micro_batches;
    // Dropout off (each micro-batch would draw other masks than the whole batch does), so
    // the only difference is how the batch is cut.
    let mut bert: serde_json::Value = serde_json::from_str(crate::tiny::TINY_BERT).unwrap();
    bert["hidden_dropout_prob"] = 0.0.into();
    bert["attention_probs_dropout_prob"] = 0.0.into();
    let config = ModelConfig::parse(&bert.to_string(), Path::new("tiny.json")).unwrap();
    let side = PadSide::Right;
    let weights = [0.5f32, 2.0, 1.25];
    for class_weights in [None, Some(&weights[..])] {
        let adapters = LoraSettings {
            dropout: 0.0,
            ..lora(&["query", "value", "dense"])
        };
        let p = ParamBuilder::new(Source::Random, Mode::Lora(adapters), DType::F32, Device::Cpu, 4);
        let (model, params) = build_classifier(&config, p, 3, None).unwrap();
        let seqs: [&[u32]; 5] = [
            &[1, 5, 9, 13, 2],
            &[1, 7, 2],
            &[1, 3, 4, 6, 8, 10, 12, 2],
            &[1, 9, 2],
            &[1, 4, 4, 2],
        ];
        let labels = [0usize, 1, 2, 1, 1];
        let forward_loss = |rows: &[usize]| {
            let ids: Vec<&[u32]> = rows.iter().map(|&i| seqs[i]).collect();
            let b = pad_batch(&ids, 0, side, 8, &Device::Cpu).unwrap();
            let y: Vec<usize> = rows.iter().map(|&i| labels[i]).collect();
            cross_entropy(
                &model.forward(&b.input_ids, &b.attention_mask, true).unwrap(),
                &y,
                class_weights,
            )
            .unwrap()
        };
        let all: Vec<usize> = (0..5).collect();
        let full = forward_loss(&all).backward().unwrap();
        let parts = micro_batches(&all, 2, &labels, class_weights);
        assert_eq!(parts.iter().map(|p| p.rows.len()).collect::<Vec<_>>(), [2, 2, 1]);
        assert!((parts.iter().map(|p| p.share).sum::<f64>() - 1.0).abs() < 1e-12);
        let mut summed: Vec<Option<Tensor>> = vec![None; params.trainable.len()];
        for part in &parts {
            let g = (forward_loss(&part.rows) * part.share).unwrap().backward().unwrap();
            for (slot, v) in summed.iter_mut().zip(&params.trainable) {
                if let Some(t) = g.get(v.var.as_tensor()) {
                    *slot = Some(match slot.take() {
                        Some(acc) => (acc + t).unwrap(),
                        None => t.clone(),
                    });
                }
            }
        }
        for (v, acc) in params.trainable.iter().zip(&summed) {
            let want = full.get(v.var.as_tensor()).unwrap();
            let got = acc.as_ref().unwrap();
            let diff = crate::layers::testing::max_abs(&(want - got).unwrap());
            let scale = crate::layers::testing::max_abs(want).max(1.0);
            assert!(
                diff <= 1e-5 * scale,
                "{:?}: {}: max |diff| {diff}",
                class_weights,
                v.name
            );
        }
    }
}
