//! Activation recomputation ("gradient checkpointing") per transformer layer.
//!
//! candle keeps every intermediate of the forward until `backward` (it has no checkpointing;
//! candle issue #1423 sketches this CustomOp workaround). Here a checkpointed layer runs on a
//! detached copy of its input and its output is detached again, so none of the layer's
//! intermediates stays reachable from the graph: they are freed as soon as the forward moves
//! on. The output is joined back to the graph by [`Recomputed`], a `CustomOp1` on the layer's
//! input whose forward returns the (already computed) output and whose backward
//!
//! 1. rewinds the model's dropout stream to where it was when the layer first ran, so the
//!    recompute draws the same masks, and puts it back afterwards;
//! 2. recomputes the layer on a fresh leaf copy of the input;
//! 3. backpropagates the upstream gradient through it (`(y * grad).sum_all().backward()`),
//!    returns the input's gradient to candle's outer backward, and adds the trainable
//!    parameters' gradients to a side store.
//!
//! candle's outer `backward` cannot reach the parameters (the layer's graph was cut), so the
//! training step merges the side store into its `GradStore` ([`Recompute::merge_into`]) before
//! the optimiser sees it. Only one layer's intermediates (and their gradients) are alive at a
//! time in backward, at the cost of a second forward of every layer.

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, TensorId, Var};
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The recomputation context of one model: its dropout stream, the ids of its trainable
/// tensors, and the parameter gradients the layers' backward passes produced.
#[derive(Clone, Debug)]
pub struct Recompute {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dropout_rng: Arc<Mutex<ChaCha8Rng>>,
    /// Set by `build_classifier` once the parameters are built; a layer's backward keeps the
    /// gradients of these only (the recompute's `GradStore` also holds every intermediate's).
    trainable: Mutex<HashSet<TensorId>>,
    grads: Mutex<HashMap<TensorId, Tensor>>,
    /// Layers recomputed so far (what tests check to know the path was taken).
    recomputed: AtomicUsize,
}

fn poisoned<T>(_: T) -> candle_core::Error {
    candle_core::Error::Msg("gradient checkpointing: a lock was poisoned by an earlier panic".into())
}

impl Recompute {
    pub fn new(dropout_rng: Arc<Mutex<ChaCha8Rng>>) -> Recompute {
        Recompute {
            inner: Arc::new(Inner {
                dropout_rng,
                trainable: Mutex::new(HashSet::new()),
                grads: Mutex::new(HashMap::new()),
                recomputed: AtomicUsize::new(0),
            }),
        }
    }

    /// Declare the trainable tensors (variables) whose gradients the layers' backward keeps.
    pub fn track<'a>(&self, trainable: impl IntoIterator<Item = &'a Tensor>) -> Result<()> {
        let mut set = self.inner.trainable.lock().map_err(poisoned)?;
        set.extend(trainable.into_iter().map(Tensor::id));
        Ok(())
    }

    /// Run `layer` on `xs` so that only `xs` and the output stay in the graph (see the module
    /// doc). `layer` must be the same computation every time it is called (it is called again
    /// in backward) and capture everything it needs besides its input (masks, rope tables).
    pub fn layer<F>(&self, xs: &Tensor, layer: F) -> Result<Tensor>
    where
        F: Fn(&Tensor) -> Result<Tensor> + Send + Sync + 'static,
    {
        let rng_before = self.inner.dropout_rng.lock().map_err(poisoned)?.clone();
        let out = layer(&xs.detach())?.detach();
        // The custom op's forward hands back `out`'s storage as is; an offset or strided view
        // would need a copy, which layer outputs (fresh results of an op) never do.
        let out = match out.layout().contiguous_offsets() {
            Some((0, end)) if end == out.elem_count() => out,
            _ => out.contiguous()?.affine(1.0, 0.0)?,
        };
        // A frozen first layer's input (LoRA, linear probe: frozen embeddings) is not in any
        // graph; the op must be, or backward would never reach the layer's adapters. A leaf
        // copy puts it there (its own gradient is computed and dropped).
        let xs = if xs.track_op() {
            xs.clone()
        } else {
            Var::from_tensor(xs)?.into_inner()
        };
        xs.apply_op1(Recomputed {
            out: Mutex::new(Some(out)),
            layer: Box::new(layer),
            rng_before,
            ctx: self.clone(),
        })
    }

    /// Add the parameter gradients the checkpointed layers produced into `grads` (the store of
    /// the backward that ran them), and clear them here for the next micro-batch.
    pub fn merge_into(&self, grads: &mut GradStore) -> Result<()> {
        let mut side = self.inner.grads.lock().map_err(poisoned)?;
        for (id, g) in side.drain() {
            let total = match grads.get_id(id) {
                Some(existing) => (existing + &g)?,
                None => g,
            };
            grads.insert_id(id, total);
        }
        Ok(())
    }

    /// How many layer backward passes recomputed their layer so far.
    pub fn recomputed_layers(&self) -> usize {
        self.inner.recomputed.load(Ordering::Relaxed)
    }

    /// Drop parameter gradients of a backward whose result is discarded.
    pub fn clear(&self) -> Result<()> {
        self.inner.grads.lock().map_err(poisoned)?.clear();
        Ok(())
    }
}

type LayerFn = Box<dyn Fn(&Tensor) -> Result<Tensor> + Send + Sync>;

/// The graph node of one checkpointed layer (see the module doc).
struct Recomputed {
    /// The layer's output, computed before the op was applied; taken by the forward so the
    /// op does not keep a second copy of it alive until backward.
    out: Mutex<Option<Tensor>>,
    layer: LayerFn,
    /// The dropout stream as it was when the layer first ran.
    rng_before: ChaCha8Rng,
    ctx: Recompute,
}

impl Recomputed {
    fn take_out(&self) -> Result<Tensor> {
        self.out
            .lock()
            .map_err(poisoned)?
            .take()
            .ok_or_else(|| candle_core::Error::Msg("gradient checkpointing: a layer's forward ran twice".into()))
    }
}

impl CustomOp1 for Recomputed {
    fn name(&self) -> &'static str {
        "recomputed-layer"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        let out = self.take_out()?;
        let (storage, layout) = out.storage_and_layout();
        match &*storage {
            candle_core::Storage::Cpu(s) => Ok((s.try_clone(layout)?, layout.shape().clone())),
            _ => candle_core::bail!("gradient checkpointing: the layer ran on another device than its input"),
        }
    }

    // Not behind `feature = "cuda"`: candle's CPU builds have a stand-in `CudaStorage`, so
    // this is type-checked by every build (it is only called on a CUDA device).
    fn cuda_fwd(&self, _: &candle_core::CudaStorage, _: &Layout) -> Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        let out = self.take_out()?;
        let (storage, layout) = out.storage_and_layout();
        match &*storage {
            candle_core::Storage::Cuda(s) => Ok((s.try_clone(layout)?, layout.shape().clone())),
            _ => candle_core::bail!("gradient checkpointing: the layer ran on another device than its input"),
        }
    }

    fn bwd(&self, xs: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let leaf = Var::from_tensor(&xs.detach())?;
        let rng_now = {
            let mut rng = self.ctx.inner.dropout_rng.lock().map_err(poisoned)?;
            std::mem::replace(&mut *rng, self.rng_before.clone())
        };
        let recomputed = (self.layer)(leaf.as_tensor());
        // Put the stream back whatever happened: later draws must not depend on recomputing.
        *self.ctx.inner.dropout_rng.lock().map_err(poisoned)? = rng_now;
        let grads = (recomputed? * grad)?.sum_all()?.backward()?;
        self.ctx.inner.recomputed.fetch_add(1, Ordering::Relaxed);
        {
            let trainable = self.ctx.inner.trainable.lock().map_err(poisoned)?;
            let mut side = self.ctx.inner.grads.lock().map_err(poisoned)?;
            for id in trainable.iter() {
                if let Some(g) = grads.get_id(*id) {
                    let total = match side.remove(id) {
                        Some(existing) => (existing + g)?,
                        None => g.clone(),
                    };
                    side.insert(*id, total);
                }
            }
        }
        match grads.get(leaf.as_tensor()) {
            Some(g) => Ok(Some(g.clone())),
            None => Ok(Some(xs.zeros_like()?)),
        }
    }
}

/// Run one transformer layer, through `recompute` when it is set and the model is training
/// (inference keeps no graph, so there is nothing to save).
pub fn run_layer<F>(recompute: Option<&Recompute>, train: bool, xs: &Tensor, layer: F) -> Result<Tensor>
where
    F: Fn(&Tensor) -> Result<Tensor> + Send + Sync + 'static,
{
    match recompute {
        Some(r) if train => r.layer(xs, layer),
        _ => layer(xs),
    }
}
