//! Calibration against fixtures/reference/calibration_reference.json (numpy / SciPy /
//! scikit-learn, make_calibration_reference.py).

use super::*;
use crate::bootstrap::paired_bootstrap;
use crate::resample::ResampleRng;
use crate::test_reference::{assert_close, calibration_reference, f64s, usizes};
use serde_json::Value;

const TOL: f64 = 1e-12;

/// Doubles stored as their bit patterns (serde_json reads decimals to within an ulp only).
fn from_bits(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| f64::from_bits(b.as_u64().unwrap()))
        .collect()
}

fn bools(v: &Value) -> Vec<bool> {
    v.as_array().unwrap().iter().map(|b| b.as_bool().unwrap()).collect()
}

fn log_probs(case: &Value) -> LogProbs {
    let k = case["n_classes"].as_u64().unwrap() as usize;
    let values: Vec<f64> = case["log_probs"].as_array().unwrap().iter().flat_map(f64s).collect();
    LogProbs::new(k, values).unwrap()
}

fn assert_binned(got: &BinnedCalibration, want: &Value, tol: f64, what: &str) {
    assert_close(got.ece, &want["ece"], tol, &format!("{what}: ece"));
    assert_close(got.mce, &want["mce"], tol, &format!("{what}: mce"));
    let bins = want["bins"].as_array().unwrap();
    assert_eq!(got.bins.len(), bins.len(), "{what}: bins");
    for (b, (g, w)) in got.bins.iter().zip(bins).enumerate() {
        assert_eq!(g.count as u64, w["count"].as_u64().unwrap(), "{what}: bin {b} count");
        for (value, key) in [(g.accuracy, "accuracy"), (g.mean_confidence, "mean_confidence")] {
            match value {
                Some(v) => assert_close(v, &w[key], tol, &format!("{what}: bin {b} {key}")),
                None => assert!(w[key].is_null(), "{what}: bin {b} {key} should be {}", w[key]),
            }
        }
    }
}

fn assert_scores(got: &CalibrationScores, want: &Value, tol: f64, what: &str) {
    assert_eq!(got.n_documents as u64, want["n_documents"].as_u64().unwrap(), "{what}");
    assert_binned(&got.digitize, &want["digitize"], tol, &format!("{what} digitize"));
    assert_binned(
        &got.upper_closed,
        &want["upper_closed"],
        tol,
        &format!("{what} upper-closed"),
    );
    assert_close(got.nll.unwrap(), &want["nll"], tol, &format!("{what}: nll"));
    assert_close(got.brier.unwrap(), &want["brier"], tol, &format!("{what}: brier"));
}

fn assert_estimate(got: &Option<Estimate>, want: &Value, what: &str) {
    let Some(got) = got else {
        assert!(want.is_null(), "{what}: no interval, reference has {want}");
        return;
    };
    assert!(!want.is_null(), "{what}: an interval where the reference has none");
    assert_close(got.point, &want["point"], TOL, &format!("{what}: point"));
    assert_close(
        got.bootstrap_mean,
        &want["bootstrap_mean"],
        TOL,
        &format!("{what}: mean"),
    );
    assert_close(got.percentile.lower, &want["lower"], TOL, &format!("{what}: lower"));
    assert_close(got.percentile.upper, &want["upper"], TOL, &format!("{what}: upper"));
    match (&got.bca, &want["bca"]) {
        (Some(b), w) if !w.is_null() => {
            // The jackknife's differences are tiny: a few ulps of them move the BCa levels.
            assert_close(b.lower, &w["lower"], 1e-10, &format!("{what}: BCa lower"));
            assert_close(b.upper, &w["upper"], 1e-10, &format!("{what}: BCa upper"));
        }
        (None, w) if w.is_null() => {}
        (b, w) => panic!("{what}: BCa {b:?} vs reference {w}"),
    }
}

fn reference_cfg() -> BootstrapConfig {
    let b = &calibration_reference()["bootstrap"];
    BootstrapConfig {
        resamples: b["resamples"].as_u64().unwrap() as usize,
        confidence: b["confidence"].as_f64().unwrap(),
        seed: b["seed"].as_u64().unwrap(),
        rng: ResampleRng::Numpy,
    }
}

#[test]
fn bin_edges_are_numpys_linspace() {
    let want = from_bits(&calibration_reference()["edges_bits"]);
    assert_eq!(bin_edges().to_vec(), want, "bit for bit");
}

#[test]
fn both_bin_conventions_match_the_seeds_loops_at_the_edges() {
    let case = &calibration_reference()["edge_case"];
    let conf = from_bits(&case["confidence_bits"]);
    let correct = bools(&case["correct"]);
    let edges = bin_edges();
    let digitized: Vec<usize> = conf
        .iter()
        .map(|&c| bin_of(c, BinConvention::Digitize, &edges).unwrap())
        .collect();
    assert_eq!(digitized, usizes(&case["digitize_bin"]));
    let d = binned(&conf, &correct, BinConvention::Digitize).unwrap();
    let u = binned(&conf, &correct, BinConvention::UpperClosed).unwrap();
    assert_binned(&d, &case["digitize"], TOL, "edges, digitize");
    assert_binned(&u, &case["upper_closed"], TOL, "edges, upper-closed");
    assert!((d.ece - u.ece).abs() > 0.05, "the conventions differ on edges");
    // 0.0 falls in no (lo, hi] bin but still counts in N.
    assert_eq!(u.unbinned, conf.iter().filter(|&&c| c == 0.0).count());
    assert_eq!(d.unbinned, 0);
}

#[test]
fn scores_and_temperature_scaling_match_numpy_and_scipy() {
    let cfg = reference_cfg();
    let r = calibration_reference();
    for case in r["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let lp = log_probs(case);
        let (gold, pred) = (usizes(&case["gold"]), usizes(&case["pred"]));
        let input = CalibrationInput {
            gold: &gold,
            pred: &pred,
            scores: ModelScores::LogProbs(&lp),
        };
        let report = calibrate(&[input], &cfg, 42 + SPLIT_SEED_OFFSET).unwrap().remove(0);
        assert_eq!(report.source, ScoreSource::ClassProbabilities);
        assert_scores(&report.full, &case["full"], TOL, name);

        let t = &case["temperature"];
        let ts = report.temperature.as_ref().unwrap();
        let want_t = t["temperature"].as_f64().unwrap();
        assert!(
            (ts.temperature - want_t).abs() <= 1e-10 * want_t,
            "{name}: T {} vs brentq {want_t}",
            ts.temperature
        );
        assert_eq!(ts.at_bound, t["at_bound"].as_bool().unwrap(), "{name}: at_bound");
        if !ts.at_bound {
            // SciPy's bounded Brent over log T agrees within its xatol.
            let brent = t["temperature_minimize_scalar_bounded"].as_f64().unwrap();
            assert!((ts.temperature - brent).abs() < 1e-6 * want_t, "{name}");
        }
        assert_close(ts.calibration_nll_before, &t["calibration_loss_at_1"], TOL, name);
        assert_close(ts.calibration_nll_after, &t["calibration_loss"], TOL, name);
        let cal = usizes(&t["calibration_docs"]);
        assert_eq!(ts.n_calibration, cal.len());
        assert_eq!(ts.n_calibration + ts.n_evaluation, gold.len());
        assert_scores(&ts.before, &t["before"], TOL, &format!("{name} before"));
        assert_scores(&ts.after, &t["after"], 1e-11, &format!("{name} after"));
        assert!(
            ts.after.nll.unwrap() <= ts.before.nll.unwrap() + 0.2,
            "{name}: held-out NLL"
        );

        let b = &case["bootstrap"];
        for convention in BinConvention::BOTH {
            let key = match convention {
                BinConvention::Digitize => "digitize",
                BinConvention::UpperClosed => "upper_closed",
            };
            let what = format!("{name} {key}");
            assert_estimate(
                &report.full.binned(convention).ece_ci,
                &b["full"][key],
                &format!("{what} full"),
            );
            assert_estimate(
                &ts.before.binned(convention).ece_ci,
                &b["eval_before"][key],
                &format!("{what} before"),
            );
            assert_estimate(
                &ts.after.binned(convention).ece_ci,
                &b["eval_after"][key],
                &format!("{what} after"),
            );
        }
    }
}

#[test]
fn temperature_scaling_keeps_every_argmax() {
    let r = calibration_reference();
    for case in r["cases"].as_array().unwrap() {
        let lp = log_probs(case);
        let pred = usizes(&case["pred"]);
        for t in [0.01, 0.3, 1.0, 2.7, 100.0] {
            let scaled = lp.scaled(t);
            for (i, &p) in pred.iter().enumerate() {
                let row = scaled.row(i);
                assert!(row.iter().all(|&v| v <= row[p]), "T = {t}, document {i}");
            }
        }
    }
}

#[test]
fn ece_resamples_are_the_paired_bootstraps_own() {
    // Macro F1 recomputed on the indices `for_each_resample` hands out equals, resample for
    // resample, what paired_bootstrap scored: the ECE intervals use the same documents.
    let case = &calibration_reference()["cases"][0];
    let (gold, pred) = (usizes(&case["gold"]), usizes(&case["pred"]));
    let k = case["n_classes"].as_u64().unwrap() as usize;
    for rng in [ResampleRng::Numpy, ResampleRng::Chacha] {
        let cfg = BootstrapConfig {
            resamples: 40,
            rng,
            ..reference_cfg()
        };
        let report = paired_bootstrap(&gold, &[&pred], k, &cfg).unwrap();
        let mut ours = Vec::new();
        for_each_resample(&cfg, gold.len(), |_, idx| {
            let g: Vec<usize> = idx.iter().map(|&i| gold[i as usize]).collect();
            let p: Vec<usize> = idx.iter().map(|&i| pred[i as usize]).collect();
            ours.push(crate::metrics::macro_f1(&g, &p, k).unwrap());
        })
        .unwrap();
        assert_eq!(ours, report.models[0].macro_f1_samples, "{rng:?}");
    }
}

#[test]
fn a_prob_column_alone_gives_ece_mce_and_the_diagram() {
    let case = &calibration_reference()["edge_case"];
    let conf = from_bits(&case["confidence_bits"]);
    let correct = bools(&case["correct"]);
    // correct = (pred == gold): gold 0 everywhere, pred 0 where right.
    let gold = vec![0; conf.len()];
    let pred: Vec<usize> = correct.iter().map(|&c| usize::from(!c)).collect();
    let input = CalibrationInput {
        gold: &gold,
        pred: &pred,
        scores: ModelScores::Confidence(&conf),
    };
    let report = calibrate(&[input], &reference_cfg(), 1041).unwrap().remove(0);
    assert_eq!(report.source, ScoreSource::PredictedClassProbability);
    assert_binned(&report.full.digitize, &case["digitize"], TOL, "prob column");
    assert!(report.full.nll.is_none() && report.full.brier.is_none() && report.temperature.is_none());
    let ci = report.full.upper_closed.ece_ci.as_ref().unwrap();
    assert!(ci.percentile.lower <= ci.point && ci.point <= ci.percentile.upper + 0.05);
}

#[test]
fn bad_confidences_and_rows_are_refused_naming_the_document() {
    let err = binned(&[0.5, f64::NAN], &[true, false], BinConvention::Digitize).unwrap_err();
    assert!(err.to_string().contains("document 1"), "{err}");
    let err = binned(&[0.5, 1.5], &[true, false], BinConvention::UpperClosed).unwrap_err();
    assert!(
        err.to_string().contains("document 1") && err.to_string().contains("1.5"),
        "{err}"
    );
    assert!(binned(&[0.5], &[true, false], BinConvention::Digitize).is_err());
    let err = LogProbs::new(2, vec![-0.1, -2.0, f64::NAN, -0.5]).unwrap_err();
    assert!(err.to_string().contains("row 1, class 0"), "{err}");
    assert!(LogProbs::new(3, vec![0.0; 4]).is_err(), "4 values are not rows of 3");
    let lp = LogProbs::new(2, vec![-0.1, -2.0]).unwrap();
    assert!(scores(&lp, &[0], &[2]).is_err(), "class 2 of 2 columns");
}

#[test]
fn rows_are_normalised_when_built() {
    // f16 storage leaves rows summing to 1 ± 1e-3; built rows are proper distributions again.
    let lp = LogProbs::new(3, vec![(0.5f64).ln() + 1e-3, (0.3f64).ln(), (0.2f64).ln() - 2e-3]).unwrap();
    let total: f64 = lp.row(0).iter().map(|v| v.exp()).sum();
    assert!((total - 1.0).abs() < 1e-15, "{total}");
}
