//! The operations whose fused candle kernels have no backward pass, each with a `train` flag:
//! `train = false` takes the fused kernel (fast inference), `train = true` the composition of
//! differentiable primitives. The fused kernels record no graph node, so a model that used
//! them while training would silently stop gradients there (loss still falls through the
//! layers above), which is why every model calls these instead of candle_nn directly.

use candle_core::{DType, Result, Tensor, D};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex};

/// Attention probabilities as transformers' eager attention computes them: the softmax of the
/// (masked) scores in f32 whatever the model's dtype, cast back to it. In f32 the casts are
/// no-ops.
pub fn attention_softmax(scores: &Tensor, train: bool) -> Result<Tensor> {
    softmax_last_dim(&upcast(scores)?, train)?.to_dtype(scores.dtype())
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(xs: &Tensor, train: bool) -> Result<Tensor> {
    if train {
        candle_nn::ops::softmax(xs, D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(xs)
    }
}

/// LayerNorm over the last dimension, with an optional bias (ModernBERT has none). The
/// statistics are computed in f32; the weight and bias (f32 master copies when they train) are
/// cast to the input's dtype.
pub fn layer_norm(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f64, train: bool) -> Result<Tensor> {
    let weight = &weight.to_dtype(xs.dtype())?;
    let bias = bias.map(|b| b.to_dtype(xs.dtype())).transpose()?;
    let bias = bias.as_ref();
    match bias {
        Some(b) if !train => candle_nn::ops::layer_norm(&xs.contiguous()?, weight, b, eps as f32),
        _ => {
            let dtype = xs.dtype();
            let x = upcast(xs)?;
            let hidden = x.dim(D::Minus1)? as f64;
            let mean = (x.sum_keepdim(D::Minus1)? / hidden)?;
            let centred = x.broadcast_sub(&mean)?;
            let var = (centred.sqr()?.sum_keepdim(D::Minus1)? / hidden)?;
            let normed = centred.broadcast_div(&(var + eps)?.sqrt()?)?.to_dtype(dtype)?;
            let y = normed.broadcast_mul(weight)?;
            match bias {
                Some(b) => y.broadcast_add(b),
                None => Ok(y),
            }
        }
    }
}

/// RMSNorm over the last dimension (Llama/Qwen2): x / sqrt(mean(x^2) + eps) * weight, the
/// weight cast to the input's dtype (candle computes the statistics in f32 for half inputs).
pub fn rms_norm(xs: &Tensor, weight: &Tensor, eps: f64, train: bool) -> Result<Tensor> {
    let weight = &weight.to_dtype(xs.dtype())?;
    if train {
        candle_nn::ops::rms_norm_slow(xs, weight, eps as f32)
    } else {
        candle_nn::ops::rms_norm(&xs.contiguous()?, weight, eps as f32)
    }
}

/// Rotary position embedding in the rotate-half (GPT-NeoX / HF) layout.
/// `xs`: [batch, heads, seq, head_dim]; `cos`, `sin`: [seq, head_dim / 2].
pub fn rope(xs: &Tensor, cos: &Tensor, sin: &Tensor, train: bool) -> Result<Tensor> {
    if train {
        candle_nn::rotary_emb::rope_slow(xs, cos, sin)
    } else {
        candle_nn::rotary_emb::rope(&xs.contiguous()?, cos, sin)
    }
}

/// cos and sin tables [seq_len, head_dim / 2] for positions 0..seq_len, computed in f32 as
/// transformers does (inv_freq = 1 / theta^(2i/d)), then cast to `dtype`.
pub fn rope_tables(
    seq_len: usize,
    head_dim: usize,
    theta: f64,
    dtype: DType,
    device: &candle_core::Device,
) -> Result<(Tensor, Tensor)> {
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half)
        .map(|i| 1f32 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
        .collect();
    let mut freqs = Vec::with_capacity(seq_len * half);
    for p in 0..seq_len {
        for f in &inv_freq {
            freqs.push(p as f32 * f);
        }
    }
    let freqs = Tensor::from_vec(freqs, (seq_len, half), device)?;
    Ok((freqs.cos()?.to_dtype(dtype)?, freqs.sin()?.to_dtype(dtype)?))
}

fn upcast(xs: &Tensor) -> Result<Tensor> {
    match xs.dtype() {
        DType::F16 | DType::BF16 => xs.to_dtype(DType::F32),
        _ => Ok(xs.clone()),
    }
}

/// Activation functions as transformers' `ACT2FN` names them. For inference on the CPU in f32
/// the GELUs and SiLU run as `ParallelActivation`; training keeps candle's ops (they have a
/// backward).
pub fn activation(xs: &Tensor, name: &str, train: bool) -> Result<Tensor> {
    let parallel = |op: ParallelActivation| {
        if !train && xs.device().is_cpu() && xs.dtype() == DType::F32 {
            Some(xs.contiguous().and_then(|x| x.apply_op1_no_bwd(&op)))
        } else {
            None
        }
    };
    match name {
        "gelu" => parallel(ParallelActivation::GeluErf).unwrap_or_else(|| xs.gelu_erf()),
        "gelu_new" | "gelu_pytorch_tanh" => parallel(ParallelActivation::GeluTanh).unwrap_or_else(|| xs.gelu()),
        "relu" => xs.relu(),
        "silu" | "swish" => parallel(ParallelActivation::Silu).unwrap_or_else(|| xs.silu()),
        other => candle_core::bail!("activation {other:?} is not implemented"),
    }
}

/// Element-wise activations for CPU inference, split over rayon's threads. Hand-written because
/// candle's CPU unary ops run on one thread with a scalar erf: in a MiniLM forward at batch
/// 32 x 128, erf alone was ~11% of the time (perf). GELU's erf here is a branch-free rational
/// approximation that the compiler vectorises (the one Eigen and XLA use for f32; max abs
/// error 4.2e-7 against f64 erf on [-6, 6]); tanh comes from libm.
#[derive(Debug, Clone, Copy)]
enum ParallelActivation {
    GeluErf,
    GeluTanh,
    Silu,
}

/// erf(x) for f32: odd rational polynomial p(x) / q(x^2) on x clamped to [-4, 4] (beyond that
/// erf is +-1 in f32). Coefficients from Eigen's `generic_fast_erf_float`. Plain multiply-adds,
/// not `mul_add`, which is a libm call on targets built without FMA.
#[inline(always)]
fn erf_rational(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    for c in [
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_600_2e-3,
        -1.609_603_3e-2,
    ] {
        p = p * x2 + c;
    }
    let mut q = -1.456_607_2e-5_f32;
    for c in [-2.133_740_6e-4, -1.682_827e-3, -7.373_329_2e-3, -1.426_474e-2] {
        q = q * x2 + c;
    }
    x * p / q
}

impl ParallelActivation {
    fn kernel(self) -> fn(&mut [f32], &[f32]) {
        // One loop per activation (no match inside), so each vectorises on its own.
        match self {
            ParallelActivation::GeluErf => |out, src| {
                for (o, &x) in out.iter_mut().zip(src) {
                    *o = 0.5 * x * (1.0 + erf_rational(x * std::f32::consts::FRAC_1_SQRT_2));
                }
            },
            ParallelActivation::GeluTanh => |out, src| {
                const SQRT_2_OVER_PI: f32 = 0.797_884_6;
                for (o, &x) in out.iter_mut().zip(src) {
                    *o = 0.5 * x * (1.0 + libm::tanhf(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)));
                }
            },
            ParallelActivation::Silu => |out, src| {
                for (o, &x) in out.iter_mut().zip(src) {
                    *o = x / (1.0 + (-x).exp());
                }
            },
        }
    }
}

impl candle_core::CustomOp1 for ParallelActivation {
    fn name(&self) -> &'static str {
        match self {
            ParallelActivation::GeluErf => "parallel-gelu-erf",
            ParallelActivation::GeluTanh => "parallel-gelu-tanh",
            ParallelActivation::Silu => "parallel-silu",
        }
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let candle_core::CpuStorage::F32(data) = storage else {
            candle_core::bail!("{}: f32 only", self.name())
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{}: contiguous input only", self.name())
        };
        let src = &data[start..end];
        let mut out = vec![0f32; src.len()];
        // Chunks big enough that rayon's per-task cost is noise, small enough to balance.
        const CHUNK: usize = 1 << 14;
        let kernel = self.kernel();
        out.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(o, i)| kernel(o, i));
        Ok((candle_core::CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// The most negative finite value of `dtype`: the additive mask for "may not attend". A
/// finite value (as transformers uses) keeps fully-masked rows (left padding under a causal
/// mask) uniform instead of NaN.
pub fn mask_min(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => -65_504.0,
        DType::BF16 => -3.389_531_389_251_535_5e38,
        DType::F64 => f64::MIN,
        _ => f64::from(f32::MIN),
    }
}

/// Inverted dropout with a seeded stream shared by every dropout site of one model, so that a
/// training run is reproducible from the suite seed (candle's own dropout draws from an
/// unseeded thread RNG).
#[derive(Clone, Debug)]
pub struct Dropout {
    p: f64,
    rng: Arc<Mutex<ChaCha8Rng>>,
}

impl Dropout {
    pub fn new(p: f64, rng: Arc<Mutex<ChaCha8Rng>>) -> Dropout {
        Dropout { p, rng }
    }

    pub fn p(&self) -> f64 {
        self.p
    }

    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p <= 0.0 {
            return Ok(xs.clone());
        }
        if self.p >= 1.0 {
            return xs.zeros_like();
        }
        let n = xs.elem_count();
        let keep_scale = (1.0 / (1.0 - self.p)) as f32;
        // Compare raw u32 draws to a threshold: one draw per element, no float conversion.
        let threshold = (self.p * (u32::MAX as f64 + 1.0)) as u64;
        let mask: Vec<f32> = {
            let mut rng = self
                .rng
                .lock()
                .map_err(|_| candle_core::Error::Msg("dropout rng poisoned".into()))?;
            (0..n)
                .map(|_| {
                    if u64::from(rng.gen::<u32>()) >= threshold {
                        keep_scale
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        let mask = Tensor::from_vec(mask, xs.shape(), xs.device())?.to_dtype(xs.dtype())?;
        xs.mul(&mask)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use rand::SeedableRng;

    /// The largest absolute entry of an f32 tensor (shared by the model tests).
    pub(crate) fn max_abs(t: &Tensor) -> f32 {
        t.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        max_abs(&(a - b).unwrap())
    }

    fn sample(shape: &[usize], seed: u64) -> Tensor {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-2.0..2.0)).collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn fused_and_differentiable_paths_agree() {
        let x = sample(&[2, 3, 5, 8], 1);
        let w = sample(&[8], 2);
        let b = sample(&[8], 3);
        assert!(
            max_abs_diff(
                &softmax_last_dim(&x, true).unwrap(),
                &softmax_last_dim(&x, false).unwrap()
            ) < 1e-6
        );
        assert!(
            max_abs_diff(
                &layer_norm(&x, &w, Some(&b), 1e-5, true).unwrap(),
                &layer_norm(&x, &w, Some(&b), 1e-5, false).unwrap()
            ) < 1e-5
        );
        assert!(
            max_abs_diff(
                &rms_norm(&x, &w, 1e-6, true).unwrap(),
                &rms_norm(&x, &w, 1e-6, false).unwrap()
            ) < 1e-5
        );
        let (cos, sin) = rope_tables(5, 8, 10_000.0, DType::F32, &Device::Cpu).unwrap();
        assert!(
            max_abs_diff(
                &rope(&x, &cos, &sin, true).unwrap(),
                &rope(&x, &cos, &sin, false).unwrap()
            ) < 1e-6
        );
    }

    #[test]
    fn rational_erf_is_within_half_a_micro_of_libm() {
        let mut worst = 0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 / 10_000.0;
            worst = worst.max((erf_rational(x) as f64 - libm::erf(x as f64)).abs());
        }
        assert!(worst < 5e-7, "max |erf error| {worst:e}");
    }

    #[test]
    fn parallel_activations_equal_candles() {
        // Values around 0 and in the tails, more than one rayon chunk, a non-contiguous view.
        let x = (sample(&[3, 300, 70], 8) * 4.0).unwrap().transpose(1, 2).unwrap();
        for name in ["gelu", "gelu_pytorch_tanh", "silu"] {
            let fast = activation(&x, name, false).unwrap();
            let stock = activation(&x, name, true).unwrap();
            assert_eq!(fast.dims(), stock.dims());
            let diff = max_abs_diff(&fast, &stock);
            assert!(diff < 1e-5, "{name}: max |diff| {diff}");
        }
    }

    #[test]
    fn training_paths_carry_gradients() {
        // The trap this module exists for: a fused op would give `None` here.
        let x = Var::from_tensor(&sample(&[1, 2, 4, 8], 4)).unwrap();
        let w = Var::from_tensor(&sample(&[8], 5)).unwrap();
        let b = Var::from_tensor(&sample(&[8], 6)).unwrap();
        let (cos, sin) = rope_tables(4, 8, 10_000.0, DType::F32, &Device::Cpu).unwrap();
        let target = sample(&[1, 2, 4, 8], 7);
        let y = rope(x.as_tensor(), &cos, &sin, true).unwrap();
        let y = softmax_last_dim(&y, true).unwrap();
        let y = rms_norm(&y, w.as_tensor(), 1e-6, true).unwrap();
        let y = layer_norm(&y, w.as_tensor(), Some(b.as_tensor()), 1e-5, true).unwrap();
        let loss = (y * &target).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        for v in [&x, &w, &b] {
            let g = grads.get(v.as_tensor()).expect("gradient must reach every input");
            let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(norm > 0.0);
        }
    }

    #[test]
    fn dropout_is_seeded_and_scaled() {
        let x = Tensor::ones((1000,), DType::F32, &Device::Cpu).unwrap();
        let make = || Dropout::new(0.25, Arc::new(Mutex::new(ChaCha8Rng::seed_from_u64(9))));
        let a: Vec<f32> = make().forward(&x, true).unwrap().to_vec1().unwrap();
        let b: Vec<f32> = make().forward(&x, true).unwrap().to_vec1().unwrap();
        assert_eq!(a, b);
        let kept = a.iter().filter(|&&v| v > 0.0).count();
        assert!((700..800).contains(&kept), "kept {kept} of 1000 at p = 0.25");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
        assert_eq!(
            make().forward(&x, false).unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0; 1000]
        );
    }
}
