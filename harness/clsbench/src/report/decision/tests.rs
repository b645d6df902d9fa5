use super::*;
use crate::report::testkit::{self, model, pred_with_errors};
use crate::suite::Suite;
use std::path::Path;

const SUITE: &str = r#"
name = "t"
seed = 1
[dataset]
source = "csv"
path = "data.csv"
text_column = "text"
label_column = "label"
[split]
method = "stratified"
train = 0.7
val = 0.1
test = 0.2
[perf]
batch_sizes = [1, 32]
[[models]]
id = "tfidf"
kind = "tfidf-logreg"
"#;

fn parse(decision: &str) -> crate::error::Result<Suite> {
    Suite::parse(&format!("{SUITE}\n{decision}"), Path::new("suite.toml"))
}

fn parse_err(decision: &str) -> String {
    let e = parse(decision).unwrap_err();
    assert_eq!(e.exit_code(), crate::error::exit::BAD_INPUT, "{e}");
    e.to_string()
}

#[test]
fn the_seeds_envelope_parses_into_its_constraints() {
    let s = parse(
        r#"
[[decision]]
name = "week-5 envelope"
max_ms_per_doc_at_batch = { batch = 32, ms = 10 }
min_macro_f1 = 0.20
max_ece_after_scaling = 0.05
max_usd_per_million_docs = 2.5
"#,
    )
    .unwrap();
    let d = &s.decision[0];
    assert_eq!(
        d.ece_convention,
        BinConvention::UpperClosed,
        "the week-5 envelope's bins"
    );
    let fields: Vec<String> = d.constraints().iter().map(Constraint::field).collect();
    assert_eq!(
        fields,
        [
            "min_macro_f1",
            "max_ece_after_scaling",
            "max_ms_per_doc_at_batch",
            "max_usd_per_million_docs"
        ]
    );
    assert_eq!(d.constraints()[2].batch, Some(32));
    assert_eq!(d.constraints()[2].bound, 10.0);
}

#[test]
fn an_unknown_constraint_or_metric_is_refused_naming_the_field_and_line() {
    let err = parse_err("[[decision]]\nname = \"e\"\nmin_macro_f2 = 0.2\n");
    assert!(
        err.contains("min_macro_f2") && err.contains("suite.toml") && err.contains("line"),
        "{err}"
    );
    assert!(
        err.contains("min_macro_f1"),
        "the error lists the known constraints: {err}"
    );
    let err = parse_err("[[decision]]\nname = \"e\"\nmax_ms_per_doc_at_batch = { batch = 32, seconds = 1 }\n");
    assert!(err.contains("seconds"), "{err}");
    let err = parse_err("[[decision]]\nname = \"e\"\nece_convention = \"quantile\"\nmax_ece = 0.1\n");
    assert!(err.contains("quantile"), "{err}");
}

#[test]
fn constraints_that_cannot_be_measured_are_refused_up_front() {
    let err = parse_err("[[decision]]\nname = \"e\"\nmax_ms_per_doc_at_batch = { batch = 64, ms = 10 }\n");
    assert!(
        err.contains("max_ms_per_doc_at_batch") && err.contains("batch 64") && err.contains("[1, 32]"),
        "{err}"
    );
    let err = parse_err("[[decision]]\nname = \"e\"\n");
    assert!(err.contains("no constraint"), "{err}");
    let err = parse_err("[[decision]]\nname = \"e\"\nmin_macro_f1 = 20\n");
    assert!(err.contains("min_macro_f1") && err.contains("[0, 1]"), "{err}");
    let err = parse_err("[[decision]]\nname = \"e\"\nmax_p50_ms = -1\n");
    assert!(err.contains("max_p50_ms"), "{err}");
    let err = parse_err("[[decision]]\nname = \"e\"\nsplit = \"train\"\nmax_ece = 0.1\n");
    assert!(err.contains("field `split`"), "{err}");
    let err = parse_err("[[decision]]\nname = \"e\"\nmin_accuracy = 0.5\n[[decision]]\nname = \"e\"\nmax_ece = 0.1\n");
    assert!(err.contains("two decisions"), "{err}");
    let no_timing = format!(
        "{}\n[[decision]]\nname = \"e\"\nmax_p95_ms = 5\n",
        SUITE.replace("[perf]", "[perf]\nenabled = false")
    );
    let err = Suite::parse(&no_timing, Path::new("suite.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_p95_ms") && err.contains("enabled"), "{err}");
}

const K: usize = 5;
const N: usize = 400;

/// Three rows: a good slow model, a weak fast one and a quantised variant of the first.
fn results() -> crate::report::results::Results {
    let gold = testkit::gold(N, K);
    let mut good = model("big", pred_with_errors(&gold, K, 3, 0));
    good.perf = Some(testkit::perf(12.0, Some(4.0), 30.0));
    let mut weak = model("small", pred_with_errors(&gold, K, 2, 0));
    weak.perf = Some(testkit::perf(0.5, Some(0.1), 1.0));
    let mut variant = model("big@q8_0", pred_with_errors(&gold, K, 3, 1));
    variant.perf = Some(testkit::perf(6.0, Some(2.0), 15.0));
    let r = testkit::results("s", "cpu-x-2c", K, testkit::ids(N), gold, vec![good, weak, variant]);
    assert!(
        r.models[0].perf.as_ref().is_some(),
        "the perf JSON has the current shape"
    );
    r
}

fn decision(toml_fields: &str) -> DecisionSpec {
    let s = parse(&format!("[[decision]]\nname = \"envelope\"\n{toml_fields}")).unwrap();
    s.decision[0].clone()
}

#[test]
fn every_row_including_variants_is_judged_with_its_measured_values() {
    let r = results();
    let d = decision(
        "min_accuracy = 0.6\nmax_ms_per_doc_at_batch = { batch = 32, ms = 10 }\nmax_usd_per_million_docs = 3\n",
    );
    let rep = judge(&d, "val", r.split("val"), &r.models);
    let rows: Vec<(&str, Verdict)> = rep.rows.iter().map(|r| (r.model.as_str(), r.verdict)).collect();
    // big: accuracy 2/3 passes, 12 ms fails; small: accuracy 1/2 fails; the variant passes all.
    assert_eq!(
        rows,
        [
            ("big", Verdict::Fail),
            ("small", Verdict::Fail),
            ("big@q8_0", Verdict::Pass)
        ]
    );
    let split = r.split("val").unwrap();
    let big = &rep.rows[0];
    assert_eq!(big.checks[0].measured, Some(split.models[0].metrics.accuracy));
    let boot = &split.bootstrap.as_ref().unwrap().models[0].accuracy.percentile;
    assert_eq!(big.checks[0].ci, Some(*boot), "the bootstrap's own interval");
    assert_eq!(big.checks[1].measured, Some(12.0));
    assert_eq!(big.checks[1].verdict, Verdict::Fail);
    assert_eq!(big.checks[1].ci, None, "latency has no interval");
    assert_eq!(big.checks[2].measured, Some(4.0));
    assert_eq!(rep.passing, ["big@q8_0"]);
    let cheapest = rep.cheapest.as_ref().unwrap();
    assert_eq!(
        (cheapest.model.as_str(), cheapest.by.as_str(), cheapest.value),
        ("big@q8_0", "usd_per_million_docs", 2.0)
    );
}

#[test]
fn the_cheapest_of_several_passing_rows_wins_and_missing_values_are_unknown() {
    let mut r = results();
    let d = decision("min_accuracy = 0.4\nmax_p50_ms = 50\n");
    let rep = judge(&d, "val", r.split("val"), &r.models);
    assert_eq!(rep.passing, ["big", "small", "big@q8_0"]);
    assert_eq!(rep.cheapest.as_ref().unwrap().model, "small");
    // Not timed: unknown, never a pass; unpriced rows are ranked by device-hours instead.
    r.models[1].perf = None;
    r.models[0].perf = Some(testkit::perf(12.0, None, 30.0));
    let rep = judge(&d, "val", r.split("val"), &r.models);
    assert_eq!(rep.rows[1].verdict, Verdict::Unknown);
    assert!(rep.rows[1].checks[1].note.as_deref().unwrap().contains("not timed"));
    let cheapest = rep.cheapest.as_ref().unwrap();
    assert_eq!(
        (cheapest.model.as_str(), cheapest.by.as_str()),
        ("big@q8_0", "hours_per_million_docs")
    );
    // Calibration constraints without probabilities are unknown, with the reason.
    let d = decision("max_ece_after_scaling = 0.05\n");
    let rep = judge(&d, "val", r.split("val"), &r.models);
    assert!(rep.rows.iter().all(|r| r.verdict == Verdict::Unknown));
    assert!(rep.cheapest.is_none() && rep.note.as_deref().unwrap().contains("no row passes"));
}

#[test]
fn calibration_constraints_read_the_convention_asked_for() {
    let mut r = results();
    let split = r.splits[0].clone();
    let scores: Vec<Option<crate::calibration_run::SplitScores>> = split
        .models
        .iter()
        .map(|m| {
            // A confident model: 0.9 on its prediction.
            let k = K;
            let values: Vec<f64> = m
                .pred
                .iter()
                .flat_map(|&p| {
                    (0..k).map(move |c| {
                        if c == p {
                            0.9f64.ln()
                        } else {
                            (0.1 / (k - 1) as f64).ln()
                        }
                    })
                })
                .collect();
            Some(crate::calibration_run::SplitScores::LogProbs {
                log_probs: clsbench_stats::calibration::LogProbs::new(k, values).unwrap(),
                gold: split.gold.clone(),
                pred: m.pred.clone(),
            })
        })
        .collect();
    let cfg = clsbench_stats::bootstrap::BootstrapConfig {
        resamples: 50,
        ..Default::default()
    };
    crate::calibration_run::attach(&mut r.splits[0], &scores, &cfg, 1041).unwrap();
    for convention in ["digitize", "upper-closed"] {
        let d = decision(&format!(
            "ece_convention = \"{convention}\"\nmax_ece = 0.3\nmax_ece_after_scaling = 0.3\n"
        ));
        let rep = judge(&d, "val", r.split("val"), &r.models);
        let cal = r.splits[0].models[0].calibration.as_ref().unwrap();
        let conv = d.ece_convention;
        let check = &rep.rows[0].checks;
        assert_eq!(check[0].measured, Some(cal.full.binned(conv).ece));
        assert_eq!(check[0].ci, cal.full.binned(conv).ece_ci.as_ref().map(|e| e.percentile));
        let after = cal.temperature.as_ref().unwrap().after.binned(conv);
        assert_eq!(check[1].measured, Some(after.ece));
        // big is right 2/3 of the time at confidence 0.9: ECE 0.233 passes 0.3.
        assert!((check[0].measured.unwrap() - (0.9 - 2.0 / 3.0)).abs() < 0.01);
        assert_eq!(check[0].verdict, Verdict::Pass);
    }
}

#[test]
fn decisions_render_with_verdicts_values_and_the_cheapest() {
    let mut r = results();
    let d = decision("min_accuracy = 0.6\nmax_ms_per_doc_at_batch = { batch = 32, ms = 10 }\n");
    r.decisions = judge_all(std::slice::from_ref(&d), SplitName::Val, &r.splits, &r.models);
    let s = crate::report::summary::render(&r);
    assert!(s.contains("## Decision: envelope (val split)"), "{s}");
    let section = &s[s.find("## Decision").unwrap()..];
    let big = section.lines().find(|l| l.starts_with("| big | ")).unwrap();
    assert!(
        big.contains("| FAIL |")
            && big.contains("| FAIL 12.00 |")
            && big.contains(&format!("pass {:.4} [", r.splits[0].models[0].metrics.accuracy)),
        "{big}"
    );
    assert!(s.contains("Cheapest passing: **big@q8_0**"), "{s}");
    // Old results without decisions still read.
    let mut json = serde_json::to_value(&r).unwrap();
    json.as_object_mut().unwrap().remove("decisions");
    let old: crate::report::results::Results = serde_json::from_value(json).unwrap();
    assert!(old.decisions.is_empty());
}

#[test]
fn shipped_suites_carry_their_envelopes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites");
    let load = |name: &str| {
        let path = root.join(name);
        Suite::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap()
    };
    // The seed's week 5 (protocol.md sections 8-10): 10 ms/example at batch 32, macro F1 >= 0.20,
    // ECE <= 0.05 after temperature scaling with (lo, hi] bins.
    let seed = load("cfpb113.toml");
    let d = &seed.decision[0];
    assert_eq!(
        d.max_ms_per_doc_at_batch,
        Some(spec::LatencyAtBatch { batch: 32, ms: 10.0 })
    );
    assert_eq!((d.min_macro_f1, d.max_ece_after_scaling), (Some(0.20), Some(0.05)));
    assert_eq!(d.ece_convention, BinConvention::UpperClosed);
    for cpu in ["default.toml", "cfpb-issues-mini.toml"] {
        let s = load(cpu);
        assert_eq!(s.decision.len(), 1, "{cpu}");
        let c = s.decision[0].constraints();
        assert!(
            c.iter()
                .any(|c| c.metric == Metric::MsPerDocAtBatch && c.batch == Some(32)),
            "{cpu}"
        );
        assert!(c.iter().any(|c| c.metric == Metric::EceAfterScaling), "{cpu}");
    }
}
