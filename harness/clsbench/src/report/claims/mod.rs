//! `clsbench verify`: check published claims against a run, each with our number, its CI and
//! a verdict (reproduced, contradicted, inconclusive, not-run, hardware-differs).
//!
//! `file` reads the claims TOML, `measure` finds our number in the results, `verdict` holds
//! the rules (pure functions), `render` writes `verdicts.md` and `verdicts.json`.

pub mod file;
pub mod measure;
pub mod render;
pub mod verdict;

pub use file::{Claim, ClaimsFile, Combine, Metric, Op, Tolerance};
pub use measure::CiKind;
pub use verdict::{Interval, Verdict};

use crate::error::{Error, Result};
use crate::report::results::Results;
use measure::Measurement;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// One claim's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimVerdict {
    pub id: String,
    pub statement: String,
    /// What was compared, e.g. `macro_f1(qwen − modernbert)`.
    pub quantity: String,
    pub split: String,
    pub compare: Op,
    pub claimed: f64,
    pub tolerance: Option<Tolerance>,
    pub ours: Option<f64>,
    pub ci: Option<Interval>,
    pub ci_kind: CiKind,
    /// Each model's own value behind `ours`.
    pub per_model: BTreeMap<String, f64>,
    pub verdict: Verdict,
    pub reason: String,
    pub source: String,
    pub hardware: String,
    pub hardware_slug: Option<String>,
    /// Line of the claim in the claims file.
    pub line: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub claims_file: String,
    pub claims_sha256: String,
    pub title: String,
    pub suite: String,
    pub results_file: String,
    pub run_id: String,
    pub git_rev: String,
    pub hardware_slug: String,
    pub confidence: f64,
    pub counts: BTreeMap<Verdict, usize>,
    pub verdicts: Vec<ClaimVerdict>,
}

impl VerifyReport {
    pub fn count(&self, v: Verdict) -> usize {
        self.counts.get(&v).copied().unwrap_or(0)
    }
}

/// Verify every claim of `claims` against `results` (read from `results_file`).
pub fn verify(claims: &ClaimsFile, results: &Results, results_file: &Path) -> Result<VerifyReport> {
    let names = claims.suite_names();
    if !names.contains(&results.suite.name.as_str()) {
        return Err(Error::bad_input(format!(
            "{}: the claims are about suite {}, but {} is a run of suite {:?}: model ids and data would not match; \
             verify a run of {}",
            claims.path.display(),
            names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(" or "),
            results_file.display(),
            results.suite.name,
            names.join(" or ")
        )));
    }
    let primary = results.evaluation.primary_split.as_str();
    let verdicts: Vec<ClaimVerdict> = claims.claims.iter().map(|c| verify_one(c, results, primary)).collect();
    let mut counts = BTreeMap::new();
    for v in &verdicts {
        *counts.entry(v.verdict).or_insert(0) += 1;
    }
    Ok(VerifyReport {
        claims_file: claims.path.display().to_string(),
        claims_sha256: crate::fsutil::sha256_file(&claims.path)?,
        title: claims.title.clone(),
        suite: results.suite.name.clone(),
        results_file: results_file.display().to_string(),
        run_id: results.run_id.clone(),
        git_rev: results.git_rev.clone(),
        hardware_slug: results.hardware.slug.clone(),
        confidence: results.evaluation.confidence,
        counts,
        verdicts,
    })
}

fn verify_one(claim: &Claim, results: &Results, primary_split: &str) -> ClaimVerdict {
    let split = claim.split.clone().unwrap_or_else(|| primary_split.to_string());
    let mut out = ClaimVerdict {
        id: claim.id.clone(),
        statement: claim.statement.clone(),
        quantity: claim.quantity(),
        split: split.clone(),
        compare: claim.compare,
        claimed: claim.value,
        tolerance: claim.tolerance,
        ours: None,
        ci: None,
        ci_kind: CiKind::None,
        per_model: BTreeMap::new(),
        verdict: Verdict::Inconclusive,
        reason: String::new(),
        source: claim.source.clone(),
        hardware: claim.hardware.clone(),
        hardware_slug: claim.hardware_slug.clone(),
        line: claim.line,
    };
    match measure::measure(claim, results, &split) {
        Measurement::Unavailable { verdict, reason } => {
            out.verdict = verdict;
            out.reason = reason;
        }
        Measurement::Measured {
            ours,
            ci_kind,
            per_model,
        } => {
            out.ours = Some(ours.point);
            out.ci = ours.ci;
            out.ci_kind = ci_kind;
            out.per_model = per_model.into_iter().collect();
            let run_slug = &results.hardware.slug;
            match &claim.hardware_slug {
                Some(theirs) if claim.metric.is_speed() && theirs != run_slug => {
                    out.verdict = Verdict::HardwareDiffers;
                    out.reason = format!(
                        "claimed on {theirs} ({}), this run is on {run_slug}: ours {} beside theirs {}, not judged",
                        if claim.hardware.is_empty() {
                            "hardware not described"
                        } else {
                            &claim.hardware
                        },
                        file::fmt_value(ours.point),
                        file::fmt_value(claim.value)
                    );
                }
                _ => {
                    let (verdict, reason) = verdict::judge(ours, claim.compare, claim.value, claim.tolerance);
                    let mde = results
                        .split(&split)
                        .and_then(|a| measure::accuracy_mde(claim, a).map(|m| (m, a.n)));
                    (out.verdict, out.reason) = match mde {
                        // A claimed gap below what this split can detect is not settled by a CI
                        // that merely contains it (a contradiction stays: it is evidence).
                        Some((mde, n))
                            if claim.compare == file::Op::Approx
                                && claim.value.abs() < mde
                                && verdict == Verdict::Reproduced =>
                        {
                            (
                                Verdict::Inconclusive,
                                format!(
                                    "the claimed gap {} is below this split's minimum detectable effect {} \
                                     ({n} documents, 80% power, α = 0.05): it cannot settle it ({reason})",
                                    file::fmt_value(claim.value.abs()),
                                    file::fmt_value(mde)
                                ),
                            )
                        }
                        Some((mde, n)) if verdict == Verdict::Inconclusive && ours.point.abs() < mde => (
                            verdict,
                            format!(
                                "{reason}; the observed gap {} is below this split's minimum detectable effect {} ({n} documents)",
                                file::fmt_value(ours.point.abs()),
                                file::fmt_value(mde)
                            ),
                        ),
                        _ => (verdict, reason),
                    };
                    if matches!(ci_kind, CiKind::SeedAware | CiKind::SeedAwareDifference) {
                        out.reason.push_str(" [seed-aware interval over training seeds]");
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testkit::{self, model, pred_with_errors};

    const K: usize = 6;
    const N: usize = 600;

    /// A run with a better "dec" and a worse "enc" model, and a claims file about it.
    fn setup(claims_body: &str) -> (Results, ClaimsFile, tempfile::TempDir) {
        let gold = testkit::gold(N, K);
        let mut dec = model("dec", pred_with_errors(&gold, K, 5, 0));
        // 40 ms per text, 100 docs/s; the seed's PEFT count for Qwen2.5-0.5B LoRA r16.
        dec.perf = Some(testkit::perf(10.0, None, 40.0));
        let lora = crate::train::TrainReport::for_tests(N, &[1.0], 2_263_936, 496_397_952);
        dec.train_report = Some(crate::report::results::TrainRecord::Transformer(Box::new(lora)));
        let mut enc = model("enc", pred_with_errors(&gold, K, 3, 1));
        // 2 ms per text, no throughput measured.
        let mut enc_perf = testkit::perf(1.0, None, 2.0);
        enc_perf.cost.docs_per_s = None;
        enc_perf.timing.as_mut().unwrap().batches.clear();
        enc.perf = Some(enc_perf);
        let results = testkit::results("s", "cpu-x-2c", K, testkit::ids(N), gold, vec![dec, enc]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claims.toml");
        let text = format!("suite = \"s.toml\"\n[defaults]\nhardware_slug = \"t4\"\n{claims_body}");
        std::fs::write(&path, &text).unwrap();
        let (title, _, claims) = file::parse(&text, &path).unwrap();
        let suites = vec![file::SuiteRef {
            name: "s".into(),
            path: "s.toml".into(),
        }];
        (
            results,
            ClaimsFile {
                path,
                title,
                suites,
                claims,
            },
            dir,
        )
    }

    /// Issue 13: with several training seeds a quality claim rests on the seed means and their
    /// seed-aware interval, and says so.
    #[test]
    fn several_seeds_verify_on_the_seed_aware_interval() {
        let body = [
            claim(
                "gap",
                "metric = \"accuracy\"\nmodels = [\"dec\", \"enc\"]\nof = \"difference\"\ncompare = \">\"\nvalue = 0",
            ),
            claim(
                "dec_acc",
                "metric = \"macro_f1\"\nmodel = \"dec\"\ncompare = \">=\"\nvalue = 0.1",
            ),
        ]
        .concat();
        let (mut results, claims, _dir) = setup(&body);
        let gold = testkit::gold(N, K);
        let runs = |every: usize, offsets: [usize; 3]| -> Vec<(u64, Vec<usize>)> {
            offsets
                .iter()
                .enumerate()
                .map(|(s, &o)| (42 + s as u64, pred_with_errors(&gold, K, every, o)))
                .collect()
        };
        let seeded = [
            crate::analysis::SeedRuns {
                model: "dec".into(),
                runs: runs(5, [0, 1, 2]),
            },
            crate::analysis::SeedRuns {
                model: "enc".into(),
                runs: runs(3, [1, 2, 0]),
            },
        ];
        let eval = crate::suite::EvaluationSpec {
            resamples: 200,
            ..Default::default()
        };
        results.splits[0].seeds = crate::analysis::seed_analysis_paired(&gold, &seeded, K, &eval, 49).unwrap();
        let seeds = results.splits[0].seeds.clone().unwrap();
        let report = verify(&claims, &results, Path::new("results.json")).unwrap();
        let get = |id: &str| report.verdicts.iter().find(|v| v.id == id).unwrap();
        let gap = get("gap");
        assert_eq!(gap.ci_kind, CiKind::SeedAwareDifference);
        let pair = &seeds.pairs[0];
        assert_eq!((pair.a.as_str(), pair.b.as_str()), ("dec", "enc"));
        // dec − enc is the negated enc − dec pair, interval mirrored.
        assert_eq!(gap.ours, Some(-pair.accuracy.delta.point));
        assert_eq!(gap.ci.unwrap().lower, -pair.accuracy.delta.percentile.upper);
        let mean = |m: usize| seeds.models[m].accuracy.iter().sum::<f64>() / 3.0;
        assert!((gap.ours.unwrap() - (mean(0) - mean(1))).abs() < 1e-12);
        assert_eq!(gap.verdict, Verdict::Reproduced, "{}", gap.reason);
        assert!(gap.reason.contains("seed-aware"), "{}", gap.reason);
        assert_eq!(get("dec_acc").ci_kind, CiKind::SeedAware);
        assert_eq!(get("dec_acc").ours, Some(seeds.models[0].macro_f1_mean.point));
        assert!(render::render(&report).contains("seeds"));
    }

    /// Issue 13: a claimed accuracy gap below the split's minimum detectable effect is
    /// inconclusive, though the CI contains it.
    #[test]
    fn a_claimed_gap_below_the_mde_is_inconclusive() {
        let gold = testkit::gold(N, K);
        // Equal accuracy, 40% of the documents discordant: MDE ~ 0.07 on 600 documents.
        let a = model("a", pred_with_errors(&gold, K, 5, 0));
        let b = model("b", pred_with_errors(&gold, K, 5, 1));
        let results = testkit::results("s", "cpu-x-2c", K, testkit::ids(N), gold, vec![a, b]);
        let mde = results.splits[0].mcnemar[0].mde.as_ref().unwrap().mde.unwrap();
        assert!(mde > 0.05, "{mde}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claims.toml");
        let text = format!(
            "suite = \"s.toml\"\n{}{}",
            claim("small", "metric = \"accuracy\"\nmodels = [\"a\", \"b\"]\nof = \"difference\"\ncompare = \"~=\"\nvalue = 0.004\ntolerance = 0.005"),
            claim("large", "metric = \"accuracy\"\nmodels = [\"a\", \"b\"]\nof = \"difference\"\ncompare = \"~=\"\nvalue = 0.1\ntolerance = 0.005"),
        );
        std::fs::write(&path, &text).unwrap();
        let (title, _, claims) = file::parse(&text, &path).unwrap();
        let file = ClaimsFile {
            path,
            title,
            suites: vec![file::SuiteRef {
                name: "s".into(),
                path: "s.toml".into(),
            }],
            claims,
        };
        let report = verify(&file, &results, Path::new("results.json")).unwrap();
        let small = &report.verdicts[0];
        assert_eq!(small.verdict, Verdict::Inconclusive, "{}", small.reason);
        assert!(small.reason.contains("minimum detectable effect"), "{}", small.reason);
        // A gap the split can detect is judged by the CI as before.
        assert_ne!(
            report.verdicts[1].verdict,
            Verdict::Inconclusive,
            "{}",
            report.verdicts[1].reason
        );
    }

    fn claim(id: &str, body: &str) -> String {
        format!("[[claims]]\nid = \"{id}\"\nstatement = \"{id}\"\n{body}\n")
    }

    #[test]
    fn each_verdict_arises_where_it_should() {
        let body = [
            claim("acc_close", "metric = \"accuracy\"\nmodel = \"dec\"\ncompare = \"~=\"\nvalue = 0.8\ntolerance = 0.005"),
            claim("acc_far", "metric = \"accuracy\"\nmodel = \"dec\"\ncompare = \"~=\"\nvalue = 0.5\ntolerance = 0.005"),
            claim("dec_beats_enc", "metric = \"macro_f1\"\nmodels = [\"dec\", \"enc\"]\ncompare = \">\""),
            claim("enc_beats_dec", "metric = \"accuracy\"\nmodels = [\"enc\", \"dec\"]\ncompare = \">\""),
            claim("zero_f1", "metric = \"zero_f1_classes\"\nmodel = \"dec\"\ncompare = \"~=\"\nvalue = 0\ntolerance = 0"),
            claim("latency_ratio", "metric = \"latency_ms\"\nmodels = [\"dec\", \"enc\"]\nof = \"ratio\"\ncompare = \"~=\"\nvalue = 19\ntolerance = \"25%\""),
            claim("same_hw_ratio", "metric = \"latency_ms\"\nmodels = [\"dec\", \"enc\"]\nof = \"ratio\"\ncompare = \"~=\"\nvalue = 19\ntolerance = \"10%\"\nhardware_slug = \"cpu-x-2c\""),
            claim("enc_throughput", "metric = \"throughput\"\nmodel = \"enc\"\ncompare = \">=\"\nvalue = 10\nhardware_slug = \"cpu-x-2c\""),
            claim("share", "metric = \"trainable_share\"\nmodel = \"dec\"\ncompare = \"~=\"\nvalue = 0.0046\ntolerance = 0.00005"),
            claim("missing_model", "metric = \"accuracy\"\nmodel = \"big\"\ncompare = \">=\"\nvalue = 0.5"),
            claim("missing_split", "metric = \"accuracy\"\nmodel = \"dec\"\nsplit = \"test\"\ncompare = \">=\"\nvalue = 0.5"),
        ]
        .concat();
        let (results, claims, _dir) = setup(&body);
        let report = verify(&claims, &results, Path::new("results.json")).unwrap();
        let get = |id: &str| report.verdicts.iter().find(|v| v.id == id).unwrap();
        let expect = [
            ("acc_close", Verdict::Reproduced),
            ("acc_far", Verdict::Contradicted),
            ("dec_beats_enc", Verdict::Reproduced),
            ("enc_beats_dec", Verdict::Contradicted),
            ("zero_f1", Verdict::Reproduced),
            ("latency_ratio", Verdict::HardwareDiffers),
            ("same_hw_ratio", Verdict::Reproduced),
            ("enc_throughput", Verdict::Inconclusive),
            ("share", Verdict::Reproduced),
            ("missing_model", Verdict::NotRun),
            ("missing_split", Verdict::NotRun),
        ];
        for (id, verdict) in expect {
            assert_eq!(get(id).verdict, verdict, "{id}: {}", get(id).reason);
        }
        // Our numbers and intervals are the run's own.
        let dec_acc = results.splits[0].models[0].metrics.accuracy;
        assert_eq!(get("acc_close").ours, Some(dec_acc));
        assert_eq!(get("acc_close").ci_kind, CiKind::Percentile);
        let ci = get("dec_beats_enc").ci.unwrap();
        assert!(ci.lower > 0.0 && get("dec_beats_enc").ci_kind == CiKind::PairedPercentile);
        // enc − dec is the mirror of dec − enc.
        let (d, e) = (get("dec_beats_enc"), get("enc_beats_dec"));
        assert!(e.ours.unwrap() < 0.0 && d.ours.unwrap() > 0.0);
        assert_eq!(get("latency_ratio").ours, Some(20.0));
        assert!(
            get("latency_ratio").reason.contains("ours 20 beside theirs 19"),
            "{}",
            get("latency_ratio").reason
        );
        assert!(get("enc_throughput").reason.contains("no throughput"));
        assert!(get("missing_model").reason.contains("\"big\" is not in this run"));
        assert_eq!(report.count(Verdict::Reproduced), 5);
        let md = render::render(&report);
        assert!(
            md.contains("| acc_far |") && md.contains("**contradicted**") && md.contains("paired"),
            "{md}"
        );
    }

    #[test]
    fn a_run_of_another_suite_is_refused() {
        let (mut results, claims, _dir) = setup(&claim(
            "c",
            "metric = \"accuracy\"\nmodel = \"dec\"\ncompare = \">=\"\nvalue = 0.5",
        ));
        results.suite.name = "other".into();
        let e = verify(&claims, &results, Path::new("r.json")).unwrap_err().to_string();
        assert!(
            e.contains("claims are about suite \"s\"") && e.contains("run of suite \"other\""),
            "{e}"
        );
    }
}
