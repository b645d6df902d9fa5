//! Training batches: a seeded shuffle per epoch and, optionally, length grouping in the manner
//! of transformers' `LengthGroupedSampler` (shuffle, cut into mega-batches of 50 batches, sort
//! each by length, cut into batches), which keeps batches random but each one nearly uniform
//! in length so dynamic padding wastes little. The batch order is shuffled again afterwards so
//! the longest batches do not all come first.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const MEGA_BATCH_FACTOR: usize = 50;

/// Indices into `lengths`, grouped into batches of at most `batch_size`, for one epoch.
pub fn epoch_batches(
    lengths: &[usize],
    batch_size: usize,
    bucketing: bool,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(&mut rng);
    let batch_size = batch_size.max(1);
    if !bucketing {
        return order.chunks(batch_size).map(<[usize]>::to_vec).collect();
    }
    let mut batches = Vec::new();
    for mega in order.chunks(batch_size * MEGA_BATCH_FACTOR) {
        let mut mega = mega.to_vec();
        mega.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        batches.extend(mega.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
}

/// A stratified subsample of at most `cap` rows: each class keeps its share (largest
/// remainder), at least one row per class present, drawn with a seeded shuffle. Returns
/// sorted row indices.
pub fn stratified_subsample(labels: &[usize], cap: usize, seed: u64) -> Vec<usize> {
    if cap >= labels.len() {
        return (0..labels.len()).collect();
    }
    let n_classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l].push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for rows in by_class.iter_mut() {
        rows.shuffle(&mut rng);
    }
    let n = labels.len() as f64;
    let exact: Vec<f64> = by_class.iter().map(|r| r.len() as f64 * cap as f64 / n).collect();
    let mut quota: Vec<usize> = by_class
        .iter()
        .zip(&exact)
        .map(|(r, &e)| if r.is_empty() { 0 } else { (e.floor() as usize).max(1) })
        .collect();
    let mut total: usize = quota.iter().sum();
    let mut by_remainder: Vec<usize> = (0..n_classes).filter(|&c| !by_class[c].is_empty()).collect();
    by_remainder.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    for &c in by_remainder.iter().cycle().take(by_remainder.len() * 2) {
        if total >= cap {
            break;
        }
        if quota[c] < by_class[c].len() {
            quota[c] += 1;
            total += 1;
        }
    }
    let mut out: Vec<usize> = by_class
        .iter()
        .zip(&quota)
        .flat_map(|(r, &q)| r[..q.min(r.len())].iter().copied())
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_once_per_epoch_and_seeded() {
        let lengths: Vec<usize> = (0..1000).map(|i| (i * 37) % 128 + 1).collect();
        for bucketing in [false, true] {
            let b = epoch_batches(&lengths, 32, bucketing, 42, 0);
            let mut all: Vec<usize> = b.iter().flatten().copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..1000).collect::<Vec<_>>());
            assert_eq!(b, epoch_batches(&lengths, 32, bucketing, 42, 0));
            assert_ne!(b, epoch_batches(&lengths, 32, bucketing, 42, 1));
        }
    }

    #[test]
    fn bucketing_cuts_padding() {
        let lengths: Vec<usize> = (0..3200).map(|i| (i * 7919) % 128 + 1).collect();
        let padded = |b: &Vec<Vec<usize>>| -> usize {
            b.iter()
                .map(|batch| batch.iter().map(|&i| lengths[i]).max().unwrap() * batch.len())
                .sum()
        };
        let plain = padded(&epoch_batches(&lengths, 32, false, 1, 0));
        let grouped = padded(&epoch_batches(&lengths, 32, true, 1, 0));
        assert!((grouped as f64) < 0.7 * plain as f64, "{grouped} vs {plain}");
    }

    #[test]
    fn subsample_keeps_every_class_and_the_cap() {
        let labels: Vec<usize> = (0..1000)
            .map(|i| {
                if i < 900 {
                    0
                } else if i < 990 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let s = stratified_subsample(&labels, 100, 7);
        assert_eq!(s.len(), 100);
        let count = |c| s.iter().filter(|&&i| labels[i] == c).count();
        assert_eq!((count(0), count(1), count(2)), (90, 9, 1));
    }
}
