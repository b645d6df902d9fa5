//! Tests of the paired bootstrap against fixtures/reference/eval_reference.json.

use super::*;
use crate::test_reference::{assert_close, reference, usizes};
use serde_json::Value;

struct LongTail {
    gold: Vec<usize>,
    pred_a: Vec<usize>,
    pred_b: Vec<usize>,
    n_classes: usize,
}

fn long_tail(r: &Value) -> LongTail {
    let lt = &r["long_tail"];
    LongTail {
        gold: usizes(&lt["gold"]),
        pred_a: usizes(&lt["pred_a"]),
        pred_b: usizes(&lt["pred_b"]),
        n_classes: lt["n_classes"].as_u64().unwrap() as usize,
    }
}

fn seed_config(boot: &Value) -> BootstrapConfig {
    BootstrapConfig {
        resamples: boot["resamples"].as_u64().unwrap() as usize,
        confidence: boot["confidence"].as_f64().unwrap(),
        seed: boot["seed"].as_u64().unwrap(),
        rng: ResampleRng::Numpy,
    }
}

fn check_summary(got: &Estimate, want: &Value, what: &str) {
    assert_close(got.bootstrap_mean, &want["mean"], 1e-12, &format!("{what}: mean"));
    assert_close(
        got.percentile.lower,
        &want["lower"],
        1e-12,
        &format!("{what}: percentile lower"),
    );
    assert_close(
        got.percentile.upper,
        &want["upper"],
        1e-12,
        &format!("{what}: percentile upper"),
    );
}

fn check_bca(got: &Estimate, want: &Value, what: &str) {
    let bca = got.bca.unwrap_or_else(|| panic!("{what}: BCa undefined"));
    // Φ⁻¹ (statrs) and Φ (libm's erfc) agree with SciPy's ndtri / ndtr to an ulp or so.
    assert_close(bca.z0, &want["z0"], 1e-14, &format!("{what}: z0"));
    assert_close(
        bca.acceleration,
        &want["acceleration"],
        1e-14,
        &format!("{what}: acceleration"),
    );
    assert_close(
        bca.alpha_lower,
        &want["alpha_lower"],
        1e-14,
        &format!("{what}: alpha lower"),
    );
    assert_close(
        bca.alpha_upper,
        &want["alpha_upper"],
        1e-14,
        &format!("{what}: alpha upper"),
    );
    assert_close(bca.lower, &want["lower"], 1e-12, &format!("{what}: BCa lower"));
    assert_close(bca.upper, &want["upper"], 1e-12, &format!("{what}: BCa upper"));
}

#[test]
fn numpy_mode_replays_the_seeds_bootstrap() {
    let r = reference();
    let d = long_tail(r);
    let boot = &r["long_tail"]["bootstrap"];
    let report = paired_bootstrap(&d.gold, &[&d.pred_a, &d.pred_b], d.n_classes, &seed_config(boot)).unwrap();

    for (m, model) in report.models.iter().enumerate() {
        let want_samples = boot["macro_f1_samples"][m].as_array().unwrap();
        assert_eq!(model.macro_f1_samples.len(), want_samples.len());
        for (i, (got, want)) in model.macro_f1_samples.iter().zip(want_samples).enumerate() {
            assert_close(*got, want, 1e-15, &format!("model {m}, resample {i}: macro F1"));
        }
        check_summary(
            &model.macro_f1,
            &boot["models"][m]["macro_f1"],
            &format!("model {m} macro F1"),
        );
        check_summary(
            &model.accuracy,
            &boot["models"][m]["accuracy"],
            &format!("model {m} accuracy"),
        );
    }
    let pair = report.pairs.iter().find(|p| (p.a, p.b) == (0, 1)).unwrap();
    for (got, key) in [(&pair.accuracy, "accuracy"), (&pair.macro_f1, "macro_f1")] {
        let want = &boot["delta_b_minus_a"][key];
        check_summary(&got.delta, want, &format!("delta {key}"));
        assert_close(
            got.share_b_greater,
            &want["share_b_greater"],
            0.0,
            &format!("delta {key}: share b > a"),
        );
        assert_close(got.p_value, &want["p_value"], 1e-15, &format!("delta {key}: p-value"));
    }
}

#[test]
fn bca_matches_the_formula_on_the_same_resamples() {
    let r = reference();
    let d = long_tail(r);
    let boot = &r["long_tail"]["bootstrap"];
    let report = paired_bootstrap(&d.gold, &[&d.pred_a, &d.pred_b], d.n_classes, &seed_config(boot)).unwrap();
    let bca = &boot["bca"];
    for (m, model) in report.models.iter().enumerate() {
        check_bca(
            &model.accuracy,
            &bca["models"][m]["accuracy"],
            &format!("model {m} accuracy"),
        );
        check_bca(
            &model.macro_f1,
            &bca["models"][m]["macro_f1"],
            &format!("model {m} macro F1"),
        );
    }
    let pair = report.pairs.iter().find(|p| (p.a, p.b) == (0, 1)).unwrap();
    check_bca(
        &pair.accuracy.delta,
        &bca["delta_b_minus_a"]["accuracy"],
        "delta accuracy",
    );
    check_bca(
        &pair.macro_f1.delta,
        &bca["delta_b_minus_a"]["macro_f1"],
        "delta macro F1",
    );
}

#[test]
fn jackknife_macro_f1_matches_sklearn_leave_one_out() {
    let r = reference();
    let d = long_tail(r);
    for (m, pred) in [&d.pred_a, &d.pred_b].into_iter().enumerate() {
        let full = Counts::from_labels(&d.gold, pred, d.n_classes).unwrap();
        let jack = jackknife_macro_f1(&d.gold, pred, &full);
        let want = r["long_tail"]["bootstrap"]["bca"]["jackknife_macro_f1_first_20"][m]
            .as_array()
            .unwrap();
        for (i, w) in want.iter().enumerate() {
            assert_close(jack[i], w, 1e-15, &format!("model {m}, leave out {i}"));
        }
    }
}

#[test]
fn ordered_pairs_are_antisymmetric_and_a_model_ties_itself() {
    let r = reference();
    let d = long_tail(r);
    let cfg = BootstrapConfig {
        resamples: 200,
        confidence: 0.9,
        seed: 5,
        rng: ResampleRng::Chacha,
    };
    let report = paired_bootstrap(&d.gold, &[&d.pred_a, &d.pred_b, &d.pred_a], d.n_classes, &cfg).unwrap();
    assert_eq!(report.pairs.len(), 6);
    let find = |a, b| report.pairs.iter().find(|p| (p.a, p.b) == (a, b)).unwrap();
    let (ab, ba) = (find(0, 1), find(1, 0));
    for (x, y) in ab.macro_f1_samples.iter().zip(&ba.macro_f1_samples) {
        assert_eq!(*x, -*y);
    }
    assert_eq!(ab.macro_f1.p_value, ba.macro_f1.p_value);
    assert!((ab.macro_f1.share_b_greater + ba.macro_f1.share_b_greater) <= 1.0);
    let same = find(0, 2);
    assert!(same.macro_f1_samples.iter().all(|&x| x == 0.0));
    assert_eq!((same.macro_f1.share_b_greater, same.macro_f1.p_value), (0.0, 1.0));
    assert_eq!(same.macro_f1.delta.bca, None, "a constant statistic has no BCa");
    assert_eq!(report.models[0].macro_f1_samples, report.models[2].macro_f1_samples);
}

#[test]
fn chacha_mode_is_deterministic_whatever_the_thread_count() {
    let r = reference();
    let d = long_tail(r);
    let cfg = BootstrapConfig {
        resamples: 300,
        confidence: 0.95,
        seed: 11,
        rng: ResampleRng::Chacha,
    };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| paired_bootstrap(&d.gold, &[&d.pred_a, &d.pred_b], d.n_classes, &cfg).unwrap())
    };
    assert_eq!(run(1), run(3));
    let other_seed = BootstrapConfig { seed: 12, ..cfg };
    let other = paired_bootstrap(&d.gold, &[&d.pred_a, &d.pred_b], d.n_classes, &other_seed).unwrap();
    assert_ne!(run(2).models[0].macro_f1_samples, other.models[0].macro_f1_samples);
}

#[test]
fn numpy_mode_is_independent_of_threads_and_chunking() {
    // 300 resamples of n = 6430 span several index chunks; one thread vs several must agree.
    let r = reference();
    let d = long_tail(r);
    let cfg = BootstrapConfig {
        resamples: 300,
        confidence: 0.95,
        seed: 49,
        rng: ResampleRng::Numpy,
    };
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| paired_bootstrap(&d.gold, &[&d.pred_a, &d.pred_b], d.n_classes, &cfg).unwrap())
    };
    let one = run(1);
    assert_eq!(one, run(4));
    let want = r["long_tail"]["bootstrap"]["macro_f1_samples"][1].as_array().unwrap();
    assert_close(
        one.models[1].macro_f1_samples[299],
        &want[299],
        1e-15,
        "resample 299 of model 1",
    );
}

#[test]
fn chacha_and_numpy_intervals_agree_statistically() {
    // Different streams, same distribution: 2,000 resamples put the 95% limits within a
    // few thousandths of each other (their Monte Carlo error is ~0.001 here).
    let r = reference();
    let d = long_tail(r);
    let base = BootstrapConfig {
        resamples: 2000,
        confidence: 0.95,
        seed: 49,
        rng: ResampleRng::Numpy,
    };
    let np = paired_bootstrap(&d.gold, &[&d.pred_a, &d.pred_b], d.n_classes, &base).unwrap();
    let cc = paired_bootstrap(
        &d.gold,
        &[&d.pred_a, &d.pred_b],
        d.n_classes,
        &BootstrapConfig {
            rng: ResampleRng::Chacha,
            ..base
        },
    )
    .unwrap();
    let (x, y) = (&np.pairs[0].macro_f1.delta, &cc.pairs[0].macro_f1.delta);
    assert!(
        (x.percentile.lower - y.percentile.lower).abs() < 0.004,
        "{x:?} vs {y:?}"
    );
    assert!(
        (x.percentile.upper - y.percentile.upper).abs() < 0.004,
        "{x:?} vs {y:?}"
    );
    assert!((x.bootstrap_mean - y.bootstrap_mean).abs() < 0.002);
}

#[test]
fn bca_is_close_to_percentile_for_a_symmetric_statistic() {
    // Accuracy near 0.5 on many documents: the bootstrap distribution is nearly symmetric and
    // unbiased, so z0 and a are ~0 and BCa must land on the percentile interval.
    let n = 20_000;
    let gold: Vec<usize> = (0..n).map(|i| i % 2).collect();
    let pred: Vec<usize> = (0..n)
        .map(|i| {
            if (i * 7919) % 13 < 6 || i % 5 == 0 {
                i % 2
            } else {
                1 - i % 2
            }
        })
        .collect();
    let cfg = BootstrapConfig {
        resamples: 4000,
        confidence: 0.95,
        seed: 3,
        rng: ResampleRng::Chacha,
    };
    let report = paired_bootstrap(&gold, &[&pred], 2, &cfg).unwrap();
    let acc = &report.models[0].accuracy;
    let bca = acc.bca.unwrap();
    assert!(bca.z0.abs() < 0.06 && bca.acceleration.abs() < 1e-3, "{bca:?}");
    let width = acc.percentile.upper - acc.percentile.lower;
    assert!((bca.lower - acc.percentile.lower).abs() < 0.05 * width, "{acc:?}");
    assert!((bca.upper - acc.percentile.upper).abs() < 0.05 * width, "{acc:?}");
}

#[test]
fn resamples_drop_absent_classes_like_sklearn() {
    // One resample with one document drawn n times: only its gold and pred classes count.
    let (gold, pred) = (vec![0usize, 1, 2], vec![0usize, 2, 2]);
    let data = Packed::new(&gold, &[&pred], 3);
    let mut counter = ResampleCounter::new(&data);
    let mut out = [0.0; 2];
    counter.score(&data, &[1, 1, 1], &mut out);
    let via_metrics = crate::metrics::compute(&[1, 1, 1], &[2, 2, 2], 3).unwrap();
    assert_eq!(out, [via_metrics.accuracy, via_metrics.macro_f1]);
    counter.score(&data, &[0, 2, 0], &mut out);
    let via_metrics = crate::metrics::compute(&[0, 2, 0], &[0, 2, 0], 3).unwrap();
    assert_eq!(out, [via_metrics.accuracy, via_metrics.macro_f1]);
}

#[test]
fn wide_rows_score_like_narrow_ones() {
    // 2 models x 40,000 classes do not fit u16 offsets: the u32 layout must agree.
    let (gold, pa, pb) = (
        vec![0usize, 39_999, 7, 7],
        vec![0usize, 39_999, 3, 7],
        vec![39_999usize, 39_999, 7, 0],
    );
    let data = Packed::new(&gold, &[&pa, &pb], 40_000);
    assert!(matches!(data.rows, Rows::Wide(_)));
    let mut counter = ResampleCounter::new(&data);
    let mut out = [0.0; 4];
    let indices = [3u32, 1, 1, 2];
    counter.score(&data, &indices, &mut out);
    let pick = |v: &[usize]| -> Vec<usize> { indices.iter().map(|&i| v[i as usize]).collect() };
    for (j, pred) in [&pa, &pb].into_iter().enumerate() {
        let m = crate::metrics::compute(&pick(&gold), &pick(pred), 40_000).unwrap();
        assert_eq!([out[2 * j], out[2 * j + 1]], [m.accuracy, m.macro_f1], "model {j}");
    }
}

#[test]
fn bad_inputs_are_rejected_with_context() {
    let gold = [0usize, 1, 1];
    let cfg = BootstrapConfig::default();
    let err = paired_bootstrap(&gold, &[&[0, 1]], 2, &cfg).unwrap_err().to_string();
    assert!(err.contains("model 0") && err.contains("pred has 2"), "{err}");
    assert!(paired_bootstrap(&gold, &[], 2, &cfg)
        .unwrap_err()
        .to_string()
        .contains("no models"));
    let big_seed = BootstrapConfig { seed: 1 << 40, ..cfg };
    assert!(paired_bootstrap(&gold, &[&[0, 1, 1]], 2, &big_seed).is_err());
    let no_resamples = BootstrapConfig { resamples: 0, ..cfg };
    assert!(paired_bootstrap(&gold, &[&[0, 1, 1]], 2, &no_resamples).is_err());
}

#[test]
fn report_round_trips_through_json() {
    let cfg = BootstrapConfig {
        resamples: 20,
        ..BootstrapConfig::default()
    };
    let report = paired_bootstrap(&[0, 1, 1, 2, 0], &[&[0, 1, 2, 2, 1], &[0, 1, 1, 2, 2]], 3, &cfg).unwrap();
    let json = serde_json::to_string(&report).unwrap();
    let back: BootstrapReport = serde_json::from_str(&json).unwrap();
    // serde_json parses floats to within an ulp unless its `float_roundtrip` feature is on.
    assert_eq!((back.models.len(), back.pairs.len(), back.rng), (2, 2, report.rng));
    assert_eq!(back.pairs[1].macro_f1_samples.len(), 20);
    assert!((back.pairs[1].macro_f1.delta.point - report.pairs[1].macro_f1.delta.point).abs() < 1e-15);
    assert!(json.contains("\"percentile\"") && json.contains("\"bca\"") && json.contains("\"share_b_greater\""));
}
