//! What the fused CPU kernels share: reading f32 storage, splitting rows over rayon's threads,
//! and reducing per-row contributions (the norms' weight gradients) in a fixed order.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, Layout, Result};
use rayon::prelude::*;

/// Elements per rayon task: big enough that the per-task cost is noise, small enough to
/// balance over the cores (the same size the inference activations use).
const TASK_ELEMS: usize = 1 << 14;

/// Rows per task for rows of `width` elements (at least one).
pub(super) fn rows_per_task(width: usize) -> usize {
    (TASK_ELEMS / width.max(1)).max(1)
}

/// The contiguous f32 slice behind `layout`. The callers make their inputs contiguous first;
/// anything else is a bug of ours, reported as an error rather than a panic.
pub(super) fn contiguous_f32<'a>(op: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{op}: f32 only, got {:?}", storage.dtype())
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{op}: contiguous input only")
    };
    Ok(&data[start..end])
}

/// The slice of a row-major operand whose leading dims may be broadcast (stride 0) but whose
/// last dim is contiguous (the additive attention mask broadcast over heads and queries).
pub(super) struct StridedRows<'a> {
    data: &'a [f32],
    start: usize,
    /// Sizes and strides of every dim but the last.
    outer: Vec<(usize, usize)>,
    width: usize,
}

impl<'a> StridedRows<'a> {
    pub(super) fn new(op: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<StridedRows<'a>> {
        let CpuStorage::F32(data) = storage else {
            bail!("{op}: f32 only, got {:?}", storage.dtype())
        };
        let dims = layout.dims();
        let strides = layout.stride();
        let Some((&width, _)) = dims.split_last() else {
            bail!("{op}: expected at least one dimension")
        };
        if width > 1 && strides[dims.len() - 1] != 1 {
            bail!("{op}: the last dimension must be contiguous");
        }
        let outer = dims[..dims.len() - 1]
            .iter()
            .copied()
            .zip(strides.iter().copied())
            .collect();
        Ok(StridedRows {
            data,
            start: layout.start_offset(),
            outer,
            width,
        })
    }

    /// Row `row` in row-major order over the leading dims.
    pub(super) fn row(&self, mut row: usize) -> &'a [f32] {
        let mut offset = self.start;
        for &(size, stride) in self.outer.iter().rev() {
            offset += (row % size) * stride;
            row /= size;
        }
        &self.data[offset..offset + self.width]
    }
}

/// Rows per block of a column reduction. The blocks are fixed by the shape, not by rayon's
/// scheduling, and their partial sums are added in block order: the same inputs give the same
/// bits on every run, whatever the thread count (rayon's `fold`/`reduce` split adaptively).
const REDUCE_BLOCK_ROWS: usize = 16;

/// For rows of `width` elements: fills `out` (one row per input row) with `row_fn`, which also
/// adds the row's contribution to `n_cols` column accumulators; returns the column sums.
/// `row_fn(row_index, out_row, accumulators)`.
pub(super) fn rows_with_column_sums<F>(out: &mut [f32], width: usize, n_cols: usize, row_fn: F) -> Vec<f32>
where
    F: Fn(usize, &mut [f32], &mut [f32]) + Sync,
{
    let block = REDUCE_BLOCK_ROWS * width;
    let partials: Vec<Vec<f32>> = out
        .par_chunks_mut(block)
        .enumerate()
        .map(|(b, out_block)| {
            let mut acc = vec![0f32; n_cols];
            for (r, out_row) in out_block.chunks_mut(width).enumerate() {
                row_fn(b * REDUCE_BLOCK_ROWS + r, out_row, &mut acc);
            }
            acc
        })
        .collect();
    // f64 across blocks: a few hundred partials per column, summed in a fixed order.
    let mut total = vec![0f64; n_cols];
    for p in &partials {
        for (t, &v) in total.iter_mut().zip(p) {
            *t += f64::from(v);
        }
    }
    total.into_iter().map(|v| v as f32).collect()
}

/// Runs `row_fn(row_index, out_row)` over rows of `width` elements in parallel.
pub(super) fn par_rows<F>(out: &mut [f32], width: usize, row_fn: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let per_task = rows_per_task(width);
    out.par_chunks_mut(per_task * width).enumerate().for_each(|(t, chunk)| {
        for (r, out_row) in chunk.chunks_mut(width).enumerate() {
            row_fn(t * per_task + r, out_row);
        }
    });
}

/// Runs `kernel(out, a)` over matching chunks of element-wise operands in parallel.
pub(super) fn par_elementwise1(out: &mut [f32], a: &[f32], kernel: impl Fn(&mut [f32], &[f32]) + Sync) {
    out.par_chunks_mut(TASK_ELEMS)
        .zip(a.par_chunks(TASK_ELEMS))
        .for_each(|(o, a)| kernel(o, a));
}

/// Runs `kernel(out, a, b)` over matching chunks of element-wise operands in parallel.
pub(super) fn par_elementwise2(
    out: &mut [f32],
    a: &[f32],
    b: &[f32],
    kernel: impl Fn(&mut [f32], &[f32], &[f32]) + Sync,
) {
    out.par_chunks_mut(TASK_ELEMS)
        .zip(a.par_chunks(TASK_ELEMS))
        .zip(b.par_chunks(TASK_ELEMS))
        .for_each(|((o, a), b)| kernel(o, a, b));
}

/// Lanes of the reductions below: eight independent accumulators let the compiler keep them
/// in one SIMD register (a single running f32 sum cannot be reordered, so it stays scalar).
const LANES: usize = 8;

/// sum(a), vectorisable.
#[inline]
pub(super) fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = a.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// sum(a * b), vectorisable.
#[inline]
pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// max(a), NaN-propagating (`f32::max` would skip a NaN and hide it from the caller).
#[inline]
pub(super) fn max(a: &[f32]) -> f32 {
    let mut m = f32::NEG_INFINITY;
    for &v in a {
        m = if v > m || v.is_nan() { v } else { m };
    }
    m
}
