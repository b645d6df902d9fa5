//! Class tiers by training frequency, the seed's three schemes (protocol.md section 6), and
//! per-tier scores.
//!
//! - `Rank`: classes sorted by train count, most frequent first; ties keep the order in which
//!   the classes first appear in the training split (what `Counter.most_common` does with the
//!   seed's train labels). Head = first 20, mid = next 40, tail = the rest. Classes never seen
//!   in training have count 0 and come last, in class-id order.
//! - `Count`: head >= 2,000 train examples, mid 100..=1,999, tail < 100.
//! - `RareQuartile`: q25 = ascending train counts of all K classes at position K / 4
//!   (`utils._get_rare_classes`); rare = count <= q25, common = the rest.
//!
//! Per tier (the seed's week 6): accuracy over the documents whose gold class is in the tier,
//! macro F1 over those documents with `labels=` the sorted tier classes present in their gold.

use crate::error::{Error, Result};
use crate::metrics::{check_labels, Counts};
use serde::{Deserialize, Serialize};

/// Tier definitions from the seed's protocol (section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TierScheme {
    /// Rank by train count: head = top 20, mid = next 40, tail = rest.
    Rank,
    /// Train count: head >= 2000, mid 100..=1999, tail < 100.
    Count,
    /// Rare = train count <= the count at sorted position n/4; common = the rest.
    RareQuartile,
}

const RANK_HEAD: usize = 20;
const RANK_MID: usize = 40;
const COUNT_HEAD_MIN: usize = 2000;
const COUNT_MID_MIN: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TierName {
    Head,
    Mid,
    Tail,
    Rare,
    Common,
}

impl TierName {
    pub fn as_str(self) -> &'static str {
        match self {
            TierName::Head => "head",
            TierName::Mid => "mid",
            TierName::Tail => "tail",
            TierName::Rare => "rare",
            TierName::Common => "common",
        }
    }
}

/// The tiers of a scheme, in report order.
pub fn tier_names(scheme: TierScheme) -> &'static [TierName] {
    match scheme {
        TierScheme::Rank | TierScheme::Count => &[TierName::Head, TierName::Mid, TierName::Tail],
        TierScheme::RareQuartile => &[TierName::Rare, TierName::Common],
    }
}

/// Class ids in the order they first appear in the training labels (each once).
pub fn first_seen_order(train_labels: &[usize], n_classes: usize) -> Result<Vec<usize>> {
    let mut seen = vec![false; n_classes];
    let mut order = Vec::new();
    for (i, &label) in train_labels.iter().enumerate() {
        let slot = seen.get_mut(label).ok_or_else(|| {
            Error::bad_input(format!(
                "train label [{i}] = {label} is not a class id: expected < {n_classes}"
            ))
        })?;
        if !*slot {
            *slot = true;
            order.push(label);
        }
    }
    Ok(order)
}

/// The tier of every class (index = class id).
///
/// `first_seen` must list every class with a non-zero train count once (see
/// [`first_seen_order`]); it only matters to the `Rank` scheme's ties.
pub fn assign(train_counts: &[usize], first_seen: &[usize], scheme: TierScheme) -> Result<Vec<TierName>> {
    let k = train_counts.len();
    if k == 0 {
        return Err(Error::bad_input("tiers: no classes (train counts are empty)"));
    }
    Ok(match scheme {
        TierScheme::Rank => {
            let mut tiers = vec![TierName::Tail; k];
            for (rank, class) in rank_order(train_counts, first_seen)?.into_iter().enumerate() {
                tiers[class] = match rank {
                    r if r < RANK_HEAD => TierName::Head,
                    r if r < RANK_HEAD + RANK_MID => TierName::Mid,
                    _ => TierName::Tail,
                };
            }
            tiers
        }
        TierScheme::Count => train_counts
            .iter()
            .map(|&c| match c {
                c if c >= COUNT_HEAD_MIN => TierName::Head,
                c if c >= COUNT_MID_MIN => TierName::Mid,
                _ => TierName::Tail,
            })
            .collect(),
        TierScheme::RareQuartile => {
            let q25 = rare_quartile_threshold(train_counts).unwrap_or_default();
            train_counts
                .iter()
                .map(|&c| if c <= q25 { TierName::Rare } else { TierName::Common })
                .collect()
        }
    })
}

/// The train count at ascending position K / 4: classes at or below it are "rare". `None`
/// for no classes.
pub fn rare_quartile_threshold(train_counts: &[usize]) -> Option<usize> {
    let mut sorted = train_counts.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 4).copied()
}

/// Classes by train count, most frequent first, ties by first occurrence in training.
fn rank_order(train_counts: &[usize], first_seen: &[usize]) -> Result<Vec<usize>> {
    let k = train_counts.len();
    let mut listed = vec![false; k];
    for (i, &class) in first_seen.iter().enumerate() {
        match listed.get_mut(class) {
            None => {
                return Err(Error::bad_input(format!(
                    "tiers: first-seen order [{i}] = {class} is not a class id: expected < {k}"
                )))
            }
            Some(true) => {
                return Err(Error::bad_input(format!(
                    "tiers: class {class} is listed twice in first-seen order"
                )))
            }
            Some(slot) => *slot = true,
        }
    }
    if let Some(missing) = (0..k).find(|&c| train_counts[c] > 0 && !listed[c]) {
        return Err(Error::bad_input(format!(
            "tiers: class {missing} has {} training examples but is missing from the first-seen order",
            train_counts[missing]
        )));
    }
    let mut order: Vec<usize> = first_seen.to_vec();
    order.extend((0..k).filter(|&c| !listed[c]));
    // Stable: equal counts keep first-seen order, as Python's sorted(..., reverse=True) does.
    order.sort_by(|&a, &b| train_counts[b].cmp(&train_counts[a]));
    Ok(order)
}

/// Scores of one tier. `accuracy` and `macro_f1` are `None` when no evaluated document's gold
/// class falls in the tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierMetrics {
    pub tier: TierName,
    /// Classes assigned to the tier (by train counts).
    pub n_classes: usize,
    /// Tier classes present in the evaluated gold: the macro-F1 label set.
    pub n_classes_present: usize,
    /// Evaluated documents whose gold class is in the tier.
    pub n_examples: usize,
    pub accuracy: Option<f64>,
    pub macro_f1: Option<f64>,
}

/// One scheme's tiers and scores for one model on one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TierReport {
    pub scheme: TierScheme,
    /// Tier of every class id.
    pub assignment: Vec<TierName>,
    pub tiers: Vec<TierMetrics>,
}

/// Per-tier scores of `pred` against `gold` given each class's tier.
pub fn tier_metrics(
    gold: &[usize],
    pred: &[usize],
    assignment: &[TierName],
    scheme: TierScheme,
) -> Result<Vec<TierMetrics>> {
    let k = assignment.len();
    check_labels(gold, pred, k)?;
    tier_names(scheme)
        .iter()
        .map(|&tier| {
            let mut counts = Counts::new(k);
            for (&g, &p) in gold.iter().zip(pred) {
                if assignment[g] == tier {
                    counts.add(g, p);
                }
            }
            let present: Vec<usize> = (0..k)
                .filter(|&c| assignment[c] == tier && counts.support(c) > 0)
                .collect();
            let scored = counts.n() > 0;
            Ok(TierMetrics {
                tier,
                n_classes: assignment.iter().filter(|&&t| t == tier).count(),
                n_classes_present: present.len(),
                n_examples: counts.n(),
                accuracy: scored.then(|| counts.accuracy()),
                macro_f1: scored.then(|| counts.macro_f1_over(&present)),
            })
        })
        .collect()
}

/// Assigns tiers from train counts and scores `pred` per tier.
pub fn tier_report(
    gold: &[usize],
    pred: &[usize],
    train_counts: &[usize],
    first_seen: &[usize],
    scheme: TierScheme,
) -> Result<TierReport> {
    let assignment = assign(train_counts, first_seen, scheme)?;
    let tiers = tier_metrics(gold, pred, &assignment, scheme)?;
    Ok(TierReport {
        scheme,
        assignment,
        tiers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_reference::{assert_close, reference, usizes};

    fn scheme_key(scheme: TierScheme) -> &'static str {
        match scheme {
            TierScheme::Rank => "rank",
            TierScheme::Count => "count",
            TierScheme::RareQuartile => "rare-quartile",
        }
    }

    #[test]
    fn tiers_and_tier_metrics_match_the_python_reference() {
        let r = reference();
        let lt = &r["long_tail"];
        let counts = usizes(&lt["train_counts"]);
        let first_seen = usizes(&lt["first_seen_order"]);
        let gold = usizes(&lt["gold"]);
        for scheme in [TierScheme::Rank, TierScheme::Count, TierScheme::RareQuartile] {
            let expected = &lt["tiers"][scheme_key(scheme)];
            for (m, key) in ["pred_a", "pred_b"].iter().enumerate() {
                let report = tier_report(&gold, &usizes(&lt[key]), &counts, &first_seen, scheme).unwrap();
                let names: Vec<&str> = report.assignment.iter().map(|t| t.as_str()).collect();
                let want: Vec<&str> = expected["assignment"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                assert_eq!(names, want, "{scheme:?} assignment");
                for (got, want) in report.tiers.iter().zip(expected["metrics"][m].as_array().unwrap()) {
                    let at = format!("{scheme:?} {key} {}", got.tier.as_str());
                    assert_eq!(got.tier.as_str(), want["tier"].as_str().unwrap(), "{at}");
                    assert_eq!(got.n_classes as u64, want["n_classes"].as_u64().unwrap(), "{at}");
                    assert_eq!(
                        got.n_classes_present as u64,
                        want["n_classes_present"].as_u64().unwrap(),
                        "{at}"
                    );
                    assert_eq!(got.n_examples as u64, want["n_examples"].as_u64().unwrap(), "{at}");
                    assert_close(
                        got.accuracy.unwrap(),
                        &want["accuracy"],
                        1e-15,
                        &format!("{at} accuracy"),
                    );
                    assert_close(
                        got.macro_f1.unwrap(),
                        &want["macro_f1"],
                        1e-15,
                        &format!("{at} macro F1"),
                    );
                }
            }
        }
        assert_eq!(
            rare_quartile_threshold(&counts).map(|q| q as u64),
            lt["rare_quartile_q25"].as_u64()
        );
        assert_eq!(rare_quartile_threshold(&[]), None);
    }

    #[test]
    fn rank_ties_follow_first_occurrence() {
        // 22 classes with equal counts: the first 20 seen are head, whatever their ids.
        let counts = vec![10usize; 22];
        let first_seen: Vec<usize> = (0..22).rev().collect();
        let tiers = assign(&counts, &first_seen, TierScheme::Rank).unwrap();
        assert_eq!(tiers[0], TierName::Mid);
        assert_eq!(tiers[1], TierName::Mid);
        assert!(tiers[2..].iter().all(|&t| t == TierName::Head));
    }

    #[test]
    fn classes_unseen_in_training_are_tail() {
        let mut counts = vec![5usize; 70];
        counts[3] = 0;
        let first_seen: Vec<usize> = (0..70).filter(|&c| c != 3).collect();
        let tiers = assign(&counts, &first_seen, TierScheme::Rank).unwrap();
        assert_eq!(tiers[3], TierName::Tail);
        assert_eq!(tiers[0], TierName::Head);
    }

    #[test]
    fn first_seen_order_lists_each_class_once() {
        assert_eq!(first_seen_order(&[2, 0, 2, 1, 0], 4).unwrap(), vec![2, 0, 1]);
        assert!(first_seen_order(&[0, 4], 4)
            .unwrap_err()
            .to_string()
            .contains("[1] = 4"));
    }

    #[test]
    fn inconsistent_first_seen_order_is_rejected() {
        let err = assign(&[3, 2, 1], &[0, 1], TierScheme::Rank).unwrap_err().to_string();
        assert!(err.contains("class 2") && err.contains("missing"), "{err}");
        assert!(assign(&[3, 2], &[0, 1, 0], TierScheme::Rank)
            .unwrap_err()
            .to_string()
            .contains("twice"));
    }

    #[test]
    fn empty_tier_has_no_scores() {
        // Class 2 (tail by count) never occurs in the evaluated gold.
        let assignment = assign(&[5000, 500, 5], &[0, 1, 2], TierScheme::Count).unwrap();
        let tiers = tier_metrics(&[0, 1, 1], &[0, 2, 1], &assignment, TierScheme::Count).unwrap();
        let tail = &tiers[2];
        assert_eq!(
            (tail.tier, tail.n_examples, tail.n_classes, tail.n_classes_present),
            (TierName::Tail, 0, 1, 0)
        );
        assert_eq!((tail.accuracy, tail.macro_f1), (None, None));
        assert_eq!(tiers[1].accuracy, Some(0.5));
    }
}
