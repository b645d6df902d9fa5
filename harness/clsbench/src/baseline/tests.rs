//! The baseline against scikit-learn's numbers on real CFPB data
//! (`fixtures/reference/baseline_reference.json`, made by `make_baseline_reference.py`).

use super::*;
use crate::classifier::TextClassifier;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

#[derive(Deserialize)]
struct Reference {
    issues_mini: DatasetReference,
    products: DatasetReference,
}

#[derive(Deserialize)]
struct DatasetReference {
    classes: Vec<String>,
    n_train: usize,
    /// scikit-learn as is (ties at the max_features cut broken by numpy's unstable sort).
    sklearn: FitReference,
    /// Ties broken alphabetically, as clsbench does: the same vocabulary as ours.
    stable: FitReference,
}

#[derive(Deserialize)]
struct FitReference {
    n_features: usize,
    vocab_sha256: String,
    n_iter: usize,
    objective: f64,
    fit_seconds: f64,
    splits: HashMap<String, SplitScores>,
    #[serde(default)]
    documents: Vec<DocumentReference>,
    #[serde(default)]
    feature_names_at: HashMap<String, String>,
    #[serde(default)]
    idf_at: HashMap<String, f64>,
}

#[derive(Deserialize)]
struct SplitScores {
    n: usize,
    accuracy: f64,
    macro_f1: f64,
}

#[derive(Deserialize)]
struct DocumentReference {
    split: String,
    index: usize,
    top_features: Vec<TermValue>,
    proba: Vec<f64>,
}

#[derive(Deserialize)]
struct TermValue {
    term: String,
    value: f64,
}

fn reference() -> Reference {
    let path = repo_path("fixtures/reference/baseline_reference.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Reads named columns of a CSV file (RFC 4180: quoted fields, embedded newlines).
fn read_columns(path: &Path, columns: &[&str]) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = reader.headers().unwrap().clone();
    let index: Vec<usize> = columns
        .iter()
        .map(|c| {
            headers
                .iter()
                .position(|h| h == *c)
                .unwrap_or_else(|| panic!("{}: no column {c}", path.display()))
        })
        .collect();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            index.iter().map(|&i| r[i].to_string()).collect()
        })
        .collect()
}

struct Split {
    texts: Vec<String>,
    labels: Vec<usize>,
}

impl Split {
    fn texts(&self) -> Vec<&str> {
        self.texts.iter().map(String::as_str).collect()
    }
}

/// The Issue mini set after the seed's merge map and the >= 5 examples filter, split by
/// the committed split file. Returns the class names (sorted) and train/val/test.
fn issues_mini() -> (Vec<String>, HashMap<String, Split>) {
    let rows = read_columns(
        &repo_path("fixtures/cfpb-issues-mini/complaints.csv"),
        &["complaint_id", "issue", "narrative"],
    );
    let merge: HashMap<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(repo_path("fixtures/seed/label_merge_mapping.json")).unwrap())
            .unwrap();
    let merged = |raw: &str| match merge.get(raw) {
        Some(serde_json::Value::String(to)) if !raw.starts_with('_') => to.clone(),
        _ => raw.to_string(),
    };
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        *counts.entry(merged(&r[1])).or_default() += 1;
    }
    let classes: Vec<String> = counts
        .iter()
        .filter(|(_, &n)| n >= 5)
        .map(|(c, _)| c.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let split_of: HashMap<String, String> = read_columns(
        &repo_path("fixtures/reference/issues_mini_split.csv"),
        &["complaint_id", "split"],
    )
    .into_iter()
    .map(|r| (r[0].clone(), r[1].clone()))
    .collect();
    let mut splits: HashMap<String, Split> = HashMap::new();
    for r in &rows {
        let Ok(class) = classes.binary_search(&merged(&r[1])) else {
            continue;
        };
        let split = &split_of[&r[0]];
        let s = splits.entry(split.clone()).or_insert(Split {
            texts: vec![],
            labels: vec![],
        });
        s.texts.push(r[2].clone());
        s.labels.push(class);
    }
    (classes, splits)
}

fn products() -> (Vec<String>, HashMap<String, Split>) {
    let dir = repo_path("../shared/data/cfpb-products");
    let read = |name: &str| read_columns(&dir.join(name), &["Consumer complaint narrative", "Product"]);
    let (train, test) = (read("train.csv"), read("test.csv"));
    let classes: Vec<String> = train
        .iter()
        .map(|r| r[1].clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let to_split = |rows: Vec<Vec<String>>| Split {
        labels: rows.iter().map(|r| classes.binary_search(&r[1]).unwrap()).collect(),
        texts: rows.into_iter().map(|mut r| r.swap_remove(0)).collect(),
    };
    let splits = HashMap::from([
        ("train".to_string(), to_split(train)),
        ("test".to_string(), to_split(test)),
    ]);
    (classes, splits)
}

fn accuracy(truth: &[usize], predicted: &[usize]) -> f64 {
    truth.iter().zip(predicted).filter(|(a, b)| a == b).count() as f64 / truth.len() as f64
}

/// scikit-learn's `f1_score(average="macro", zero_division=0)` without `labels=`: the mean
/// over the classes present in the truth or the predictions.
fn macro_f1(truth: &[usize], predicted: &[usize]) -> f64 {
    let classes: BTreeSet<usize> = truth.iter().chain(predicted).copied().collect();
    let f1 = |c: usize| {
        let tp = truth.iter().zip(predicted).filter(|&(&t, &p)| t == c && p == c).count() as f64;
        let n_true = truth.iter().filter(|&&t| t == c).count() as f64;
        let n_pred = predicted.iter().filter(|&&p| p == c).count() as f64;
        if n_true + n_pred == 0.0 {
            0.0
        } else {
            2.0 * tp / (n_true + n_pred)
        }
    };
    classes.iter().map(|&c| f1(c)).sum::<f64>() / classes.len() as f64
}

fn vocab_sha256(terms: &[String]) -> String {
    hex::encode(Sha256::digest(terms.join("\n").as_bytes()))
}

/// Fits the seed's baseline and checks it against the reference; returns a summary line.
fn check_against_scikit_learn(
    name: &str,
    classes: &[String],
    splits: &HashMap<String, Split>,
    reference: &DatasetReference,
) -> String {
    assert_eq!(classes, &reference.classes[..], "{name}: class list");
    let train = &splits["train"];
    assert_eq!(train.labels.len(), reference.n_train, "{name}: training rows");
    let (model, report) = TfidfLogReg::fit(
        &train.texts(),
        &train.labels,
        classes.len(),
        &TfidfLogregSpec::default(),
    )
    .unwrap();
    let stable = &reference.stable;

    // Features: the same vocabulary as scikit-learn with ties broken alphabetically.
    let vectorizer = model.vectorizer();
    assert_eq!(report.n_features, stable.n_features, "{name}: n_features");
    assert_eq!(report.n_features, reference.sklearn.n_features, "{name}: n_features");
    assert_eq!(
        vocab_sha256(vectorizer.terms()),
        stable.vocab_sha256,
        "{name}: vocabulary"
    );
    for (at, term) in &stable.feature_names_at {
        let at: usize = at.parse().unwrap();
        assert_eq!(&vectorizer.terms()[at], term, "{name}: feature {at}");
        let idf = stable.idf_at[&at.to_string()];
        assert!(
            (vectorizer.idf()[at] - idf).abs() < 1e-12,
            "{name}: idf[{at}] {} vs {idf}",
            vectorizer.idf()[at]
        );
    }
    for doc in &stable.documents {
        let text = splits[&doc.split].texts[doc.index].as_str();
        let x = vectorizer.transform(&[text]);
        let (cols, vals) = x.row(0);
        for want in &doc.top_features {
            let column = vectorizer.terms().iter().position(|t| t == &want.term).unwrap();
            let got = cols.iter().position(|&c| c as usize == column).map_or(0.0, |k| vals[k]);
            assert!(
                (got - want.value).abs() < 1e-9,
                "{name}: {}[{}] tf-idf of {:?}: {got} vs {}",
                doc.split,
                doc.index,
                want.term,
                want.value
            );
        }
    }

    // The optimum: the same L-BFGS rules as SciPy's from the same start, so the same
    // path up to rounding: observed probability gaps are 1e-12 (issues) and 3e-9 (products).
    assert!(report.optimization.converged, "{name}: {report:?}");
    assert!(report.optimization.max_abs_gradient <= 1e-4);
    assert!(
        report.optimization.iterations.abs_diff(stable.n_iter) <= 2,
        "{name}: {} iterations, scikit-learn {}",
        report.optimization.iterations,
        stable.n_iter
    );
    let loss_gap = (report.optimization.final_loss - stable.objective).abs();
    assert!(
        loss_gap < 1e-8,
        "{name}: objective {} vs scikit-learn {}",
        report.optimization.final_loss,
        stable.objective
    );
    let mut max_proba_gap: f64 = 0.0;
    for doc in &stable.documents {
        let proba = model
            .predict_proba_f64(&[splits[&doc.split].texts[doc.index].as_str()])
            .unwrap();
        for (a, b) in proba[0].iter().zip(&doc.proba) {
            max_proba_gap = max_proba_gap.max((a - b).abs());
        }
    }
    assert!(
        max_proba_gap < 1e-6,
        "{name}: probabilities differ from scikit-learn's by up to {max_proba_gap}"
    );

    // Scores within one point of scikit-learn's, as is and with the stable vocabulary.
    let mut line = format!(
        "{name}: n_features {} iterations {} (sklearn {}) evaluations {} loss {:.10} (sklearn {:.10}) fit {:.1}s incl. vectorising {:.1}s (sklearn {:.1}s) max proba gap {max_proba_gap:.2e}",
        report.n_features, report.optimization.iterations, stable.n_iter, report.optimization.evaluations, report.optimization.final_loss, stable.objective,
        report.fit_seconds, report.vectorize_seconds, reference.sklearn.fit_seconds
    );
    for (split, want) in &reference.sklearn.splits {
        let data = &splits[split];
        assert_eq!(data.labels.len(), want.n, "{name}: {split} rows");
        let predicted: Vec<usize> = model
            .predict(&data.texts())
            .unwrap()
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        let (acc, f1) = (accuracy(&data.labels, &predicted), macro_f1(&data.labels, &predicted));
        let want_stable = &stable.splits[split];
        for (what, ours, theirs) in [
            ("accuracy", acc, want.accuracy),
            ("macro F1", f1, want.macro_f1),
            ("accuracy (stable vocabulary)", acc, want_stable.accuracy),
            ("macro F1 (stable vocabulary)", f1, want_stable.macro_f1),
        ] {
            assert!(
                (ours - theirs).abs() <= 0.01,
                "{name} {split} {what}: ours {ours:.4}, scikit-learn {theirs:.4}"
            );
        }
        line += &format!(
            "\n  {split}: accuracy {acc:.4} (sklearn {:.4}, stable {:.4}) macro F1 {f1:.4} (sklearn {:.4}, stable {:.4})",
            want.accuracy, want_stable.accuracy, want.macro_f1, want_stable.macro_f1
        );
    }
    line
}

#[test]
fn issues_mini_matches_scikit_learn() {
    let (classes, splits) = issues_mini();
    let line = check_against_scikit_learn("issues-mini", &classes, &splits, &reference().issues_mini);
    eprintln!("{line}");
}

// 10,000 training documents: ~1 minute in the dev profile, a few seconds in release; and
// it reads the shared data directory, which a fresh clone lacks. Run with
// `cargo test --release -p clsbench --lib baseline:: -- --ignored`.
#[test]
#[ignore]
fn products_matches_scikit_learn() {
    let (classes, splits) = products();
    let line = check_against_scikit_learn("products", &classes, &splits, &reference().products);
    eprintln!("{line}");
}

#[test]
fn classes_absent_from_training_get_zero_probability() {
    let texts = [
        "late fee on card",
        "card interest",
        "debt collector calls",
        "collector debt",
        "mortgage escrow",
        "escrow payment",
    ];
    let labels = [0, 0, 3, 3, 1, 1];
    let (model, report) = TfidfLogReg::fit(&texts, &labels, 5, &TfidfLogregSpec::default()).unwrap();
    assert!(report.optimization.converged);
    assert_eq!(model.n_classes(), 5);
    assert_eq!(model.model().fitted_classes(), &[0, 1, 3]);
    let proba = model
        .predict_proba(&["collector calls about debt", "nothing known"])
        .unwrap();
    for row in &proba {
        assert_eq!(row.len(), 5);
        assert_eq!((row[2], row[4]), (0.0, 0.0));
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
    assert_eq!(model.predict(&["collector calls about debt"]).unwrap()[0].0, 3);
}

// Feasibility at the seed's size (57,846 training texts, 113 classes), whose data is not
// reachable here: real CFPB narratives (products + issues sets) cycled to that many rows,
// with 113 synthetic classes, 30 L-BFGS iterations. Prints the cost per iteration.
// `cargo test --release -p clsbench --lib baseline::tests::seed_scale -- --ignored --nocapture`
#[test]
#[ignore]
fn seed_scale_cost_per_iteration() {
    let (_, products) = products();
    let (_, issues) = issues_mini();
    let pool: Vec<(&str, usize)> = ["train", "test"]
        .iter()
        .flat_map(|s| products[*s].texts.iter().zip(&products[*s].labels))
        .chain(
            ["train", "val", "test"]
                .iter()
                .flat_map(|s| issues[*s].texts.iter().zip(&issues[*s].labels)),
        )
        .map(|(t, &l)| (t.as_str(), l))
        .collect();
    let rows: Vec<(&str, usize)> = (0..57_846).map(|i| pool[i % pool.len()]).collect();
    let texts: Vec<&str> = rows.iter().map(|r| r.0).collect();
    // A learnable label: the source class spread over 113 ids by text length.
    let labels: Vec<usize> = rows.iter().map(|&(t, l)| (l * 13 + t.len() % 13) % 113).collect();
    let spec = TfidfLogregSpec {
        max_iter: 30,
        ..TfidfLogregSpec::default()
    };
    let (_, report) = TfidfLogReg::fit(&texts, &labels, 113, &spec).unwrap();
    let per_iteration = (report.fit_seconds - report.vectorize_seconds) / report.optimization.iterations as f64;
    eprintln!(
        "seed scale: {report:?}\n  {per_iteration:.2} s per iteration, vectorising {:.1} s",
        report.vectorize_seconds
    );
}
