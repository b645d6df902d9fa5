//! Fused vs composed layers, side by side in one process: forward + backward time (median of
//! repeated runs after warm-up) and memory, at the shapes one training step of MiniLM-L6
//! (batch 32 x 128) and SmolLM2-135M (16 x 64) feeds them.
//!
//!   cargo bench --bench layers -- [--runs 15]
//!
//! Memory comes from a counting allocator: `kept_mb` is what the graph holds between forward
//! and backward (the activations an op stores, what limits batch x length), `peak_mb` the most
//! allocated at once during forward + backward, both above what existed before the forward.
//! Prints one JSON object per line.

use candle_core::{DType, Device, Tensor, Var};
use clsbench::models::layers::{self, act, attention, loss, norm, rope};
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// mimalloc (as the binary) with a count of live bytes and their high-water mark. Hand-written:
/// the crates that count allocations wrap the system allocator or need a nightly feature, and
/// this is all that is needed here.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static INNER: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = INNER.alloc(layout);
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        INNER.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap()
}

type Op = Box<dyn Fn(&[Tensor]) -> candle_core::Result<Tensor>>;

struct Case {
    name: &'static str,
    inputs: Vec<Tensor>,
    fused: Op,
    composed: Op,
}

const MB: f64 = 1024.0 * 1024.0;

/// (median ms, kept MB, peak MB) of forward + backward of sum(y * g).
fn measure(f: &Op, vars: &[Tensor], g: &Tensor, runs: usize) -> (f64, f64, f64) {
    let once = || {
        let y = f(vars).unwrap();
        let loss = (y * g).unwrap().sum_all().unwrap();
        loss.backward().unwrap()
    };
    for _ in 0..2 {
        drop(once());
    }
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            drop(once());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let y = f(vars).unwrap();
    let loss = (y * g).unwrap().sum_all().unwrap();
    let kept = LIVE.load(Ordering::Relaxed).saturating_sub(base);
    drop(loss.backward().unwrap());
    drop(loss);
    let peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    (ms[ms.len() / 2], kept as f64 / MB, peak as f64 / MB)
}

fn main() {
    let runs: usize = arg("--runs").map_or(15, |v| v.parse().unwrap());
    let min = layers::mask_min(DType::F32) as f32;
    // MiniLM-L6 at 32 x 128: hidden 384, 12 heads, FFN 1536; a quarter of the keys padded.
    let bert_mask = {
        let mut m = vec![0f32; 32 * 128];
        for row in m.chunks_mut(128) {
            row[96..].fill(min);
        }
        Tensor::from_vec(m, (32, 1, 1, 128), &Device::Cpu).unwrap()
    };
    let (cos, sin) = layers::rope_tables(64, 64, 100_000.0, DType::F32, &Device::Cpu).unwrap();
    let labels: Vec<usize> = (0..32).map(|i| i % 43).collect();
    let weights: Vec<f32> = (0..43).map(|i| 0.5 + (i % 5) as f32 * 0.25).collect();
    let eps = 1e-5;
    let cases = vec![
        Case {
            name: "attention softmax + mask [32, 12, 128, 128]",
            inputs: vec![randn(&[32, 12, 128, 128])],
            fused: Box::new({
                let m = bert_mask.clone();
                move |v| layers::attention_softmax(&v[0], &m, 0.125, true)
            }),
            composed: Box::new({
                let m = bert_mask.clone();
                move |v| attention::reference::attention_softmax(&v[0], &m, 0.125)
            }),
        },
        Case {
            name: "layer norm + bias [32, 128, 384]",
            inputs: vec![randn(&[32, 128, 384]), randn(&[384]), randn(&[384])],
            fused: Box::new(move |v| layers::layer_norm(&v[0], &v[1], Some(&v[2]), eps, true)),
            composed: Box::new(move |v| norm::reference::layer_norm(&v[0], &v[1], Some(&v[2]), eps)),
        },
        Case {
            name: "rms norm [16, 64, 576]",
            inputs: vec![randn(&[16, 64, 576]), randn(&[576])],
            fused: Box::new(|v| layers::rms_norm(&v[0], &v[1], 1e-5, true)),
            composed: Box::new(|v| norm::reference::rms_norm(&v[0], &v[1], 1e-5)),
        },
        Case {
            name: "rope [16, 9, 64, 64]",
            inputs: vec![randn(&[16, 9, 64, 64])],
            fused: Box::new({
                let (c, s) = (cos.clone(), sin.clone());
                move |v| layers::rope(&v[0], &c, &s, true)
            }),
            composed: Box::new({
                let (c, s) = (cos.clone(), sin.clone());
                move |v| rope::reference::rope(&v[0], &c, &s)
            }),
        },
        Case {
            name: "gelu (erf) [32, 128, 1536]",
            inputs: vec![randn(&[32, 128, 1536])],
            fused: Box::new(|v| layers::activation(&v[0], layers::Activation::GeluErf, true)),
            composed: Box::new(|v| act::reference::activation(&v[0], act::Activation::GeluErf)),
        },
        Case {
            name: "gelu (tanh) [32, 128, 1536]",
            inputs: vec![randn(&[32, 128, 1536])],
            fused: Box::new(|v| layers::activation(&v[0], layers::Activation::GeluTanh, true)),
            composed: Box::new(|v| act::reference::activation(&v[0], act::Activation::GeluTanh)),
        },
        Case {
            name: "silu(gate) * up [16, 64, 1536]",
            inputs: vec![randn(&[16, 64, 1536]), randn(&[16, 64, 1536])],
            fused: Box::new(|v| layers::gated_activation(&v[0], &v[1], layers::Activation::Silu, true)),
            composed: Box::new(|v| act::reference::gated_activation(&v[0], &v[1], act::Activation::Silu)),
        },
        Case {
            name: "weighted cross-entropy [32, 43]",
            inputs: vec![randn(&[32, 43])],
            fused: Box::new({
                let (l, w) = (labels.clone(), weights.clone());
                move |v| loss::cross_entropy(&v[0], &l, Some(&w))
            }),
            composed: Box::new({
                let (l, w) = (labels.clone(), weights.clone());
                move |v| loss::reference::cross_entropy(&v[0], &l, Some(&w))
            }),
        },
    ];
    for case in cases {
        let vars: Vec<Var> = case.inputs.iter().map(|t| Var::from_tensor(t).unwrap()).collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let g = randn((case.fused)(&ts).unwrap().dims());
        // Composed first, then fused, back to back on the same inputs.
        let (c_ms, c_kept, c_peak) = measure(&case.composed, &ts, &g, runs);
        let (f_ms, f_kept, f_peak) = measure(&case.fused, &ts, &g, runs);
        println!(
            "{}",
            serde_json::json!({
                "op": case.name, "runs": runs,
                "composed_ms": c_ms, "fused_ms": f_ms, "speedup": c_ms / f_ms,
                "composed_kept_mb": c_kept, "fused_kept_mb": f_kept,
                "composed_peak_mb": c_peak, "fused_peak_mb": f_peak,
            })
        );
    }
}
