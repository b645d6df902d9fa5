//! Building a model's tensors: from a checkpoint, from saved training results, or random (for
//! tests); frozen or trainable according to the training method. Every trainable tensor is
//! recorded under its Hugging Face name (the name PEFT and transformers use), so optimiser
//! groups, counts and saved adapters all speak the same names as the Python stack.

use super::layers::Dropout;
use super::loader::Weights;
use super::lora::{merged_weight, Linear, LoraAdapter};
use super::precision::MASTER_DTYPE;
use super::quantize::QuantFormat;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// LoRA hyper-parameters, targets named as PEFT names modules (`q_proj`, `Wqkv`, `query`);
/// recorded as such in a trained model's `trained.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoraSettings {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub targets: Vec<String>,
}

impl LoraSettings {
    /// PEFT's rule: a target matches a module whose full name equals it or ends with ".target".
    pub fn matches(&self, module: &str) -> Option<&str> {
        self.targets
            .iter()
            .map(String::as_str)
            .find(|t| module == *t || module.ends_with(&format!(".{t}")))
    }
}

/// Which tensors train.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Nothing trains; with `lora`, adapters are read from the overrides and merged.
    Inference { lora: Option<LoraSettings> },
    /// Every weight trains.
    Full,
    /// Base frozen, adapters on the targets, head trained.
    Lora(LoraSettings),
    /// Backbone frozen, head trained.
    LinearProbe,
}

/// Backbone weights come with the checkpoint; head weights (the classifier / score layer) are
/// new and always train unless in inference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Backbone,
    Head,
}

/// How transformers initialises a tensor the checkpoint lacks (and how random test models are
/// filled).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    Normal(f64),
    Zeros,
    Ones,
}

/// What a trainable tensor is, for optimiser groups and for saving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamKind {
    Base,
    Head,
    LoraA,
    LoraB,
}

/// A trainable tensor with its Hugging Face name (e.g. `model.layers.0.self_attn.q_proj.lora_A.weight`).
#[derive(Debug, Clone)]
pub struct NamedVar {
    pub name: String,
    pub var: Var,
    pub kind: ParamKind,
}

/// Where tensor values come from.
pub enum Source {
    Checkpoint(Weights),
    /// Every tensor drawn from its `Init` (tiny test models).
    Random,
    /// Every tensor zero (counting parameters of real-size configs without real weights:
    /// zeroed allocations are not touched, so they cost no memory).
    Zeros,
    /// Every tensor drawn from its `Init` by the device's own generator (candle's `randn`:
    /// cuRAND on a GPU), for throughput runs of real-size configs without weights: much faster
    /// than `Random` for half a billion values, and not reproducible across devices.
    DeviceRandom,
}

/// Collects a model's tensors as the model code asks for them.
pub struct ParamBuilder {
    source: Source,
    /// Trained values (head, adapters, or all weights after a full fine-tune), by HF name;
    /// they take precedence over `source`.
    overrides: HashMap<String, Tensor>,
    /// Alternative checkpoint names: a name starting with `.0` is also looked up with `.1`
    /// in its place (BERT checkpoints saved as `BertModel` lack the `bert.` prefix).
    aliases: Vec<(String, String)>,
    mode: Mode,
    dtype: DType,
    device: Device,
    rng: RefCell<ChaCha8Rng>,
    dropout_rng: Arc<Mutex<ChaCha8Rng>>,
    trainable: RefCell<Vec<NamedVar>>,
    frozen_params: Cell<usize>,
    linear_names: RefCell<BTreeSet<String>>,
    matched_targets: RefCell<BTreeSet<String>>,
    /// Set by `with_gradient_checkpointing`: the models run their layers through it.
    recompute: Option<super::recompute::Recompute>,
    /// Inference only: backbone linear layers are quantised to this format (after merging).
    quantize: Option<QuantFormat>,
}

/// What a finished build reports besides the model.
#[derive(Debug)]
pub struct BuiltParams {
    pub trainable: Vec<NamedVar>,
    pub frozen_params: usize,
}

impl BuiltParams {
    pub fn trainable_params(&self) -> usize {
        self.trainable.iter().map(|v| v.var.elem_count()).sum()
    }
    pub fn total_params(&self) -> usize {
        self.trainable_params() + self.frozen_params
    }
}

impl ParamBuilder {
    pub fn new(source: Source, mode: Mode, dtype: DType, device: Device, seed: u64) -> ParamBuilder {
        ParamBuilder {
            source,
            overrides: HashMap::new(),
            aliases: Vec::new(),
            mode,
            dtype,
            device,
            rng: RefCell::new(ChaCha8Rng::seed_from_u64(seed)),
            // A separate stream so that changing the init does not change dropout masks.
            dropout_rng: Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_d409u64))),
            trainable: RefCell::new(Vec::new()),
            frozen_params: Cell::new(0),
            linear_names: RefCell::new(BTreeSet::new()),
            matched_targets: RefCell::new(BTreeSet::new()),
            recompute: None,
            quantize: None,
        }
    }

    /// Quantise every backbone linear layer's weight (in `Mode::Inference`, after LoRA is
    /// merged). The classification head stays full precision: it is a few thousand weights,
    /// and its [n_classes, hidden] shape is the one most often off the formats' blocks.
    pub fn with_quantize(mut self, format: Option<QuantFormat>) -> Self {
        self.quantize = format;
        self
    }

    /// The inference layer, quantised when asked for.
    fn finish_inference_linear(&self, prefix: &str, linear: Linear, role: Role) -> Result<Linear> {
        match (self.quantize, role, &self.mode) {
            (Some(format), Role::Backbone, Mode::Inference { .. }) => Ok(linear.quantized(prefix, format)?),
            _ => Ok(linear),
        }
    }

    /// Recompute each transformer layer in backward instead of keeping its activations (see
    /// `recompute`); only training forwards are affected.
    pub fn with_gradient_checkpointing(mut self, on: bool) -> Self {
        self.recompute = on.then(|| super::recompute::Recompute::new(self.dropout_rng.clone()));
        self
    }

    /// The recomputation context the model's layers share, when checkpointing is on: the
    /// training step merges its parameter gradients (`Recompute::merge_into`).
    pub fn recompute(&self) -> Option<super::recompute::Recompute> {
        self.recompute.clone()
    }

    pub fn with_overrides(mut self, overrides: HashMap<String, Tensor>) -> Self {
        self.overrides = overrides;
        self
    }

    pub fn with_alias(mut self, from_prefix: &str, to_prefix: &str) -> Self {
        self.aliases.push((from_prefix.to_string(), to_prefix.to_string()));
        self
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// Does the checkpoint hold `name` (under any alias)?
    pub fn has(&self, name: &str) -> bool {
        match &self.source {
            Source::Checkpoint(w) => self.candidate_names(name).iter().any(|n| w.contains(n)),
            _ => false,
        }
    }

    pub fn dropout(&self, p: f64) -> Dropout {
        Dropout::new(p, self.dropout_rng.clone())
    }

    /// The stream every dropout layer of this model draws from, shared with them: training
    /// checkpoints save and restore its position so a resumed run draws the same masks.
    pub fn dropout_rng(&self) -> Arc<Mutex<ChaCha8Rng>> {
        self.dropout_rng.clone()
    }

    fn candidate_names(&self, name: &str) -> Vec<String> {
        let mut out = vec![name.to_string()];
        for (from, to) in &self.aliases {
            if let Some(rest) = name.strip_prefix(from.as_str()) {
                out.push(format!("{to}{rest}"));
            }
        }
        out
    }

    fn trains(&self, role: Role) -> bool {
        match (&self.mode, role) {
            (Mode::Inference { .. }, _) => false,
            (Mode::Full, _) => true,
            (_, Role::Head) => true,
            (Mode::Lora(_) | Mode::LinearProbe, Role::Backbone) => false,
        }
    }

    /// The value of `name` in `dtype`: an override, else the checkpoint, else `init` when the
    /// tensor may be missing (`optional`, or a head), else an error naming it.
    fn value(&self, name: &str, shape: &[usize], init: Init, optional: bool, dtype: DType) -> Result<Tensor> {
        if let Some(t) = self.overrides.get(name) {
            if t.dims() != shape {
                return Err(Error::bad_input(format!(
                    "saved tensor `{name}` has shape {:?} but the model expects {shape:?}",
                    t.dims()
                )));
            }
            return Ok(t.to_dtype(dtype)?.to_device(&self.device)?);
        }
        match &self.source {
            Source::Checkpoint(w) => {
                for n in self.candidate_names(name) {
                    if let Some(t) = w.get(&n, shape, dtype, &self.device)? {
                        return Ok(t);
                    }
                }
                if optional {
                    self.init(shape, init, dtype)
                } else {
                    Err(Error::bad_input(format!(
                        "checkpoint has no tensor `{name}` (shape {shape:?})"
                    )))
                }
            }
            Source::Random => self.init(shape, init, dtype),
            Source::Zeros => Ok(Tensor::zeros(shape, dtype, &self.device)?),
            Source::DeviceRandom => match init {
                Init::Normal(std) => Ok(Tensor::randn(0f32, std as f32, shape, &self.device)?.to_dtype(dtype)?),
                other => self.init(shape, other, dtype),
            },
        }
    }

    fn init(&self, shape: &[usize], init: Init, dtype: DType) -> Result<Tensor> {
        let t = match init {
            Init::Zeros => Tensor::zeros(shape, dtype, &self.device)?,
            Init::Ones => Tensor::ones(shape, dtype, &self.device)?,
            Init::Normal(std) => {
                let n: usize = shape.iter().product();
                let mut rng = self.rng.borrow_mut();
                let normal = rand_distr_normal(&mut rng, n, std);
                Tensor::from_vec(normal, shape, &self.device)?.to_dtype(dtype)?
            }
        };
        Ok(t)
    }

    /// A tensor of the model, frozen or trainable per the mode and its role.
    pub fn tensor(&self, name: &str, shape: &[usize], role: Role, init: Init) -> Result<Tensor> {
        self.tensor_opt(name, shape, role, init, role == Role::Head)
    }

    /// As `tensor`, but a backbone tensor missing from the checkpoint is initialised (`optional`).
    /// A trainable tensor is made in f32 (the master copy, see `precision`) whatever the
    /// compute dtype; the model casts it where it uses it.
    pub fn tensor_opt(&self, name: &str, shape: &[usize], role: Role, init: Init, optional: bool) -> Result<Tensor> {
        let dtype = if self.trains(role) { MASTER_DTYPE } else { self.dtype };
        let t = self.value(name, shape, init, optional || role == Role::Head, dtype)?;
        if self.trains(role) {
            let kind = if role == Role::Head {
                ParamKind::Head
            } else {
                ParamKind::Base
            };
            Ok(self.register(name, &t, kind)?)
        } else {
            self.frozen_params.set(self.frozen_params.get() + t.elem_count());
            Ok(t)
        }
    }

    fn register(&self, name: &str, t: &Tensor, kind: ParamKind) -> Result<Tensor> {
        let var = Var::from_tensor(t)?;
        let out = var.as_tensor().clone();
        self.trainable.borrow_mut().push(NamedVar {
            name: name.to_string(),
            var,
            kind,
        });
        Ok(out)
    }

    /// A linear layer `prefix` ([out, in] weight, optional bias), with a LoRA adapter when the
    /// mode asks for one on this module.
    pub fn linear(
        &self,
        prefix: &str,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        role: Role,
        init_std: f64,
    ) -> Result<Linear> {
        self.linear_opt(prefix, in_dim, out_dim, bias, role, init_std, false)
    }

    /// As `linear`; with `optional`, a layer missing from the checkpoint is initialised.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_opt(
        &self,
        prefix: &str,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        role: Role,
        init_std: f64,
        optional: bool,
    ) -> Result<Linear> {
        let weight = self.tensor_opt(
            &format!("{prefix}.weight"),
            &[out_dim, in_dim],
            role,
            Init::Normal(init_std),
            optional,
        )?;
        let bias = if bias {
            Some(self.tensor_opt(&format!("{prefix}.bias"), &[out_dim], role, Init::Zeros, optional)?)
        } else {
            None
        };
        if role == Role::Backbone {
            self.linear_names.borrow_mut().insert(prefix.to_string());
        }
        let lora = match (&self.mode, role) {
            (Mode::Lora(l), Role::Backbone) | (Mode::Inference { lora: Some(l) }, Role::Backbone) => {
                l.matches(prefix).map(|t| (l.clone(), t.to_string()))
            }
            _ => None,
        };
        let Some((settings, target)) = lora else {
            return self.finish_inference_linear(prefix, Linear::new(weight, bias, None), role);
        };
        self.matched_targets.borrow_mut().insert(target);
        let scale = settings.alpha / settings.r as f64;
        let (a_name, b_name) = (format!("{prefix}.lora_A.weight"), format!("{prefix}.lora_B.weight"));
        let (a_shape, b_shape) = ([settings.r, in_dim], [out_dim, settings.r]);
        if let Mode::Inference { .. } = self.mode {
            let a = self
                .overrides
                .get(&a_name)
                .ok_or_else(|| Error::bad_input(format!("saved adapters lack `{a_name}`")))?;
            let b = self
                .overrides
                .get(&b_name)
                .ok_or_else(|| Error::bad_input(format!("saved adapters lack `{b_name}`")))?;
            for (t, shape, n) in [(a, &a_shape, &a_name), (b, &b_shape, &b_name)] {
                if t.dims() != shape {
                    return Err(Error::bad_input(format!(
                        "saved tensor `{n}` has shape {:?}, expected {shape:?}",
                        t.dims()
                    )));
                }
            }
            let merged = merged_weight(&weight, &a.to_dtype(DType::F32)?, &b.to_dtype(DType::F32)?, scale)?;
            return self.finish_inference_linear(prefix, Linear::new(merged, bias, None), role);
        }
        // Adapters train: f32 master copies whatever the compute dtype.
        let a = match self.overrides.get(&a_name) {
            Some(t) => t.to_dtype(MASTER_DTYPE)?,
            None => self.kaiming_uniform(&a_shape)?,
        };
        let b = match self.overrides.get(&b_name) {
            Some(t) => t.to_dtype(MASTER_DTYPE)?,
            None => Tensor::zeros(&b_shape, MASTER_DTYPE, &self.device)?,
        };
        let a = self.register(&a_name, &a, ParamKind::LoraA)?;
        let b = self.register(&b_name, &b, ParamKind::LoraB)?;
        let adapter = LoraAdapter {
            a,
            b,
            scale,
            dropout: self.dropout(settings.dropout),
        };
        Ok(Linear::new(weight, bias, Some(adapter)))
    }

    /// PyTorch's `kaiming_uniform_(a = sqrt(5))` on a [r, in] matrix: U(-1/sqrt(in), 1/sqrt(in)).
    fn kaiming_uniform(&self, shape: &[usize; 2]) -> Result<Tensor> {
        let bound = 1.0 / (shape[1] as f64).sqrt();
        let mut rng = self.rng.borrow_mut();
        let v: Vec<f32> = (0..shape[0] * shape[1])
            .map(|_| rng.gen_range(-bound..bound) as f32)
            .collect();
        Ok(Tensor::from_vec(v, &shape[..], &self.device)?)
    }

    /// Finish: every LoRA target must have matched a module.
    pub fn finish(self) -> Result<BuiltParams> {
        let settings = match &self.mode {
            Mode::Lora(l) | Mode::Inference { lora: Some(l) } => Some(l.clone()),
            _ => None,
        };
        if let Some(l) = settings {
            let matched = self.matched_targets.borrow();
            let missing: Vec<&String> = l.targets.iter().filter(|t| !matched.contains(*t)).collect();
            if !missing.is_empty() {
                let leaves: BTreeSet<String> = self
                    .linear_names
                    .borrow()
                    .iter()
                    .map(|n| n.rsplit('.').next().unwrap_or(n).to_string())
                    .collect();
                return Err(Error::bad_input(format!(
                    "LoRA target(s) {missing:?} match no module of this model; its linear modules are named {leaves:?}"
                )));
            }
        }
        Ok(BuiltParams {
            trainable: self.trainable.into_inner(),
            frozen_params: self.frozen_params.get(),
        })
    }
}

/// n draws of N(0, std^2) by Box-Muller (rand_distr is not a dependency; two uniforms per pair).
fn rand_distr_normal(rng: &mut ChaCha8Rng, n: usize, std: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
        let u2: f64 = rng.gen();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        let th = 2.0 * std::f64::consts::PI * u2;
        out.push((r * th.cos()) as f32);
        out.push((r * th.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// HF Trainer's rule for which parameters skip weight decay: names containing "bias" or a
/// norm layer ("layernorm", "rmsnorm", a `norm` path component, or a `*_norm` module).
pub fn hf_no_decay(name: &str) -> bool {
    let n = name.to_lowercase();
    n.contains("bias")
        || n.contains("layernorm")
        || n.contains("rmsnorm")
        || n.split('.').any(|part| part == "norm" || part.ends_with("_norm"))
}

// ---- LoRA target aliases (added for ModernBERT, models/modernbert.rs) ----

impl ParamBuilder {
    /// Let the LoRA target `alias` stand for the modules whose name ends with `.module_suffix`.
    /// The alias is dropped when another target already covers those modules (as PEFT would
    /// leave it matching nothing), else it is replaced by `module_suffix`. Applies to `Lora`
    /// and to `Inference` with adapters; other modes are unchanged.
    pub fn with_lora_target_alias(mut self, alias: &str, module_suffix: &str) -> Self {
        if let Mode::Lora(l) | Mode::Inference { lora: Some(l) } = &mut self.mode {
            if let Some(pos) = l.targets.iter().position(|t| t == alias) {
                l.targets.remove(pos);
                let probe = format!("probe.{module_suffix}");
                if l.matches(&probe).is_none() {
                    l.targets.insert(pos, module_suffix.to_string());
                }
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_target_matching_is_by_suffix_component() {
        let l = LoraSettings {
            r: 2,
            alpha: 4.0,
            dropout: 0.0,
            targets: vec!["dense".into(), "q_proj".into()],
        };
        assert_eq!(l.matches("bert.encoder.layer.0.attention.output.dense"), Some("dense"));
        assert_eq!(l.matches("model.layers.3.self_attn.q_proj"), Some("q_proj"));
        assert_eq!(l.matches("model.layers.3.self_attn.xq_proj"), None);
    }

    #[test]
    fn no_decay_follows_hf_trainer_names() {
        for n in [
            "bert.encoder.layer.0.attention.output.LayerNorm.weight",
            "model.norm.weight",
            "model.layers.0.input_layernorm.weight",
            "model.layers.0.attn_norm.weight",
            "classifier.bias",
        ] {
            assert!(hf_no_decay(n), "{n}");
        }
        for n in [
            "score.weight",
            "model.layers.0.self_attn.q_proj.lora_A.weight",
            "model.embed_tokens.weight",
        ] {
            assert!(!hf_no_decay(n), "{n}");
        }
    }

    #[test]
    fn normal_init_has_the_asked_spread() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let v = rand_distr_normal(&mut rng, 20_000, 0.02);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        assert!(mean.abs() < 1e-3 && (sd - 0.02).abs() < 1e-3, "{mean} {sd}");
    }
}
