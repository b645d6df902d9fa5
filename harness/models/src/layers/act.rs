//! Activation functions as transformers' `ACT2FN` names them, and the gated MLP product
//! `act(gate) * up` (Llama's SwiGLU, ModernBERT's GeGLU) as one op.
//!
//! Hand-written because candle's CPU unary ops run on one thread with a scalar erf: in a
//! MiniLM forward at batch 32 x 128, erf alone was ~11% of the time (perf), and a composed
//! GELU records five graph nodes whose buffers all live until backward. GELU's erf here is a
//! branch-free rational approximation that the compiler vectorises (the one Eigen and XLA use
//! for f32; max abs error 4.2e-7 against f64 erf on [-6, 6]); tanh comes from libm.

use super::fused_supported;
use super::kernel::{contiguous_f32, par_elementwise1, par_elementwise2};
use candle_core::{bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// An activation by its transformers name, parsed once from the model's config (the names
/// are listed only in `parse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// "gelu": the exact (erf) form.
    GeluErf,
    /// "gelu_new" / "gelu_pytorch_tanh".
    GeluTanh,
    /// "silu" / "swish".
    Silu,
    Relu,
}

impl Activation {
    pub fn parse(name: &str) -> Result<Activation> {
        Ok(match name {
            "gelu" => Activation::GeluErf,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "silu" | "swish" => Activation::Silu,
            "relu" => Activation::Relu,
            other => bail!("activation {other:?} is not implemented"),
        })
    }

    /// ReLU keeps candle's op: it is one pass already and its backward a comparison.
    fn fused(self) -> bool {
        self != Activation::Relu
    }
}

/// `act`(xs). `train` records the op for backward (fused on the CPU in f32).
pub fn activation(xs: &Tensor, act: Activation, train: bool) -> Result<Tensor> {
    if !act.fused() || !fused_supported(xs) {
        return reference::activation(xs, act);
    }
    let x = xs.contiguous()?;
    if train {
        x.apply_op1(ActOp(act))
    } else {
        x.apply_op1_no_bwd(&ActOp(act))
    }
}

/// `act`(gate) * up, element-wise (both of one shape).
pub fn gated_activation(gate: &Tensor, up: &Tensor, act: Activation, train: bool) -> Result<Tensor> {
    if gate.dims() != up.dims() {
        bail!(
            "gated activation: gate {:?} and up {:?} differ in shape",
            gate.dims(),
            up.dims()
        );
    }
    if !act.fused() || !fused_supported(gate) || up.dtype() != gate.dtype() {
        return reference::gated_activation(gate, up, act);
    }
    let (g, u) = (gate.contiguous()?, up.contiguous()?);
    if train {
        g.apply_op2(&u, GatedOp(act))
    } else {
        g.apply_op2_no_bwd(&u, &GatedOp(act))
    }
}

/// The compositions of candle primitives the fused ops replace (their backward is candle's).
pub mod reference {
    use super::Activation;
    use candle_core::{Result, Tensor};

    pub fn activation(xs: &Tensor, act: Activation) -> Result<Tensor> {
        match act {
            Activation::GeluErf => xs.gelu_erf(),
            Activation::GeluTanh => xs.gelu(),
            Activation::Silu => xs.silu(),
            Activation::Relu => xs.relu(),
        }
    }

    pub fn gated_activation(gate: &Tensor, up: &Tensor, act: Activation) -> Result<Tensor> {
        activation(gate, act)? * up
    }
}

/// erf(x) for f32: odd rational polynomial p(x) / q(x^2) on x clamped to [-4, 4] (beyond that
/// erf is +-1 in f32). Coefficients from Eigen's `generic_fast_erf_float`. Plain multiply-adds,
/// not `mul_add`, which is a libm call on targets built without FMA.
#[inline(always)]
pub(crate) fn erf_rational(x: f32) -> f32 {
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

/// One activation's value and derivative. A type per activation (not a `match` in the loop)
/// so that each element-wise loop is monomorphised and vectorises on its own.
trait Scalar: Sync {
    fn f(x: f32) -> f32;
    fn df(x: f32) -> f32;
}

struct GeluErf;
struct GeluTanh;
struct Silu;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_TANH_C: f32 = 0.044_715;

impl Scalar for GeluErf {
    #[inline(always)]
    fn f(x: f32) -> f32 {
        0.5 * x * (1.0 + erf_rational(x * std::f32::consts::FRAC_1_SQRT_2))
    }
    /// Phi(x) + x phi(x).
    #[inline(always)]
    fn df(x: f32) -> f32 {
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        0.5 * (1.0 + erf_rational(x * std::f32::consts::FRAC_1_SQRT_2)) + x * INV_SQRT_2PI * (-0.5 * x * x).exp()
    }
}

impl Scalar for GeluTanh {
    #[inline(always)]
    fn f(x: f32) -> f32 {
        0.5 * x * (1.0 + libm::tanhf(SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x)))
    }
    #[inline(always)]
    fn df(x: f32) -> f32 {
        let t = libm::tanhf(SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x));
        0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_C * x * x)
    }
}

impl Scalar for Silu {
    #[inline(always)]
    fn f(x: f32) -> f32 {
        x / (1.0 + (-x).exp())
    }
    /// s (1 + x (1 - s)) with s = sigmoid(x).
    #[inline(always)]
    fn df(x: f32) -> f32 {
        let s = 1.0 / (1.0 + (-x).exp());
        s * (1.0 + x * (1.0 - s))
    }
}

/// Calls `$body` with `$S` bound to the type of `$act` (a fused activation).
macro_rules! with_scalar {
    ($act:expr, $S:ident => $body:expr) => {
        match $act {
            Activation::GeluErf => {
                type $S = GeluErf;
                $body
            }
            Activation::GeluTanh => {
                type $S = GeluTanh;
                $body
            }
            Activation::Silu => {
                type $S = Silu;
                $body
            }
            Activation::Relu => bail!("relu has no fused kernel"),
        }
    };
}

fn forward_kernel<S: Scalar>(out: &mut [f32], x: &[f32]) {
    for (o, &x) in out.iter_mut().zip(x) {
        *o = S::f(x);
    }
}

fn backward_kernel<S: Scalar>(out: &mut [f32], x: &[f32], dy: &[f32]) {
    for ((o, &x), &g) in out.iter_mut().zip(x).zip(dy) {
        *o = g * S::df(x);
    }
}

fn gated_kernel<S: Scalar>(out: &mut [f32], gate: &[f32], up: &[f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = S::f(g) * u;
    }
}

/// d gate = dy * up * act'(gate) and d up = dy * act(gate), chunk by chunk.
fn gated_backward<S: Scalar>(d_gate: &mut [f32], d_up: &mut [f32], gate: &[f32], up: &[f32], dy: &[f32]) {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 14;
    d_gate
        .par_chunks_mut(CHUNK)
        .zip(d_up.par_chunks_mut(CHUNK))
        .zip(
            gate.par_chunks(CHUNK)
                .zip(up.par_chunks(CHUNK))
                .zip(dy.par_chunks(CHUNK)),
        )
        .for_each(|((dg, du), ((g, u), dy))| {
            for i in 0..dg.len() {
                let (x, d) = (g[i], dy[i]);
                dg[i] = d * u[i] * S::df(x);
                du[i] = d * S::f(x);
            }
        });
}

/// act(x), recorded with its backward.
#[derive(Debug, Clone, Copy)]
struct ActOp(Activation);

impl CustomOp1 for ActOp {
    fn name(&self) -> &'static str {
        match self.0 {
            Activation::GeluErf => "fused-gelu-erf",
            Activation::GeluTanh => "fused-gelu-tanh",
            Activation::Silu => "fused-silu",
            Activation::Relu => "fused-relu",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(self.name(), storage, layout)?;
        let mut out = vec![0f32; x.len()];
        with_scalar!(self.0, S => par_elementwise1(&mut out, x, forward_kernel::<S>));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let dx = arg.apply_op2_no_bwd(&grad_res.contiguous()?, &ActGradOp(self.0))?;
        Ok(Some(dx))
    }
}

/// dy * act'(x): `ActOp`'s backward, one pass.
struct ActGradOp(Activation);

impl CustomOp2 for ActGradOp {
    fn name(&self) -> &'static str {
        "fused-activation-grad"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(self.name(), s1, l1)?;
        let dy = contiguous_f32(self.name(), s2, l2)?;
        if x.len() != dy.len() {
            bail!("{}: input and gradient differ in size", self.name());
        }
        let mut out = vec![0f32; x.len()];
        with_scalar!(self.0, S => par_elementwise2(&mut out, x, dy, backward_kernel::<S>));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// act(gate) * up, recorded with its backward: the graph keeps gate and up, not act(gate).
#[derive(Debug, Clone, Copy)]
struct GatedOp(Activation);

impl CustomOp2 for GatedOp {
    fn name(&self) -> &'static str {
        "fused-gated-activation"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let gate = contiguous_f32(self.name(), s1, l1)?;
        let up = contiguous_f32(self.name(), s2, l2)?;
        if gate.len() != up.len() {
            bail!("{}: gate and up differ in size", self.name());
        }
        let mut out = vec![0f32; gate.len()];
        with_scalar!(self.0, S => par_elementwise2(&mut out, gate, up, gated_kernel::<S>));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // One pass writes both gradients into one buffer [2, ...]; the halves are views of it.
        let both = gate.apply_op3_no_bwd(up, &grad_res.contiguous()?, &GatedGradOp(self.0))?;
        Ok((Some(both.get(0)?), Some(both.get(1)?)))
    }
}

/// `GatedOp`'s backward: [d gate, d up] stacked on a new leading dim.
struct GatedGradOp(Activation);

impl CustomOp3 for GatedGradOp {
    fn name(&self) -> &'static str {
        "fused-gated-activation-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let gate = contiguous_f32(self.name(), s1, l1)?;
        let up = contiguous_f32(self.name(), s2, l2)?;
        let dy = contiguous_f32(self.name(), s3, l3)?;
        let n = gate.len();
        if up.len() != n || dy.len() != n {
            bail!("{}: operands differ in size", self.name());
        }
        let mut out = vec![0f32; 2 * n];
        let (d_gate, d_up) = out.split_at_mut(n);
        with_scalar!(self.0, S => gated_backward::<S>(d_gate, d_up, gate, up, dy));
        let mut dims = vec![2];
        dims.extend_from_slice(l1.dims());
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testing::{assert_close, check_finite_differences, check_gradients_match, sample, Fd};

    const FUSED: [&str; 3] = ["gelu", "gelu_pytorch_tanh", "silu"];

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
    fn inference_activations_equal_candles() {
        // Values around 0 and in the tails, more than one rayon chunk, a non-contiguous view.
        let x = (sample(&[3, 300, 70], 8) * 2.0).unwrap().transpose(1, 2).unwrap();
        for name in FUSED {
            let act = Activation::parse(name).unwrap();
            let fast = activation(&x, act, false).unwrap();
            assert_close(&fast, &reference::activation(&x, act).unwrap(), 1e-5, name);
        }
    }

    /// Forward within 1e-5 of candle's (the rational erf is within 4.2e-7 of erf, scaled by
    /// |x| <= 4 here; tanh and exp differ from candle's by an ulp or two), gradients within 1e-5
    /// (the derivatives are closed forms of the same functions).
    #[test]
    fn activations_match_the_composed_reference() {
        for name in FUSED {
            let act = Activation::parse(name).unwrap();
            // A non-contiguous input: the op copies it to a contiguous buffer first.
            let x = (sample(&[2, 7, 33], 1) * 2.0).unwrap();
            check_gradients_match(
                &[x],
                |v| activation(&v[0].transpose(1, 2)?, act, true),
                |v| reference::activation(&v[0].transpose(1, 2)?, act),
                1e-5,
                1e-5,
                name,
            );
            let (g, u) = (sample(&[4, 50], 2), sample(&[4, 50], 3));
            check_gradients_match(
                &[g, u],
                |v| gated_activation(&v[0], &v[1], act, true),
                |v| reference::gated_activation(&v[0], &v[1], act),
                1e-5,
                1e-5,
                &format!("gated {name}"),
            );
        }
    }

    #[test]
    fn activation_gradients_match_finite_differences() {
        for name in FUSED {
            let act = Activation::parse(name).unwrap();
            let x = sample(&[3, 20], 4);
            check_finite_differences(&[x], |v| activation(&v[0], act, true), Fd::default(), name);
            let (g, u) = (sample(&[3, 20], 5), sample(&[3, 20], 6));
            check_finite_differences(
                &[g, u],
                |v| gated_activation(&v[0], &v[1], act, true),
                Fd::default(),
                &format!("gated {name}"),
            );
        }
    }

    #[test]
    fn nan_passes_through_forward_and_backward() {
        use candle_core::{Device, Var};
        let x = Var::new(&[0.5f32, f32::NAN, -1.0], &Device::Cpu).unwrap();
        for name in FUSED {
            let act = Activation::parse(name).unwrap();
            let y: Vec<f32> = activation(x.as_tensor(), act, true).unwrap().to_vec1().unwrap();
            assert!(y[1].is_nan() && y[0].is_finite(), "{name}: {y:?}");
            let up = Tensor::new(&[1f32, 1.0, f32::NAN], &Device::Cpu).unwrap();
            let grads = activation(x.as_tensor(), act, true)
                .unwrap()
                .mul(&up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g: Vec<f32> = grads.get(x.as_tensor()).unwrap().to_vec1().unwrap();
            assert!(g[0].is_finite() && g[1].is_nan() && g[2].is_nan(), "{name}: {g:?}");
        }
    }

    #[test]
    fn unknown_activation_is_named() {
        let err = Activation::parse("mish").unwrap_err().to_string();
        assert!(err.contains("\"mish\""), "{err}");
    }
}
