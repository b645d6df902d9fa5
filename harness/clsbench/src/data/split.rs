//! Splitting rows into train / val / test: seeded per-class stratification, or the canonical
//! index files of the seed study.

use crate::error::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::Path;

/// Which split each row goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assign {
    Train,
    Val,
    Test,
}

/// Per-class stratified split with fractions `val` and `test` (train takes the rest).
///
/// Per class of n rows: val = round(n * val), test = round(n * test), train = the rest; when
/// that would leave train empty, val and test give rows back (test first) so every class
/// appears in train. Classes with fewer than 2 rows are an error: they could be trained on or
/// evaluated, never both. Rows are shuffled per class with ChaCha8 seeded from `seed`, so the
/// split depends only on the seed and the class membership, not on the platform.
pub fn stratified(
    labels: &[usize],
    n_classes: usize,
    val: f64,
    test: f64,
    seed: u64,
    class_names: &[String],
) -> Result<Vec<Assign>> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (row, &l) in labels.iter().enumerate() {
        by_class[l].push(row);
    }
    let mut out = vec![Assign::Train; labels.len()];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (class, rows) in by_class.iter_mut().enumerate() {
        let n = rows.len();
        if n == 0 {
            continue;
        }
        if n < 2 && (val > 0.0 || test > 0.0) {
            return Err(Error::bad_input(format!(
                "class {:?} has {n} example; a stratified split needs at least 2 per class (raise `labels.min_count`)",
                class_names.get(class).map(String::as_str).unwrap_or("?")
            )));
        }
        rows.shuffle(&mut rng);
        let mut n_val = (n as f64 * val).round() as usize;
        let mut n_test = (n as f64 * test).round() as usize;
        while n_val + n_test >= n {
            if n_test > 0 && (n_test >= n_val) {
                n_test -= 1;
            } else {
                n_val -= 1;
            }
        }
        for &r in &rows[..n_val] {
            out[r] = Assign::Val;
        }
        for &r in &rows[n_val..n_val + n_test] {
            out[r] = Assign::Test;
        }
    }
    Ok(out)
}

/// Read a JSON array of row indices (the seed's `train_indices.json` / `val_indices.json`),
/// checking each against the number of rows.
pub fn read_indices(path: &Path, n_rows: usize) -> Result<Vec<usize>> {
    let value: serde_json::Value = crate::fsutil::read_json(path)?;
    let arr = value
        .as_array()
        .ok_or_else(|| Error::bad_input(format!("{}: expected a JSON array of row indices", path.display())))?;
    let mut out = Vec::with_capacity(arr.len());
    for (i, v) in arr.iter().enumerate() {
        let idx = v.as_u64().ok_or_else(|| {
            Error::bad_input(format!(
                "{}: element {i}: expected a non-negative integer, got {v}",
                path.display()
            ))
        })? as usize;
        if idx >= n_rows {
            return Err(Error::bad_input(format!(
                "{}: element {i} is row {idx}, past the end of the data ({n_rows} rows)",
                path.display()
            )));
        }
        out.push(idx);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|i| format!("c{i}")).collect()
    }

    fn long_tail() -> Vec<usize> {
        // class c has 2 + 3c rows: 2, 5, 8, ... a small long tail.
        (0..12).flat_map(|c| std::iter::repeat_n(c, 2 + 3 * c)).collect()
    }

    #[test]
    fn same_seed_same_split_other_seed_other_split() {
        let labels = long_tail();
        let a = stratified(&labels, 12, 0.1, 0.2, 42, &names(12)).unwrap();
        let b = stratified(&labels, 12, 0.1, 0.2, 42, &names(12)).unwrap();
        let c = stratified(&labels, 12, 0.1, 0.2, 43, &names(12)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn every_class_is_in_train_and_fractions_hold() {
        let labels = long_tail();
        let split = stratified(&labels, 12, 0.1, 0.2, 7, &names(12)).unwrap();
        for c in 0..12 {
            let rows: Vec<Assign> = labels
                .iter()
                .zip(&split)
                .filter(|(l, _)| **l == c)
                .map(|(_, a)| *a)
                .collect();
            let n = rows.len();
            let count = |a| rows.iter().filter(|x| **x == a).count();
            assert!(count(Assign::Train) >= 1, "class {c} missing from train");
            assert_eq!(
                count(Assign::Test),
                ((n as f64 * 0.2).round() as usize).min(n - 1),
                "class {c}"
            );
        }
    }

    #[test]
    fn singleton_class_is_an_error_naming_it() {
        let err = stratified(&[0, 0, 1], 2, 0.1, 0.2, 1, &names(2))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"c1\"") && err.contains("at least 2"), "{err}");
    }

    #[test]
    fn index_past_the_end_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("idx.json");
        std::fs::write(&p, "[0, 1, 9]").unwrap();
        let err = read_indices(&p, 5).unwrap_err().to_string();
        assert!(
            err.contains("element 2") && err.contains("row 9") && err.contains("5 rows"),
            "{err}"
        );
    }
}
