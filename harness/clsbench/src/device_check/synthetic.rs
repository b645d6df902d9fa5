//! Throughput of real-size model shapes with random weights built from their configs alone
//! (no checkpoint, no tokenizer: random token ids of full length, no padding), the measurement
//! `scripts/gpu_reference.py` repeats in PyTorch on the same machine:
//!
//! - inference: per batch size, `repeats` forwards after `warmup` untimed ones, each timed from
//!   a device synchronise to the next; documents/s = batch / median forward;
//! - single example: `single_examples` forwards of batch 1, p50 and p95;
//! - training: `train_steps` steps (forward, f32 loss, backward with f16 loss scaling, AdamW)
//!   at `train_batch` x `max_length` after one untimed step, median and p95;
//! - peak device memory of each phase (the CUDA driver's used memory, sampled).
//!
//! Recomputation (gradient checkpointing) does not exist yet (issue 11): reported as not
//! available, never as a number.

use super::{parse_config, MODERNBERT_BASE, QWEN2_5_0_5B, TINY_MODERNBERT, TINY_QWEN2};
use crate::error::{Error, Result};
use crate::models::device::{device_memory_used_bytes, ResolvedDevice};
use crate::models::params::{LoraSettings, Mode, ParamBuilder, Source};
use crate::models::precision::dtype_name;
use crate::models::{build_classifier, ModelConfig};
use crate::perf::memory::with_memory_sampled;
use crate::perf::timing::LatencyStats;
use crate::train::loss::cross_entropy;
use crate::train::loss_scale::LossScaler;
use crate::train::optim::GroupedAdamW;
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::time::{Duration, Instant};

/// What the report says about recomputation until issue 11 adds it.
pub const RECOMPUTATION: &str =
    "not available: gradient checkpointing does not exist in clsbench yet (issue 11); every step keeps all activations";

/// A model shape: its config and the training method timed.
pub struct Shape {
    pub name: String,
    pub config: ModelConfig,
    pub mode: Mode,
}

/// The shapes by name: `modernbert-base` (full fine-tune), `qwen2.5-0.5b` (LoRA r16, alpha
/// 32 on q/k/v/o, the seed's recipe), and tiny versions of both for CPU tests.
pub fn shape(name: &str) -> Result<Shape> {
    let lora = |r: usize| {
        Mode::Lora(LoraSettings {
            r,
            alpha: 2.0 * r as f64,
            dropout: 0.05,
            targets: ["q_proj", "k_proj", "v_proj", "o_proj"].map(String::from).to_vec(),
        })
    };
    let (config, mode) = match name {
        "modernbert-base" => (MODERNBERT_BASE, Mode::Full),
        "qwen2.5-0.5b" => (QWEN2_5_0_5B, lora(16)),
        "tiny-modernbert" => (TINY_MODERNBERT, Mode::Full),
        "tiny-qwen2" => (TINY_QWEN2, lora(4)),
        other => {
            return Err(Error::bad_input(format!(
                "--shapes: expected modernbert-base, qwen2.5-0.5b, tiny-modernbert or tiny-qwen2, got {other:?}"
            )))
        }
    };
    Ok(Shape {
        name: name.to_string(),
        config: parse_config(config, &format!("{name}.json"))?,
        mode,
    })
}

#[derive(Debug, Clone)]
pub struct PerfOptions {
    pub batch_sizes: Vec<usize>,
    pub max_length: usize,
    pub train_batch: usize,
    pub single_examples: usize,
    pub repeats: usize,
    pub warmup: usize,
    pub train_steps: usize,
    pub n_classes: usize,
    pub skip_inference: bool,
    pub skip_training: bool,
}

impl Default for PerfOptions {
    fn default() -> Self {
        PerfOptions {
            batch_sizes: vec![1, 32, 64],
            max_length: 128,
            train_batch: 32,
            single_examples: 50,
            repeats: 10,
            warmup: 3,
            train_steps: 5,
            // The seed study's 113 CFPB classes.
            n_classes: 113,
            skip_inference: false,
            skip_training: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct InferenceTiming {
    pub batch_size: usize,
    pub repeats: usize,
    pub median_batch_ms: f64,
    pub p95_batch_ms: f64,
    pub docs_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainingTiming {
    pub batch_size: usize,
    pub max_length: usize,
    pub steps: usize,
    pub median_step_ms: f64,
    pub p95_step_ms: f64,
    pub examples_per_s: f64,
    /// f16 only: steps the loss scaler skipped, and its scale at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped_steps: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_loss_scale: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub batch_size: usize,
    pub error: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShapeReport {
    pub shape: String,
    pub model_type: String,
    pub method: String,
    pub device: String,
    pub dtype: String,
    pub total_params: usize,
    pub trainable_params: usize,
    pub max_length: usize,
    pub single: Option<LatencyStats>,
    pub inference: Vec<InferenceTiming>,
    pub inference_failures: Vec<Failure>,
    pub training: Option<TrainingTiming>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_error: Option<String>,
    pub recomputation: String,
    pub inference_peak_device_bytes: Option<u64>,
    pub training_peak_device_bytes: Option<u64>,
    pub memory_source: String,
    /// Building the random models (not part of any timing).
    pub build_seconds: f64,
}

fn random_ids(batch: usize, len: usize, vocab: usize, device: &Device, seed: u64) -> Result<(Tensor, Tensor)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    // Skip the first few ids (pad / bos / eos in most vocabularies).
    let ids: Vec<u32> = (0..batch * len).map(|_| rng.gen_range(3..vocab as u32)).collect();
    Ok((
        Tensor::from_vec(ids, (batch, len), device)?,
        Tensor::ones((batch, len), DType::U32, device)?,
    ))
}

fn vocab_size(config: &ModelConfig) -> usize {
    match config {
        ModelConfig::Bert(c) => c.vocab_size,
        ModelConfig::Llama(c) | ModelConfig::Qwen2(c) => c.vocab_size,
        ModelConfig::ModernBert(c) => c.vocab_size,
    }
}

/// Milliseconds of `f`, from a device synchronise to the next.
fn timed(device: &Device, f: impl FnOnce() -> Result<()>) -> Result<f64> {
    device.synchronize()?;
    let t0 = Instant::now();
    f()?;
    device.synchronize()?;
    Ok(t0.elapsed().as_secs_f64() * 1e3)
}

/// Time one shape on `device` in compute dtype `dtype` (trainable tensors f32).
pub fn run_shape(device: &ResolvedDevice, dtype: DType, shape: &Shape, opts: &PerfOptions) -> Result<ShapeReport> {
    let dev = &device.device;
    let vocab = vocab_size(&shape.config);
    let read_memory = || device_memory_used_bytes(dev);
    let method = match shape.mode {
        Mode::Full => "full",
        Mode::Lora(_) => "lora",
        Mode::LinearProbe => "linear-probe",
        Mode::Inference { .. } => "inference",
    };
    let mut build_seconds = 0.0;
    let mut report = ShapeReport {
        shape: shape.name.clone(),
        model_type: shape.config.model_type().to_string(),
        method: method.to_string(),
        device: device.label.clone(),
        dtype: dtype_name(dtype).to_string(),
        total_params: 0,
        trainable_params: 0,
        max_length: opts.max_length,
        single: None,
        inference: Vec::new(),
        inference_failures: Vec::new(),
        training: None,
        training_error: None,
        recomputation: RECOMPUTATION.to_string(),
        inference_peak_device_bytes: None,
        training_peak_device_bytes: None,
        memory_source: if read_memory().is_some() {
            crate::perf::memory::DRIVER_SOURCE.to_string()
        } else {
            "none: no device memory on the CPU".to_string()
        },
        build_seconds: 0.0,
    };

    if !opts.skip_inference {
        let t0 = Instant::now();
        let p = ParamBuilder::new(
            Source::DeviceRandom,
            Mode::Inference { lora: None },
            dtype,
            dev.clone(),
            1,
        );
        let (model, params) = build_classifier(&shape.config, p, opts.n_classes, None)?;
        dev.synchronize()?;
        build_seconds += t0.elapsed().as_secs_f64();
        report.total_params = params.total_params();
        let (outcome, peak) = with_memory_sampled(read_memory, Duration::from_millis(20), || -> Result<()> {
            let forward = |ids: &Tensor, mask: &Tensor| -> Result<()> {
                let logits = model.forward(ids, mask, false)?;
                std::hint::black_box(logits);
                Ok(())
            };
            let (ids, mask) = random_ids(1, opts.max_length, vocab, dev, 7)?;
            for _ in 0..opts.warmup {
                timed(dev, || forward(&ids, &mask))?;
            }
            let mut single = Vec::with_capacity(opts.single_examples);
            for _ in 0..opts.single_examples {
                single.push(timed(dev, || forward(&ids, &mask))?);
            }
            report.single = LatencyStats::from_samples(&single);
            for (k, &b) in opts.batch_sizes.iter().enumerate() {
                let run = || -> Result<InferenceTiming> {
                    let (ids, mask) = random_ids(b, opts.max_length, vocab, dev, 8 + b as u64)?;
                    for _ in 0..opts.warmup {
                        timed(dev, || forward(&ids, &mask))?;
                    }
                    let mut ms = Vec::with_capacity(opts.repeats);
                    for _ in 0..opts.repeats.max(1) {
                        ms.push(timed(dev, || forward(&ids, &mask))?);
                    }
                    let s = LatencyStats::from_samples(&ms).expect("at least one repeat");
                    Ok(InferenceTiming {
                        batch_size: b,
                        repeats: ms.len(),
                        median_batch_ms: s.median_ms,
                        p95_batch_ms: s.p95_ms,
                        docs_per_s: b as f64 / (s.median_ms / 1e3),
                    })
                };
                match run() {
                    Ok(t) => report.inference.push(t),
                    Err(e) => {
                        // Larger batches would not fit either (out of memory, typically).
                        report.inference_failures.push(Failure {
                            batch_size: b,
                            error: crate::models::device::with_out_of_memory_context(
                                e,
                                "in inference",
                                b,
                                opts.max_length,
                            )
                            .message(),
                        });
                        for &later in &opts.batch_sizes[k + 1..] {
                            report.inference_failures.push(Failure {
                                batch_size: later,
                                error: format!("skipped: batch {b} failed"),
                            });
                        }
                        break;
                    }
                }
            }
            Ok(())
        });
        outcome?;
        report.inference_peak_device_bytes = peak;
    }

    if !opts.skip_training {
        let t0 = Instant::now();
        let p = ParamBuilder::new(Source::DeviceRandom, shape.mode.clone(), dtype, dev.clone(), 2);
        let (model, params) = build_classifier(&shape.config, p, opts.n_classes, None)?;
        dev.synchronize()?;
        build_seconds += t0.elapsed().as_secs_f64();
        report.total_params = params.total_params();
        report.trainable_params = params.trainable_params();
        let mut opt = GroupedAdamW::new(&params.trainable, 1e-5, 0.01, false)?;
        let mut scaler = (dtype == DType::F16).then(LossScaler::default);
        let (outcome, peak) =
            with_memory_sampled(read_memory, Duration::from_millis(20), || -> Result<TrainingTiming> {
                let (ids, mask) = random_ids(opts.train_batch, opts.max_length, vocab, dev, 9)?;
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(10);
                let labels: Vec<usize> = (0..opts.train_batch)
                    .map(|_| rng.gen_range(0..opts.n_classes))
                    .collect();
                let mut step = || -> Result<()> {
                    let logits = model.forward(&ids, &mask, true)?;
                    let loss = cross_entropy(&logits, &labels, None)?;
                    let grads = match scaler.as_ref() {
                        None => loss.backward()?,
                        Some(s) => (loss * s.scale())?.backward()?,
                    };
                    opt.accumulate(&grads)?;
                    drop(grads);
                    match scaler.as_mut() {
                        None => {
                            opt.step(1e-5, Some(1.0))?;
                        }
                        Some(s) => {
                            opt.step_scaled(1e-5, Some(1.0), s)?;
                        }
                    }
                    Ok(())
                };
                timed(dev, &mut step)?;
                let mut ms = Vec::with_capacity(opts.train_steps);
                for _ in 0..opts.train_steps.max(1) {
                    ms.push(timed(dev, &mut step)?);
                }
                let s = LatencyStats::from_samples(&ms).expect("at least one step");
                Ok(TrainingTiming {
                    batch_size: opts.train_batch,
                    max_length: opts.max_length,
                    steps: ms.len(),
                    median_step_ms: s.median_ms,
                    p95_step_ms: s.p95_ms,
                    examples_per_s: opts.train_batch as f64 / (s.median_ms / 1e3),
                    skipped_steps: None,
                    final_loss_scale: None,
                })
            });
        match outcome {
            Ok(mut t) => {
                if let Some(s) = &scaler {
                    t.skipped_steps = Some(s.skipped_steps());
                    t.final_loss_scale = Some(s.scale());
                }
                report.training = Some(t);
            }
            Err(e) => {
                report.training_error = Some(
                    crate::models::device::with_out_of_memory_context(
                        e,
                        "in a training step",
                        opts.train_batch,
                        opts.max_length,
                    )
                    .message(),
                )
            }
        }
        report.training_peak_device_bytes = peak;
    }
    report.build_seconds = build_seconds;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::device::DeviceRequest;

    #[test]
    fn real_size_shapes_have_the_counts_of_their_recipes() {
        // Parameters from the configs alone (Source::Zeros costs no memory): the counts PEFT
        // reports for the seed's recipes (models README, train::model_tests).
        let count = |name: &str| {
            let s = shape(name).unwrap();
            let p = ParamBuilder::new(Source::Zeros, s.mode.clone(), DType::F32, Device::Cpu, 0);
            let (_, params) = build_classifier(&s.config, p, 113, None).unwrap();
            (params.trainable_params(), params.total_params())
        };
        // ModernBERT-base full fine-tune: every parameter of transformers' model, as counted
        // by fixtures/reference/make_modernbert_reference.py.
        let peft: serde_json::Value = crate::fsutil::read_json(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/reference/modernbert-peft-count.json"
        )))
        .unwrap();
        let (mb_trainable, mb_total) = count("modernbert-base");
        assert_eq!(mb_trainable, mb_total, "a full fine-tune trains everything");
        assert_eq!(mb_total as u64, peft["full_model_params"].as_u64().unwrap());
        // Qwen2.5-0.5B LoRA r16 on q/k/v/o + the 113-class score head: PEFT's trainable count
        // for the seed's recipe (also asserted in train::model_tests).
        assert_eq!(count("qwen2.5-0.5b").0, 2_263_936);
        assert!(shape("bert-large").is_err());
    }

    #[test]
    fn the_perf_run_times_every_phase_of_a_tiny_shape_on_the_cpu() {
        let cpu = ResolvedDevice::cpu(DeviceRequest::Cpu);
        let opts = PerfOptions {
            batch_sizes: vec![1, 4],
            max_length: 16,
            train_batch: 4,
            single_examples: 3,
            repeats: 2,
            warmup: 1,
            train_steps: 2,
            n_classes: 5,
            ..PerfOptions::default()
        };
        for name in ["tiny-modernbert", "tiny-qwen2"] {
            for dtype in [DType::F32, DType::F16, DType::BF16] {
                let r = run_shape(&cpu, dtype, &shape(name).unwrap(), &opts).unwrap();
                let what = format!("{name} {dtype:?}");
                assert_eq!(r.single.as_ref().map(|s| s.n), Some(3), "{what}");
                assert_eq!(
                    r.inference.iter().map(|t| t.batch_size).collect::<Vec<_>>(),
                    vec![1, 4],
                    "{what}"
                );
                for t in &r.inference {
                    assert_eq!(t.repeats, 2, "{what}");
                    let want = t.batch_size as f64 / (t.median_batch_ms / 1e3);
                    assert!((t.docs_per_s - want).abs() <= 1e-9 * want, "{what}");
                }
                let t = r
                    .training
                    .as_ref()
                    .unwrap_or_else(|| panic!("{what}: {:?}", r.training_error));
                assert_eq!((t.steps, t.batch_size, t.max_length), (2, 4, 16), "{what}");
                assert!(t.median_step_ms > 0.0 && t.p95_step_ms >= t.median_step_ms, "{what}");
                assert_eq!(t.skipped_steps.is_some(), dtype == DType::F16, "{what}");
                assert!(r.trainable_params > 0 && r.trainable_params <= r.total_params, "{what}");
                assert_eq!(
                    (r.inference_peak_device_bytes, r.training_peak_device_bytes),
                    (None, None)
                );
                assert!(r.recomputation.starts_with("not available"), "{what}");
                assert_eq!(r.dtype, dtype_name(dtype));
            }
        }
    }
}
