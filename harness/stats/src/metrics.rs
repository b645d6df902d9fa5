//! Accuracy, macro / weighted F1 and per-class scores with scikit-learn's semantics
//! (protocol.md section 5), down to the order of floating-point additions.
//!
//! - `macro_f1` = `f1_score(y, p, average="macro", zero_division=0)` with no `labels=`: the mean
//!   over the classes present in gold ∪ pred, in class-id order. A class that is predicted but
//!   never gold counts with F1 = 0; a class in neither drops out.
//! - `weighted_f1` likewise, weighted by support.
//! - per-class scores use `labels=range(K)`, so classes absent from both get P = R = F1 = 0.
//!
//! Everything is derived from [`Counts`] (true positives, gold and predicted totals per class),
//! so a bootstrap resample costs O(n) to count and O(K) to score.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Scores of one class, as `precision_recall_fscore_support(labels=range(K), zero_division=0)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub label: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Gold examples of this class.
    pub support: usize,
    /// Examples predicted as this class.
    pub predicted: usize,
}

/// The headline scores of one model on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Documents scored.
    pub n: usize,
    pub accuracy: f64,
    /// Mean F1 over the classes present in gold ∪ pred (sklearn's default label set).
    pub macro_f1: f64,
    pub weighted_f1: f64,
    /// Classes with F1 == 0 over `labels=range(K)`: the seed's zero-F1 count, which also counts
    /// classes absent from the split (F1 = 0 by `zero_division=0`). "Rescued" = K - this.
    pub zero_f1_classes: usize,
    /// Classes with F1 == 0 among those with support > 0 (the week-2 lab's variant; equal to
    /// `zero_f1_classes` when every class occurs in the split, as on the seed's val).
    pub zero_f1_classes_with_support: usize,
    /// One entry per class id 0..K.
    pub per_class: Vec<ClassMetrics>,
}

/// Sufficient statistics of a (gold, pred) sample: per class true positives, gold and
/// predicted totals. Adding or removing a document is O(1); scoring is O(K).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    tp: Vec<u32>,
    gold: Vec<u32>,
    pred: Vec<u32>,
    correct: u32,
    n: u32,
}

impl Counts {
    pub fn new(n_classes: usize) -> Counts {
        Counts {
            tp: vec![0; n_classes],
            gold: vec![0; n_classes],
            pred: vec![0; n_classes],
            correct: 0,
            n: 0,
        }
    }

    /// Counts of a labelled sample, after checking lengths and class ids.
    pub fn from_labels(gold: &[usize], pred: &[usize], n_classes: usize) -> Result<Counts> {
        check_labels(gold, pred, n_classes)?;
        let mut counts = Counts::new(n_classes);
        for (&g, &p) in gold.iter().zip(pred) {
            counts.add(g, p);
        }
        Ok(counts)
    }

    pub fn n_classes(&self) -> usize {
        self.tp.len()
    }

    pub fn n(&self) -> usize {
        self.n as usize
    }

    pub fn correct(&self) -> usize {
        self.correct as usize
    }

    pub fn support(&self, class: usize) -> usize {
        self.gold[class] as usize
    }

    pub fn predicted(&self, class: usize) -> usize {
        self.pred[class] as usize
    }

    /// Adds one document. Panics if an id is >= `n_classes`: check inputs with [`check_labels`]
    /// (as `from_labels` does) before the hot loop.
    #[inline]
    pub fn add(&mut self, gold: usize, pred: usize) {
        let hit = u32::from(gold == pred);
        self.gold[gold] += 1;
        self.pred[pred] += 1;
        self.tp[gold] += hit;
        self.correct += hit;
        self.n += 1;
    }

    /// Removes one document previously added (used for leave-one-out jackknife values).
    /// Removing a document that was never added is a logic error (counts underflow).
    #[inline]
    pub fn remove(&mut self, gold: usize, pred: usize) {
        let hit = u32::from(gold == pred);
        self.gold[gold] -= 1;
        self.pred[pred] -= 1;
        self.tp[gold] -= hit;
        self.correct -= hit;
        self.n -= 1;
    }

    /// Accuracy; NaN for an empty sample (undefined, as in numpy).
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.n as f64
    }

    /// F1 of one class, `2 tp / (gold + pred)` as sklearn computes it; 0 when the class is in
    /// neither gold nor pred (`zero_division=0`).
    #[inline]
    pub fn class_f1(&self, class: usize) -> f64 {
        class_f1(self.tp[class], self.gold[class], self.pred[class])
    }

    /// sklearn's macro F1 without `labels=`; `scratch` avoids an allocation per call.
    pub fn macro_f1_with(&self, scratch: &mut Vec<f64>) -> f64 {
        macro_f1_from_counts(&self.tp, &self.gold, &self.pred, scratch)
    }

    pub fn macro_f1(&self) -> f64 {
        self.macro_f1_with(&mut Vec::with_capacity(self.n_classes()))
    }

    /// Macro F1 over a fixed label set, as `f1_score(labels=labels, average="macro")`; NaN for
    /// an empty label set.
    pub fn macro_f1_over(&self, labels: &[usize]) -> f64 {
        let f1: Vec<f64> = labels.iter().map(|&c| self.class_f1(c)).collect();
        numpy_pairwise_sum(&f1) / f1.len() as f64
    }

    /// sklearn's weighted F1 without `labels=` (weights = support).
    pub fn weighted_f1(&self) -> f64 {
        // np.average(f1, weights=support) over the present labels, zero-support ones included
        // (their zero products still take a slot in numpy's pairwise summation).
        let weighted: Vec<f64> = (0..self.n_classes())
            .filter(|&c| self.gold[c] + self.pred[c] > 0)
            .map(|c| self.class_f1(c) * self.gold[c] as f64)
            .collect();
        numpy_pairwise_sum(&weighted) / self.n as f64
    }

    /// Per-class scores over `labels=range(K)`.
    pub fn per_class(&self) -> Vec<ClassMetrics> {
        (0..self.n_classes())
            .map(|c| ClassMetrics {
                label: c,
                precision: ratio_or_zero(self.tp[c], self.pred[c]),
                recall: ratio_or_zero(self.tp[c], self.gold[c]),
                f1: self.class_f1(c),
                support: self.gold[c] as usize,
                predicted: self.pred[c] as usize,
            })
            .collect()
    }

    pub fn metrics(&self) -> Metrics {
        let per_class = self.per_class();
        Metrics {
            n: self.n(),
            accuracy: self.accuracy(),
            macro_f1: self.macro_f1(),
            weighted_f1: self.weighted_f1(),
            zero_f1_classes: per_class.iter().filter(|c| c.f1 == 0.0).count(),
            zero_f1_classes_with_support: per_class.iter().filter(|c| c.f1 == 0.0 && c.support > 0).count(),
            per_class,
        }
    }
}

#[inline]
fn class_f1(tp: u32, gold: u32, pred: u32) -> f64 {
    ratio_or_zero(2 * tp, gold + pred)
}

#[inline]
fn ratio_or_zero(num: u32, den: u32) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Macro F1 from per-class totals of one model (the bootstrap's hot path shares it).
#[inline]
pub(crate) fn macro_f1_from_counts(tp: &[u32], gold: &[u32], pred: &[u32], scratch: &mut Vec<f64>) -> f64 {
    scratch.clear();
    for ((&t, &g), &p) in tp.iter().zip(gold).zip(pred) {
        if g + p > 0 {
            scratch.push(class_f1(t, g, p));
        }
    }
    numpy_pairwise_sum(scratch) / scratch.len() as f64
}

/// numpy's pairwise summation (`np.add.reduce` on a contiguous float64 array): 8 running sums
/// in blocks of up to 128, halves above. Replicated so our macro F1 is bit-identical to
/// sklearn's `np.mean`, and bootstrap ties (delta == 0, resample == point) fall the same way.
pub fn numpy_pairwise_sum(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 8 {
        values.iter().fold(0.0, |acc, &v| acc + v)
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&values[..8]);
        let blocks_end = n - n % 8;
        let mut i = 8;
        while i < blocks_end {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += values[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &values[blocks_end..] {
            res += v;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        numpy_pairwise_sum(&values[..half]) + numpy_pairwise_sum(&values[half..])
    }
}

/// Checks that gold and pred are non-empty, of equal length and hold ids < `n_classes`.
pub fn check_labels(gold: &[usize], pred: &[usize], n_classes: usize) -> Result<()> {
    check_lengths(gold, pred)?;
    if u32::try_from(gold.len()).is_err() {
        return Err(Error::bad_input(format!(
            "{} documents: at most {} are supported",
            gold.len(),
            u32::MAX
        )));
    }
    for (name, labels) in [("gold", gold), ("pred", pred)] {
        if let Some((i, &bad)) = labels.iter().enumerate().find(|&(_, &l)| l >= n_classes) {
            return Err(Error::bad_input(format!(
                "{name}[{i}] = {bad} is not a class id: expected < {n_classes} (the number of classes)"
            )));
        }
    }
    Ok(())
}

fn check_lengths(gold: &[usize], pred: &[usize]) -> Result<()> {
    if gold.len() != pred.len() {
        return Err(Error::bad_input(format!(
            "gold has {} labels but pred has {}: expected one prediction per document",
            gold.len(),
            pred.len()
        )));
    }
    if gold.is_empty() {
        return Err(Error::bad_input(
            "no documents to score: expected at least one gold label",
        ));
    }
    Ok(())
}

/// Share of documents with pred == gold (`accuracy_score`).
pub fn accuracy(gold: &[usize], pred: &[usize]) -> Result<f64> {
    check_lengths(gold, pred)?;
    let correct = gold.iter().zip(pred).filter(|(g, p)| g == p).count();
    Ok(correct as f64 / gold.len() as f64)
}

/// `f1_score(gold, pred, average="macro", zero_division=0)`.
pub fn macro_f1(gold: &[usize], pred: &[usize], n_classes: usize) -> Result<f64> {
    Ok(Counts::from_labels(gold, pred, n_classes)?.macro_f1())
}

/// `f1_score(gold, pred, average="weighted", zero_division=0)`.
pub fn weighted_f1(gold: &[usize], pred: &[usize], n_classes: usize) -> Result<f64> {
    Ok(Counts::from_labels(gold, pred, n_classes)?.weighted_f1())
}

/// All headline scores and per-class scores of one prediction set.
pub fn compute(gold: &[usize], pred: &[usize], n_classes: usize) -> Result<Metrics> {
    Ok(Counts::from_labels(gold, pred, n_classes)?.metrics())
}

/// K x K counts, rows = gold class, columns = predicted class (`confusion_matrix(labels=range(K))`).
pub fn confusion_matrix(gold: &[usize], pred: &[usize], n_classes: usize) -> Result<Vec<Vec<usize>>> {
    check_labels(gold, pred, n_classes)?;
    let mut m = vec![vec![0usize; n_classes]; n_classes];
    for (&g, &p) in gold.iter().zip(pred) {
        m[g][p] += 1;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_reference::{assert_close, reference, usizes};
    use serde_json::Value;

    fn check_against(case: &Value, gold: &[usize], pred: &[usize], n_classes: usize, what: &str) {
        let m = compute(gold, pred, n_classes).unwrap();
        // Bit-level agreement is expected (same divisions, same summation order).
        assert_close(m.accuracy, &case["accuracy"], 1e-15, &format!("{what}: accuracy"));
        assert_close(m.macro_f1, &case["macro_f1"], 1e-15, &format!("{what}: macro F1"));
        assert_close(
            m.weighted_f1,
            &case["weighted_f1"],
            1e-15,
            &format!("{what}: weighted F1"),
        );
        assert_eq!(
            m.zero_f1_classes as u64,
            case["zero_f1_classes"].as_u64().unwrap(),
            "{what}"
        );
        assert_eq!(
            m.zero_f1_classes_with_support as u64,
            case["zero_f1_classes_with_support"].as_u64().unwrap(),
            "{what}"
        );
        assert_eq!(m.per_class.len(), n_classes);
        for c in &m.per_class {
            let at = |field: &str| format!("{what}: class {} {field}", c.label);
            assert_close(c.precision, &case["precision"][c.label], 1e-15, &at("precision"));
            assert_close(c.recall, &case["recall"][c.label], 1e-15, &at("recall"));
            assert_close(c.f1, &case["f1"][c.label], 1e-15, &at("f1"));
            assert_eq!(
                c.support as u64,
                case["support"][c.label].as_u64().unwrap(),
                "{}",
                at("support")
            );
            assert_eq!(
                c.predicted as u64,
                case["predicted"][c.label].as_u64().unwrap(),
                "{}",
                at("predicted")
            );
        }
        let acc = accuracy(gold, pred).unwrap();
        assert_eq!(acc, m.accuracy);
        assert_eq!(macro_f1(gold, pred, n_classes).unwrap(), m.macro_f1);
        assert_eq!(weighted_f1(gold, pred, n_classes).unwrap(), m.weighted_f1);
    }

    #[test]
    fn long_tail_metrics_match_sklearn() {
        let r = reference();
        let lt = &r["long_tail"];
        let k = lt["n_classes"].as_u64().unwrap() as usize;
        let gold = usizes(&lt["gold"]);
        for (i, key) in ["pred_a", "pred_b"].iter().enumerate() {
            check_against(&lt["metrics"][i], &gold, &usizes(&lt[key]), k, key);
        }
    }

    #[test]
    fn edge_cases_match_sklearn() {
        let r = reference();
        for case in r["edge_cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let k = case["n_classes"].as_u64().unwrap() as usize;
            let (gold, pred) = (usizes(&case["gold"]), usizes(&case["pred"]));
            check_against(case, &gold, &pred, k, name);
            let cm = confusion_matrix(&gold, &pred, k).unwrap();
            let expected: Vec<Vec<usize>> = case["confusion_matrix"]
                .as_array()
                .unwrap()
                .iter()
                .map(usizes)
                .collect();
            assert_eq!(cm, expected, "{name}: confusion matrix");
        }
    }

    #[test]
    fn confusion_matrix_rows_are_gold() {
        let r = reference();
        let lt = &r["long_tail"];
        let k = lt["n_classes"].as_u64().unwrap() as usize;
        let cm = confusion_matrix(&usizes(&lt["gold"]), &usizes(&lt["pred_a"]), k).unwrap();
        for (row, expected) in cm.iter().zip(lt["confusion_matrix_first_rows"].as_array().unwrap()) {
            assert_eq!(row, &usizes(expected));
        }
    }

    #[test]
    fn removing_a_document_undoes_adding_it() {
        let mut counts = Counts::from_labels(&[0, 1, 2, 2], &[0, 2, 2, 1], 3).unwrap();
        let before = counts.clone();
        counts.add(1, 0);
        assert_ne!(counts, before);
        counts.remove(1, 0);
        assert_eq!(counts, before);
    }

    #[test]
    fn pairwise_sum_matches_plain_sum_in_value() {
        for n in [0, 1, 7, 8, 9, 64, 127, 128, 129, 300, 1000] {
            let v: Vec<f64> = (0..n).map(|i| (i % 7) as f64 * 0.5).collect();
            assert_eq!(numpy_pairwise_sum(&v), v.iter().sum::<f64>(), "n = {n}");
        }
    }

    #[test]
    fn bad_inputs_are_named() {
        let err = compute(&[0, 1], &[0], 2).unwrap_err().to_string();
        assert!(err.contains("gold has 2") && err.contains("pred has 1"), "{err}");
        let err = compute(&[0, 1], &[0, 5], 3).unwrap_err().to_string();
        assert!(err.contains("pred[1] = 5") && err.contains("< 3"), "{err}");
        let err = macro_f1(&[], &[], 3).unwrap_err().to_string();
        assert!(err.contains("no documents"), "{err}");
        assert!(accuracy(&[1], &[]).is_err());
    }
}
