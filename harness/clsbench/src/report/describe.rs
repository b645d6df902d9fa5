//! `clsbench describe`: what a suite's data looks like before anything is trained — rows per
//! split, label processing, the class-count histogram (the seed's buckets) and the tiers.

use crate::data::{Dataset, LoadReport};
use crate::suite::Suite;
use clsbench_stats::tiers;
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write;

#[derive(Debug, Serialize)]
pub struct Description {
    pub suite: String,
    pub n_classes: usize,
    pub n_train: usize,
    pub n_val: usize,
    pub n_test: usize,
    pub load: LoadReport,
    /// (bucket, classes with that many train examples, ... val, ... test).
    pub histogram: Vec<(String, usize, usize, usize)>,
    /// Per class: name, train, val, test counts; sorted by train count, largest first.
    pub classes: Vec<(String, usize, usize, usize)>,
    /// Per tier scheme: its name and (tier name, classes, train documents) per tier.
    pub tiers: Vec<(String, Vec<TierCount>)>,
}

/// (tier name, classes, train documents).
pub type TierCount = (String, usize, usize);

/// The seed's val-count buckets (week 4 figure): 1, 2, 3-4, 5-10, 11-50, >50; plus 0.
const BUCKETS: &[(&str, usize, usize)] = &[
    ("0", 0, 0),
    ("1", 1, 1),
    ("2", 2, 2),
    ("3-4", 3, 4),
    ("5-10", 5, 10),
    ("11-50", 11, 50),
    (">50", 51, usize::MAX),
];

pub fn describe(suite: &Suite, d: &Dataset, load: &LoadReport) -> crate::Result<Description> {
    let count = |rows: &[crate::data::Example]| {
        let mut c = vec![0usize; d.labels.len()];
        rows.iter().for_each(|e| c[e.label] += 1);
        c
    };
    let (tr, va, te) = (count(&d.train), count(&d.val), count(&d.test));
    let in_bucket = |c: &[usize], lo: usize, hi: usize| c.iter().filter(|&&n| n >= lo && n <= hi).count();
    let histogram = BUCKETS
        .iter()
        .map(|&(name, lo, hi)| {
            (
                name.to_string(),
                in_bucket(&tr, lo, hi),
                in_bucket(&va, lo, hi),
                in_bucket(&te, lo, hi),
            )
        })
        .collect();
    let mut classes: Vec<(String, usize, usize, usize)> = d
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), tr[i], va[i], te[i]))
        .collect();
    classes.sort_by_key(|c| std::cmp::Reverse(c.1));
    let train_labels: Vec<usize> = d.train.iter().map(|e| e.label).collect();
    let first_seen = tiers::first_seen_order(&train_labels, d.labels.len())?;
    let mut tier_rows = Vec::new();
    for &scheme in &suite.evaluation.tiers {
        let assignment = tiers::assign(&tr, &first_seen, scheme)?;
        let rows = tiers::tier_names(scheme)
            .iter()
            .map(|&n| {
                let members: Vec<usize> = (0..tr.len()).filter(|&c| assignment[c] == n).collect();
                (
                    n.as_str().to_string(),
                    members.len(),
                    members.iter().map(|&c| tr[c]).sum(),
                )
            })
            .collect();
        tier_rows.push((format!("{scheme:?}").to_lowercase(), rows));
    }
    let tiers = tier_rows;
    Ok(Description {
        suite: suite.name.clone(),
        n_classes: d.labels.len(),
        n_train: d.train.len(),
        n_val: d.val.len(),
        n_test: d.test.len(),
        load: load.clone(),
        histogram,
        classes,
        tiers,
    })
}

pub fn render(d: &Description) -> String {
    let mut s = String::new();
    let l = &d.load.labels;
    let _ = writeln!(
        s,
        "suite {}: {} rows read; {} raw labels -> {} after merge ({} rows relabelled) -> {} classes",
        d.suite, d.load.rows_read, l.raw_classes, l.merged_classes, l.rows_merged, d.n_classes
    );
    if l.rows_not_in_list > 0 {
        let _ = writeln!(
            s,
            "  dropped {} rows whose label is not in the label list",
            l.rows_not_in_list
        );
    }
    if !l.classes_below_min_count.is_empty() {
        let _ = writeln!(
            s,
            "  dropped {} classes ({} rows) below the minimum count",
            l.classes_below_min_count.len(),
            l.rows_below_min_count
        );
    }
    let _ = writeln!(s, "split: train {} / val {} / test {}\n", d.n_train, d.n_val, d.n_test);
    let _ = writeln!(s, "classes with n examples   train    val   test");
    for (b, tr, va, te) in &d.histogram {
        let _ = writeln!(s, "  n = {b:<6}            {tr:>6} {va:>6} {te:>6}");
    }
    let _ = writeln!(s);
    for (scheme, rows) in &d.tiers {
        let parts: Vec<String> = rows
            .iter()
            .map(|(n, c, docs)| format!("{n} {c} classes / {docs} train docs"))
            .collect();
        let _ = writeln!(s, "tiers ({scheme}): {}", parts.join("; "));
    }
    let _ = writeln!(s, "\n{:>6} {:>5} {:>5}  class (by train count)", "train", "val", "test");
    for (name, tr, va, te) in &d.classes {
        let _ = writeln!(s, "{tr:>6} {va:>5} {te:>5}  {}", label_cell(name));
    }
    s
}

/// A label as it appears in a one-line-per-class table: as is, unless it holds a line break or
/// another control character (a quoted CSV field can), which would split its row; then quoted
/// and escaped. A label that itself starts with a quote is quoted too, so the two cannot be
/// confused.
fn label_cell(label: &str) -> Cow<'_, str> {
    if label.chars().any(char::is_control) || label.starts_with('"') {
        Cow::Owned(format!("{label:?}"))
    } else {
        Cow::Borrowed(label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_containing_a_newline_keeps_describes_table_intact() {
        let classes = ["plain", "two\nlines", "tab\there", "\"quoted\""];
        let d = Description {
            suite: "s".into(),
            n_classes: classes.len(),
            n_train: 4,
            n_val: 0,
            n_test: 0,
            load: LoadReport::default(),
            histogram: Vec::new(),
            classes: classes.iter().map(|c| (c.to_string(), 1, 0, 0)).collect(),
            tiers: Vec::new(),
        };
        let out = render(&d);
        let table: Vec<&str> = out
            .lines()
            .skip_while(|l| !l.contains("class (by train count)"))
            .skip(1)
            .collect();
        assert_eq!(
            table,
            [
                "     1     0     0  plain",
                "     1     0     0  \"two\\nlines\"",
                "     1     0     0  \"tab\\there\"",
                "     1     0     0  \"\\\"quoted\\\"\"",
            ],
            "{out}"
        );
    }
}
