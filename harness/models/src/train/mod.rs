//! Training transformer classifiers: full fine-tune, LoRA or linear probe, with the seed's
//! loop (AdamW, linear warm-up and decay, per-epoch validation, best epoch by val macro F1),
//! saving what trained so the model can be re-scored without retraining.

pub mod batches;
pub mod checkpoint;
pub mod loss;
pub mod loss_scale;
pub mod memory;
pub mod optim;
pub mod plan;
pub mod resume;
pub mod schedule;

#[cfg(test)]
mod fit_tests;
#[cfg(test)]
mod model_tests;

use crate::classifier::{argmax, TextClassifier};
use crate::classify::batched_logits;
use crate::data::{Dataset, InputFile};
use crate::device::{with_out_of_memory_context, ResolvedDevice};
use crate::error::{Error, Result};
use crate::loader::{self, ModelFiles};
use crate::observer::{Quiet, RunObserver};
use crate::params::{Mode, ParamBuilder, Source};
use crate::precision::{self, PrecisionReport, ResolvedPrecision};
use crate::quantize::QuantFormat;
use crate::text::TextEncoder;
use crate::{self as models, Family, ModelConfig, Pooling, TransformerClassifier};
use candle_core::{DType, Device, Tensor};
use clsbench_stats::metrics;
use plan::{ClassWeights, TrainMethod, TrainPlan};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

/// The best epoch so far: (1-based epoch, val macro F1, trained tensors by HF name).
type BestEpoch = Option<(usize, f64, Vec<(String, Tensor)>)>;

/// One epoch of training and its validation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's micro-batches (class-weighted when weights are on).
    pub train_loss: f64,
    pub val_macro_f1: f64,
    pub val_accuracy: f64,
    /// Training time of the epoch, validation excluded.
    pub train_seconds: f64,
    pub val_seconds: f64,
    pub train_examples_per_second: f64,
    pub optimizer_steps: usize,
}

/// What a training run did, for results and provenance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainReport {
    pub checkpoint: String,
    pub model_type: String,
    pub method: TrainMethod,
    pub trainable_params: usize,
    /// Parameters of the trained model (backbone + adapters + head, each counted once; PEFT's
    /// own printout also counts the frozen original of a `modules_to_save` head).
    pub total_params: usize,
    pub trainable_percent: f64,
    pub train_examples: usize,
    pub val_examples: usize,
    pub warmup_steps: usize,
    pub total_steps: usize,
    pub epochs: Vec<EpochReport>,
    /// 1-based epoch whose weights were kept (highest val macro F1, first one on ties).
    pub best_epoch: usize,
    /// With `early_stopping_patience`: the last epoch trained, when that was before `epochs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_early_after: Option<usize>,
    /// When an interrupted run was continued: the epoch whose checkpoint it continued from
    /// (epochs up to it were trained by an earlier run, and their reports come from there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_after_epoch: Option<usize>,
    /// Summed over the runs of a training resumed from an epoch checkpoint (the unfinished
    /// epoch an interruption lost is not counted).
    pub total_wall_seconds: f64,
    /// The compute dtype that ran (frozen weights and activations; `precision` says more).
    pub dtype: String,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Compute and master dtypes, loss scaling (skipped steps, final scale), and why the
    /// precision differs from the suite's `dtype`, when it does.
    #[serde(default)]
    pub precision: Option<PrecisionReport>,
    /// sha256 of the base weights the run started from.
    pub checkpoint_sha256: String,
    pub weights_origin: String,
    /// Whether each transformer layer was recomputed in backward (`gradient_checkpointing`).
    #[serde(default)]
    pub gradient_checkpointing: bool,
    /// The memory planner's estimate and how each batch was run (whole or in micro-batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_plan: Option<memory::MemoryPlan>,
}

impl TrainReport {
    /// A LoRA run's report for tests of its readers (clsbench's results, claims and perf
    /// tests): `train_examples` per epoch, one epoch of `train_seconds` each, `trainable` of
    /// `total` parameters; the best epoch is the last.
    #[doc(hidden)]
    pub fn for_tests(train_examples: usize, epoch_train_seconds: &[f64], trainable: usize, total: usize) -> Self {
        TrainReport {
            checkpoint: "tiny".into(),
            model_type: "llama".into(),
            method: TrainMethod::Lora,
            trainable_params: trainable,
            total_params: total,
            trainable_percent: 100.0 * trainable as f64 / total.max(1) as f64,
            train_examples,
            val_examples: 0,
            warmup_steps: 0,
            total_steps: epoch_train_seconds.len(),
            epochs: (1..)
                .zip(epoch_train_seconds)
                .map(|(epoch, &train_seconds)| EpochReport {
                    epoch,
                    train_loss: 1.0,
                    val_macro_f1: 0.5,
                    val_accuracy: 0.5,
                    train_seconds,
                    val_seconds: 0.0,
                    train_examples_per_second: train_examples as f64 / train_seconds,
                    optimizer_steps: 1,
                })
                .collect(),
            best_epoch: epoch_train_seconds.len(),
            stopped_early_after: None,
            resumed_after_epoch: None,
            total_wall_seconds: epoch_train_seconds.iter().sum(),
            dtype: "f32".into(),
            device: "cpu".into(),
            precision: None,
            checkpoint_sha256: String::new(),
            weights_origin: String::new(),
            gradient_checkpointing: false,
            memory_plan: None,
        }
    }
}

/// Adapter from the pipeline: `id` names the model in the weights' provenance; `device` is
/// the run's.
pub fn fit_for_pipeline(
    id: &str,
    spec: &TrainPlan,
    d: &Dataset,
    seed: u64,
    dir: &Path,
    device: &ResolvedDevice,
    obs: &dyn RunObserver,
) -> Result<(Box<dyn TextClassifier>, TrainReport, Vec<InputFile>)> {
    let (clf, report) = fit_transformer_with(spec, d, seed, dir, device, &FitOptions::default(), obs)?;
    let inputs = vec![InputFile {
        role: format!("weights:{id}"),
        path: spec.checkpoint.clone(),
        sha256: report.checkpoint_sha256.clone(),
    }];
    Ok((clf, report, inputs))
}

/// The model `fit_for_pipeline` saved in `dir`, re-loaded with its backbone linear layers in
/// `format`: a suite's quantised variant (`quantize = [...]`), for prediction and timing.
pub fn quantized_for_pipeline(
    spec: &TrainPlan,
    n_classes: usize,
    dir: &Path,
    device: &ResolvedDevice,
    format: QuantFormat,
) -> Result<Box<dyn TextClassifier>> {
    load_trained(spec, n_classes, dir, device, Some(format))
}

/// Before any model trains: every format in `spec.quantize` can hold every backbone linear
/// layer of the checkpoint's config.json, or the first layer it cannot is named.
pub fn check_quantize_formats(spec: &TrainPlan) -> Result<()> {
    if spec.quantize.is_empty() {
        return Ok(());
    }
    let files = loader::resolve(&spec.checkpoint, spec.local_dir.as_deref())?;
    let config = files.read_config()?;
    for &format in &spec.quantize {
        crate::quantize::check_config(format, &config)
            .map_err(|e| Error::bad_input(format!("field `quantize`: {e} (in {})", files.config.display())))?;
    }
    Ok(())
}

/// Everything shared by training and re-loading: files, config, tokenizer, device, precision.
struct Setup {
    files: ModelFiles,
    config: ModelConfig,
    encoder: TextEncoder,
    device: Device,
    /// `cpu` or `cuda:N`.
    device_label: String,
    /// The compute dtype (frozen weights, activations); trainable tensors are f32.
    dtype: DType,
    precision: ResolvedPrecision,
    pooling: Option<Pooling>,
}

fn setup(spec: &TrainPlan, device: &ResolvedDevice) -> Result<Setup> {
    let family = spec.family;
    let files = loader::resolve(&spec.checkpoint, spec.local_dir.as_deref())?;
    let config = files.read_config()?;
    if config.family() != family {
        return Err(Error::bad_input(format!(
            "{}: model_type {:?} is a{} but the suite lists it as kind = {:?}",
            files.config.display(),
            config.model_type(),
            if config.family() == Family::Encoder {
                "n encoder"
            } else {
                " decoder"
            },
            if family == Family::Encoder {
                "encoder"
            } else {
                "decoder"
            },
        )));
    }
    let precision = precision::resolve(spec.dtype, device);
    let dtype = precision.precision.compute;
    let encoder = TextEncoder::load(&files, &config, Some(spec.max_length), true)?;
    Ok(Setup {
        files,
        config,
        encoder,
        device: device.device.clone(),
        device_label: device.label.clone(),
        dtype,
        precision,
        pooling: spec.pooling,
    })
}

/// The module names PEFT's SEQ_CLS task type trains fully (`modules_to_save`).
fn head_modules(config: &ModelConfig) -> Vec<&'static str> {
    match config {
        ModelConfig::Llama(_) | ModelConfig::Qwen2(_) => vec!["score"],
        _ => vec!["classifier"],
    }
}

/// The inference model from trained tensors (HF names): LoRA merged, fused ops, backbone
/// linear layers quantised to `quantize` when given.
fn inference_classifier(
    s: Setup,
    spec: &TrainPlan,
    n_classes: usize,
    trained: HashMap<String, Tensor>,
    seed: u64,
    quantize: Option<QuantFormat>,
) -> Result<TransformerClassifier> {
    let lora = spec.method.lora().cloned();
    let weights = loader::Weights::open(&s.files.weights)?;
    let builder = ParamBuilder::new(
        Source::Checkpoint(weights),
        Mode::Inference { lora },
        s.dtype,
        s.device.clone(),
        seed,
    )
    .with_overrides(trained)
    .with_quantize(quantize);
    let (model, _) = models::build_classifier(&s.config, builder, n_classes, s.pooling)?;
    Ok(TransformerClassifier::new(
        model,
        s.encoder,
        s.device,
        spec.eval_batch_size,
    ))
}

/// Re-load a model trained by `fit_transformer` into `work_dir`, without retraining; with
/// `quantize`, its backbone linear layers in that format (the suite's quantised variants).
pub fn load_trained(
    spec: &TrainPlan,
    n_classes: usize,
    work_dir: &Path,
    device: &ResolvedDevice,
    quantize: Option<QuantFormat>,
) -> Result<Box<dyn TextClassifier>> {
    let s = setup(spec, device)?;
    let (meta, tensors) = checkpoint::load(work_dir, &s.device)?;
    if meta.n_classes != n_classes || meta.method != spec.method.kind() {
        return Err(Error::bad_input(format!(
            "{}: trained with {} classes and method {:?}, asked for {n_classes} classes and {:?}",
            work_dir.display(),
            meta.n_classes,
            meta.method,
            spec.method.kind()
        )));
    }
    let sha = s.files.weights_sha256()?;
    if sha != meta.base_weights_sha256 {
        return Err(Error::bad_input(format!(
            "{}: trained on base weights {} but {} now resolves to {sha}",
            work_dir.display(),
            meta.base_weights_sha256,
            spec.checkpoint
        )));
    }
    Ok(Box::new(inference_classifier(
        s, spec, n_classes, tensors, 0, quantize,
    )?))
}

/// Internal knobs of `fit_transformer`, not part of a suite.
#[derive(Debug, Clone, Default)]
pub(crate) struct FitOptions {
    /// Stop with an error right after epoch N's checkpoint is written, as an interruption
    /// (SIGINT) between epochs would (tests of resuming).
    pub stop_after_epoch: Option<usize>,
    /// Leave the epoch checkpoint in place after training finishes (tests compare it).
    pub keep_epoch_checkpoint: bool,
    /// The f16 loss scaler to start from instead of PyTorch's defaults (tests that need skips
    /// and growth within a few steps).
    pub loss_scaler: Option<loss_scale::LossScaler>,
}

/// Train `spec` on `data.train`, select the epoch by val macro F1, save it under `work_dir`
/// and return it ready for inference.
///
/// Every finished epoch is checkpointed in `work_dir/resume/` (see `resume`); a run that
/// finds a checkpoint of the same settings and data continues after its epoch, and ends with
/// the weights, predictions and epoch losses an uninterrupted run has. The checkpoint is
/// removed once training has finished and its result is saved. Says nothing (see
/// `fit_transformer_with` for a run's observer).
pub fn fit_transformer(
    spec: &TrainPlan,
    data: &Dataset,
    seed: u64,
    work_dir: &Path,
    device: &ResolvedDevice,
) -> Result<(Box<dyn TextClassifier>, TrainReport)> {
    fit_transformer_with(spec, data, seed, work_dir, device, &FitOptions::default(), &Quiet)
}

/// `fit_transformer` with internal knobs and an observer of its epochs.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fit_transformer_with(
    spec: &TrainPlan,
    data: &Dataset,
    seed: u64,
    work_dir: &Path,
    device: &ResolvedDevice,
    opts: &FitOptions,
    obs: &dyn RunObserver,
) -> Result<(Box<dyn TextClassifier>, TrainReport)> {
    let started = Instant::now();
    let s = setup(spec, device)?;
    if let Some(note) = &s.precision.note {
        obs.detail(note);
    }
    let n_classes = data.labels.len();
    let base_sha = s.files.weights_sha256()?;
    let rows: Vec<usize> = match spec.max_train_examples {
        Some(cap) => batches::stratified_subsample(&data.train.iter().map(|e| e.label).collect::<Vec<_>>(), cap, seed),
        None => (0..data.train.len()).collect(),
    };
    if rows.is_empty() || data.val.is_empty() {
        return Err(Error::bad_input(
            "training needs at least one train and one val example",
        ));
    }
    let train_texts: Vec<&str> = rows.iter().map(|&i| data.train[i].text.as_str()).collect();
    let train_labels: Vec<usize> = rows.iter().map(|&i| data.train[i].label).collect();
    let train_ids = s.encoder.encode(&train_texts)?;
    let val_texts: Vec<&str> = data.val.iter().map(|e| e.text.as_str()).collect();
    let val_gold: Vec<usize> = data.val.iter().map(|e| e.label).collect();
    let val_ids = s.encoder.encode(&val_texts)?;
    // Everything the trained weights depend on: an epoch checkpoint is resumed only when this
    // matches. (The pipeline's cache key is not passed down, and need not be: this covers
    // what this function is given.)
    let resume_settings = serde_json::json!({
        "format": resume::FORMAT,
        "clsbench_version": env!("CARGO_PKG_VERSION"),
        // A checkpoint of another training loop must not be continued by this one.
        "source": crate::SOURCE_SHA256,
        "spec": spec,
        "family": format!("{:?}", spec.family),
        "seed": seed,
        "base_weights_sha256": base_sha,
        "device": s.device_label,
        "compute_dtype": precision::dtype_name(s.dtype),
        "labels": data.labels,
        "train_examples": rows.len(),
        "train_sha256": resume::examples_sha256(&train_texts, &train_labels),
        "val_examples": data.val.len(),
        "val_sha256": resume::examples_sha256(&val_texts, &val_gold),
    });
    let fingerprint = resume::fingerprint(&resume_settings);

    let mode = spec.method.mode();
    let memory_plan = plan_memory(
        &s.config,
        s.dtype,
        &s.device,
        s.pooling,
        spec,
        &mode,
        n_classes,
        &s.files.weights,
    )?;
    log_memory_plan(spec, &memory_plan, obs);
    if s.device.is_cpu() {
        refuse_above_available(spec, &memory_plan)?;
    }
    let micro_batch = memory_plan.micro_batch_size;
    let weights = loader::Weights::open(&s.files.weights)?;
    let builder = ParamBuilder::new(Source::Checkpoint(weights), mode, s.dtype, s.device.clone(), seed)
        .with_gradient_checkpointing(spec.gradient_checkpointing);
    let dropout_rng = builder.dropout_rng();
    let recompute = builder.recompute();
    let (model, params) = models::build_classifier(&s.config, builder, n_classes, s.pooling)?;

    let class_weights = match spec.class_weights {
        ClassWeights::None => None,
        ClassWeights::SqrtInverse => {
            let mut counts = vec![0usize; n_classes];
            for &l in &train_labels {
                counts[l] += 1;
            }
            Some(loss::sqrt_inverse_weights(&counts))
        }
    };
    let lengths: Vec<usize> = train_ids.iter().map(Vec::len).collect();
    let micro_per_epoch = rows.len().div_ceil(spec.batch_size);
    let steps_per_epoch = micro_per_epoch.div_ceil(spec.grad_accumulation);
    let schedule = schedule::LinearSchedule::new(spec.learning_rate, spec.warmup, steps_per_epoch * spec.epochs);
    let mut opt = optim::GroupedAdamW::new(
        &params.trainable,
        spec.learning_rate,
        spec.weight_decay,
        spec.decay_bias_and_norm,
    )?;
    let heads = head_modules(&s.config);
    // f16 training scales the loss (see `loss_scale`); f32 and bf16 need not.
    let mut scaler = s
        .precision
        .precision
        .loss_scaling
        .then(|| opts.loss_scaler.clone().unwrap_or_default());

    let mut epochs = Vec::new();
    let mut best: BestEpoch = None;
    let mut step = 0usize;
    let mut first_epoch = 1;
    let mut wall_seconds_before = 0.0;
    let mut resumed_after_epoch = None;
    match resume::load(work_dir, &fingerprint, &s.device)? {
        resume::Lookup::Nothing => {}
        resume::Lookup::Ignored(why) => obs.detail(&format!("{why}: not resumed, training from epoch 1")),
        resume::Lookup::Found(r) => {
            restore_weights(&params.trainable, &r.weights).map_err(|e| {
                Error::Model(format!(
                    "resuming from {}: {}; remove that folder to train from epoch 1",
                    resume::dir(work_dir).display(),
                    e.message()
                ))
            })?;
            opt.restore(r.optimizer)?;
            *dropout_rng
                .lock()
                .map_err(|_| Error::Model("dropout rng poisoned".into()))? = r.dropout_rng;
            obs.detail(&format!(
                "resuming after epoch {}/{} from the checkpoint in {}",
                r.epoch,
                spec.epochs,
                resume::dir(work_dir).display()
            ));
            first_epoch = r.epoch + 1;
            step = r.optimizer_steps;
            epochs = r.epochs;
            best = Some(r.best);
            wall_seconds_before = r.wall_seconds;
            resumed_after_epoch = Some(r.epoch);
            if let (Some(_), Some(saved)) = (&scaler, r.loss_scaler) {
                scaler = Some(saved);
            }
        }
    }
    for epoch in first_epoch..=spec.epochs {
        // Checked before each epoch (not after the last), so a run resumed after the epoch that
        // exhausted the patience stops there too.
        if let (Some(patience), Some((best_epoch, best_f1, _))) = (spec.early_stopping_patience, best.as_ref()) {
            let last = epoch - 1;
            if last - best_epoch >= patience {
                obs.detail(&format!(
                    "early stopping after epoch {last}/{}: no higher val macro F1 than epoch {best_epoch}'s {best_f1:.4} for {patience} epoch(s)",
                    spec.epochs
                ));
                break;
            }
        }
        let t0 = Instant::now();
        let order = batches::epoch_batches(&lengths, spec.batch_size, spec.length_bucketing, seed, epoch);
        let bar = obs.progress(order.len() as u64, &format!("epoch {epoch}/{}", spec.epochs));
        let (mut loss_sum, mut n_micro, mut epoch_steps) = (0f64, 0usize, 0usize);
        for group in order.chunks(spec.grad_accumulation) {
            for batch in group {
                let mut batch_loss = 0f64;
                for part in micro_batches(batch, micro_batch, &train_labels, class_weights.as_deref()) {
                    let ids: Vec<&[u32]> = part.rows.iter().map(|&i| train_ids[i].as_slice()).collect();
                    let labels: Vec<usize> = part.rows.iter().map(|&i| train_labels[i]).collect();
                    let b = s.encoder.pad(&ids, 8, &s.device)?;
                    let loss_scale = scaler.as_ref().map(|sc| sc.scale());
                    // The batch's loss is the share-weighted sum of its micro-batches' (see
                    // `micro_batches`), so their summed gradients are the whole batch's.
                    let weight = part.share / group.len() as f64;
                    let run = || -> Result<(f64, candle_core::backprop::GradStore)> {
                        let logits = model.forward(&b.input_ids, &b.attention_mask, true)?;
                        // In f32 whatever the model's dtype (cross_entropy casts the logits up).
                        let l = loss::cross_entropy(&logits, &labels, class_weights.as_deref())?;
                        let value = l.to_scalar::<f32>()? as f64;
                        if !value.is_finite() {
                            return Ok((value, candle_core::backprop::GradStore::default()));
                        }
                        let to_backward = match loss_scale {
                            None => (l * weight)?,
                            Some(scale) => (l * (scale * weight))?,
                        };
                        let mut grads = to_backward.backward()?;
                        if let Some(r) = &recompute {
                            r.merge_into(&mut grads)?;
                        }
                        Ok((value, grads))
                    };
                    let (value, grads) = run().map_err(|e| {
                        if let Some(r) = &recompute {
                            let _ = r.clear();
                        }
                        with_out_of_memory_context(
                            e,
                            &format!("training at optimizer step {step}"),
                            micro_batch,
                            spec.max_length,
                        )
                    })?;
                    if !value.is_finite() {
                        let hint = if s.dtype == DType::F16 {
                            " (in f16 the activations may have overflowed: try dtype = \"bf16\" or \"f32\")"
                        } else {
                            ""
                        };
                        return Err(diverged(format!("loss is {value}{hint}"), step, epoch, &best, work_dir));
                    }
                    opt.accumulate(&grads)?;
                    drop(grads);
                    batch_loss += part.share * value;
                }
                loss_sum += batch_loss;
                n_micro += 1;
                bar.inc(1);
            }
            let stepped = match scaler.as_mut() {
                None => opt
                    .step(schedule.lr(step), spec.grad_clip)
                    .map(|_| true)
                    .map_err(|e| diverged(e.to_string(), step, epoch, &best, work_dir))?,
                // An overflow skips the step: the weights and the schedule stay where they are.
                Some(sc) => opt
                    .step_scaled(schedule.lr(step), spec.grad_clip, sc)
                    .map(|info| info.is_some())
                    .map_err(|e| diverged(e.to_string(), step, epoch, &best, work_dir))?,
            };
            if stepped {
                step += 1;
                epoch_steps += 1;
            }
        }
        drop(bar);
        let train_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let logits =
            batched_logits(model.as_ref(), &s.encoder, &val_ids, spec.eval_batch_size, &s.device).map_err(|e| {
                with_out_of_memory_context(
                    e,
                    &format!("validating after epoch {epoch}"),
                    spec.eval_batch_size,
                    spec.max_length,
                )
            })?;
        let pred: Vec<usize> = logits.iter().map(|r| argmax(r).0).collect();
        let report = EpochReport {
            epoch,
            train_loss: loss_sum / n_micro.max(1) as f64,
            val_macro_f1: metrics::macro_f1(&val_gold, &pred, n_classes)?,
            val_accuracy: metrics::accuracy(&val_gold, &pred)?,
            train_seconds,
            val_seconds: t1.elapsed().as_secs_f64(),
            train_examples_per_second: rows.len() as f64 / train_seconds.max(1e-9),
            optimizer_steps: epoch_steps,
        };
        obs.detail(&format!(
            "epoch {epoch}: train loss {:.4}, val macro F1 {:.4}, val accuracy {:.4} ({:.0} s, {:.1} ex/s)",
            report.train_loss,
            report.val_macro_f1,
            report.val_accuracy,
            train_seconds,
            report.train_examples_per_second
        ));
        if best.as_ref().is_none_or(|(_, f1, _)| report.val_macro_f1 > *f1) {
            let snapshot = params
                .trainable
                .iter()
                .map(|v| Ok((v.name.clone(), v.var.as_tensor().copy()?)))
                .collect::<Result<Vec<_>>>()?;
            let meta = checkpoint::TrainedMeta {
                method: spec.method.kind(),
                model_type: s.config.model_type().into(),
                checkpoint: spec.checkpoint.clone(),
                base_weights_sha256: base_sha.clone(),
                n_classes,
                epoch,
                lora: spec.method.lora().cloned(),
                files: vec![],
            };
            checkpoint::save(work_dir, &meta, &snapshot, &heads)?;
            best = Some((epoch, report.val_macro_f1, snapshot));
        }
        epochs.push(report);
        let (best_epoch, best_f1, _) = best.as_ref().expect("the first epoch is always the best so far");
        let weights_now: Vec<(String, Tensor)> = params
            .trainable
            .iter()
            .map(|v| (v.name.clone(), v.var.as_tensor().clone()))
            .collect();
        let rng_now = dropout_rng
            .lock()
            .map_err(|_| Error::Model("dropout rng poisoned".into()))?
            .clone();
        resume::save(
            work_dir,
            &resume::EpochCheckpoint {
                fingerprint: &fingerprint,
                settings: &resume_settings,
                epoch,
                optimizer_steps: step,
                optimizer: &opt.state(),
                dropout_rng: &rng_now,
                epochs: &epochs,
                best_epoch: *best_epoch,
                best_val_macro_f1: *best_f1,
                weights: &weights_now,
                wall_seconds: wall_seconds_before + started.elapsed().as_secs_f64(),
                loss_scaler: scaler.as_ref(),
            },
        )?;
        if opts.stop_after_epoch == Some(epoch) {
            return Err(Error::Model(format!(
                "training stopped after epoch {epoch} (stop_after_epoch)"
            )));
        }
    }
    let (best_epoch, _, snapshot) = best.expect("at least one epoch");
    // Every epoch's report is in `epochs` (a resumed run's earlier ones from the checkpoint), and
    // only early stopping leaves the loop before the last.
    let stopped_early_after = (epochs.len() < spec.epochs).then_some(epochs.len());
    let trainable_params = params.trainable_params();
    let total_params = params.total_params();
    // Free the training graph's variables before building the inference copy.
    drop(opt);
    drop(params);
    drop(model);
    let device_name = s.device_label.clone();
    let dtype_name = precision::dtype_name(s.dtype).to_string();
    let precision_report = PrecisionReport {
        compute_dtype: dtype_name.clone(),
        master_dtype: precision::dtype_name(precision::MASTER_DTYPE).to_string(),
        loss_scaling: scaler.as_ref().map(loss_scale::LossScaler::report),
        note: s.precision.note.clone(),
    };
    let origin = s.files.origin.clone();
    let model_type = s.config.model_type().to_string();
    let clf = inference_classifier(s, spec, n_classes, snapshot.into_iter().collect(), seed, None)?;
    let report = TrainReport {
        checkpoint: spec.checkpoint.clone(),
        model_type,
        method: spec.method.kind(),
        trainable_params,
        total_params,
        trainable_percent: 100.0 * trainable_params as f64 / total_params.max(1) as f64,
        train_examples: rows.len(),
        val_examples: data.val.len(),
        warmup_steps: schedule.warmup_steps,
        total_steps: schedule.total_steps,
        epochs,
        best_epoch,
        stopped_early_after,
        resumed_after_epoch,
        total_wall_seconds: wall_seconds_before + started.elapsed().as_secs_f64(),
        dtype: dtype_name,
        device: device_name,
        precision: Some(precision_report),
        checkpoint_sha256: base_sha,
        weights_origin: origin,
        gradient_checkpointing: spec.gradient_checkpointing,
        memory_plan: Some(memory_plan),
    };
    crate::fsutil::write_json_atomic(&work_dir.join("train_report.json"), &report)?;
    // The trained model and its report are saved: the epoch checkpoint (as large as the
    // trainable weights three times over) has served.
    let removed = if opts.keep_epoch_checkpoint {
        Ok(())
    } else {
        resume::remove(work_dir)
    };
    if let Err(e) = removed {
        obs.detail(&format!("could not remove the finished run's epoch checkpoint: {e}"));
    }
    Ok((Box::new(clf), report))
}

/// Put a checkpoint's tensors into the trainable variables: each one present, same shape and
/// dtype, and nothing left over.
fn restore_weights(vars: &[models::params::NamedVar], saved: &HashMap<String, Tensor>) -> Result<()> {
    if saved.len() != vars.len() {
        return Err(Error::Model(format!(
            "the checkpoint holds {} tensors, the model trains {}",
            saved.len(),
            vars.len()
        )));
    }
    for v in vars {
        let t = saved
            .get(&v.name)
            .ok_or_else(|| Error::Model(format!("the checkpoint lacks `{}`", v.name)))?;
        let cur = v.var.as_tensor();
        if t.dims() != cur.dims() || t.dtype() != cur.dtype() {
            return Err(Error::Model(format!(
                "`{}` is {:?} {:?} in the checkpoint, {:?} {:?} in the model",
                v.name,
                t.dtype(),
                t.dims(),
                cur.dtype(),
                cur.dims()
            )));
        }
        v.var.set(&t.to_device(cur.device())?)?;
    }
    Ok(())
}

fn diverged(what: String, step: usize, epoch: usize, best: &BestEpoch, dir: &Path) -> Error {
    let kept = match best {
        Some((e, f1, _)) => format!(
            "the last good checkpoint (epoch {e}, val macro F1 {f1:.4}) is kept in {}",
            dir.display()
        ),
        None => "no checkpoint had been saved yet".into(),
    };
    Error::Model(format!(
        "training diverged at optimizer step {step} (epoch {epoch}): {what}; {kept}"
    ))
}

/// One micro-batch of a batch: its rows and its share of the batch's loss.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MicroBatch {
    pub rows: Vec<usize>,
    /// The micro-batch's summed class weights over the batch's (its row count over the
    /// batch's without weights). `cross_entropy` is the weighted mean over its rows, so the
    /// batch's loss is the share-weighted sum of its micro-batches' losses, exactly.
    pub share: f64,
}

/// Split `batch` into consecutive micro-batches of at most `size` rows.
pub(crate) fn micro_batches(
    batch: &[usize],
    size: usize,
    labels: &[usize],
    class_weights: Option<&[f32]>,
) -> Vec<MicroBatch> {
    let weight = |rows: &[usize]| -> f64 {
        rows.iter()
            .map(|&i| class_weights.map_or(1.0, |w| f64::from(w[labels[i]])))
            .sum()
    };
    let total = weight(batch);
    batch
        .chunks(size.max(1))
        .map(|rows| MicroBatch {
            rows: rows.to_vec(),
            share: weight(rows) / total,
        })
        .collect()
}

/// The memory plan of a run, made from the config before any weight is loaded (parameters
/// counted on a zero-filled build, which touches no memory): the micro-batch size that fits
/// `max_memory_gb`, or a refusal naming the estimate when even one row cannot fit. On the CPU
/// the load peak counts too, from the checkpoint's safetensors headers (`weights`; read only
/// once the training peak fits, so a cap too small for training is refused without them).
#[allow(clippy::too_many_arguments)]
fn plan_memory(
    config: &ModelConfig,
    dtype: DType,
    device: &Device,
    pooling: Option<Pooling>,
    spec: &TrainPlan,
    mode: &Mode,
    n_classes: usize,
    weights: &[std::path::PathBuf],
) -> Result<memory::MemoryPlan> {
    let counting = ParamBuilder::new(Source::Zeros, mode.clone(), dtype, Device::Cpu, 0);
    let (_, counted) = models::build_classifier(config, counting, n_classes, pooling)?;
    let lora = match mode {
        Mode::Lora(l) => Some(l.clone()),
        _ => None,
    };
    let mut input = memory::PlanInput {
        config,
        method: spec.method.kind(),
        lora: lora.as_ref(),
        dtype,
        fused_ops: models::layers::trains_fused(device, dtype),
        total_params: counted.total_params(),
        trainable_params: counted.trainable_params(),
        seq_len: spec.max_length,
        gradient_checkpointing: spec.gradient_checkpointing,
        grad_accumulation: spec.grad_accumulation,
        mapped_checkpoint_bytes: None,
    };
    drop(counted);
    let refuse = |e: memory::DoesNotFit| {
        if e.at_one_row.load_bound() {
            Error::bad_input(format!(
                "max_memory_gb = {}: loading {} needs about {} (the memory-mapped checkpoint stays resident \
                 while it is copied); raise max_memory_gb",
                e.cap_gib,
                spec.checkpoint,
                e.at_one_row.describe(),
            ))
        } else {
            Error::bad_input(format!(
                "max_memory_gb = {}: training {} needs about {} even one row at a time (x {} tokens); \
                 raise max_memory_gb, lower max_length, or set gradient_checkpointing = true",
                e.cap_gib,
                spec.checkpoint,
                e.at_one_row.describe(),
                spec.max_length,
            ))
        }
    };
    let training = memory::plan(&input, spec.batch_size, spec.max_memory_gb).map_err(refuse)?;
    if !device.is_cpu() {
        return Ok(training);
    }
    input.mapped_checkpoint_bytes = Some(loader::stored_tensors(weights)?.mapped_bytes(input.total_params));
    memory::plan(&input, spec.batch_size, spec.max_memory_gb).map_err(refuse)
}

fn log_memory_plan(spec: &TrainPlan, plan: &memory::MemoryPlan, obs: &dyn RunObserver) {
    let checkpointing = if spec.gradient_checkpointing {
        ", layers recomputed in backward"
    } else {
        ""
    };
    if plan.micro_batches > 1 {
        obs.detail(&format!(
            "memory: {} x {} tokens would need about {:.2} GiB, over max_memory_gb = {}: {} micro-batches of {} rows \
             per batch, gradients accumulated (estimate {}{checkpointing})",
            spec.batch_size,
            spec.max_length,
            plan.full_batch_estimate_gib,
            spec.max_memory_gb.unwrap_or_default(),
            plan.micro_batches,
            plan.micro_batch_size,
            plan.estimate.describe(),
        ));
    } else {
        obs.detail(&format!(
            "memory: estimate {} at {} x {} tokens{checkpointing}",
            plan.estimate.describe(),
            spec.batch_size,
            spec.max_length
        ));
    }
}

/// Refuse a plan above the memory this machine has available now, instead of letting the
/// allocator abort the process mid-epoch.
fn refuse_above_available(spec: &TrainPlan, plan: &memory::MemoryPlan) -> Result<()> {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    let available = sys.available_memory() as f64 / (1u64 << 30) as f64;
    if available > 0.0 && plan.estimate.total_gib() > available {
        return Err(Error::bad_input(format!(
            "out of memory: training {} with micro-batches of {} x {} tokens needs about {} but {available:.1} GiB \
             is available; set max_memory_gb (micro-batches with gradient accumulation), gradient_checkpointing = true, \
             or lower max_length",
            spec.checkpoint,
            plan.micro_batch_size,
            spec.max_length,
            plan.estimate.describe(),
        )));
    }
    Ok(())
}

/// The memory plan of one transformer from its config alone (no tokenizer, no weights): what
/// `clsbench run` checks for every selected model before the first one trains, so that a
/// `max_memory_gb` too small for one row is refused up front (exit 2).
pub fn preflight_memory(spec: &TrainPlan, n_classes: usize, device: &ResolvedDevice) -> Result<memory::MemoryPlan> {
    let files = loader::resolve(&spec.checkpoint, spec.local_dir.as_deref())?;
    let config = files.read_config()?;
    let precision = precision::resolve(spec.dtype, device);
    let mode = spec.method.mode();
    plan_memory(
        &config,
        precision.precision.compute,
        &device.device,
        spec.pooling,
        spec,
        &mode,
        n_classes,
        &files.weights,
    )
}
