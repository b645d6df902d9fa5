//! End to end through the `clsbench` binary: `compare` passes a run against itself and
//! catches an injected regression (3 points of accuracy, half the throughput) with exit 1;
//! `verify` prints a verdict table and gates on contradicted claims only with --strict;
//! `promote` makes a reference that `compare --reference` finds; bad input exits 2.
//!
//! One real run of suites/default.toml's TF-IDF model (`--only tfidf-lr`: 2,581 real
//! complaints; the suite's MiniLM probe would add minutes) is shared by all tests: its test
//! split has 511 documents, enough for a 3-point paired drop to be seen.

use crate::common::{clsbench, read_json, repo, split, stderr_on_exit};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn write_json(path: &Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(v).unwrap()).unwrap();
}

/// The shared run: (temp dir kept alive, run directory).
fn base_run() -> &'static (tempfile::TempDir, PathBuf) {
    static RUN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let suite = repo().join("suites/default.toml");
        clsbench()
            .args([
                "run",
                suite.to_str().unwrap(),
                "--only",
                "tfidf-lr",
                "--run-id",
                "base",
                "--output-dir",
            ])
            .arg(dir.path())
            .assert()
            .success();
        let run_dir = dir.path().join("default/base");
        // Give the model a known throughput (the perf step's own number when it ran), so the
        // speed part of the test does not depend on timing noise.
        let path = run_dir.join("results.json");
        let mut r = read_json(&path);
        let model = &mut r["models"][0];
        let docs_per_s = model["perf"]["cost"]["docs_per_s"].as_f64().unwrap_or(1000.0);
        if model["perf"].is_null() {
            model["perf"] = serde_json::json!({});
        }
        model["perf"]["cost"]["docs_per_s"] = docs_per_s.into();
        write_json(&path, &r);
        (dir, run_dir)
    })
}

/// A copy of the base run's results.json under `name`, edited by `edit`.
fn variant(name: &str, edit: impl FnOnce(&mut Value)) -> (tempfile::TempDir, PathBuf) {
    let (_, base) = base_run();
    let mut r = read_json(&base.join("results.json"));
    edit(&mut r);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name).join("results.json");
    write_json(&path, &r);
    (dir, path)
}

/// Flip `share` of the correct predictions of every split to a wrong class.
fn flip_correct_predictions(r: &mut Value, share: f64) -> usize {
    let n_classes = r["dataset"]["labels"].as_array().unwrap().len() as u64;
    let mut flipped = 0;
    for split in r["splits"].as_array_mut().unwrap() {
        let gold: Vec<u64> = split["gold"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g.as_u64().unwrap())
            .collect();
        let n = gold.len();
        let target = (share * n as f64).ceil() as usize;
        let pred = split["models"][0]["pred"].as_array_mut().unwrap();
        let mut done = 0;
        for (i, g) in gold.iter().enumerate() {
            if done == target {
                break;
            }
            if pred[i].as_u64() == Some(*g) {
                pred[i] = ((g + 1) % n_classes).into();
                done += 1;
            }
        }
        assert_eq!(done, target, "not enough correct predictions to flip");
        flipped += done;
    }
    flipped
}

#[test]
fn compare_passes_a_run_against_itself() {
    let (_, base) = base_run();
    let out_dir = tempfile::tempdir().unwrap();
    let out = clsbench()
        .arg("compare")
        .args([base, base])
        .arg("--out")
        .arg(out_dir.path())
        .assert()
        .code(0)
        .get_output()
        .clone();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("No regression") && md.contains("paired"), "{md}");
    let c = read_json(&out_dir.path().join("compare.json"));
    assert_eq!(c["regressions"].as_array().unwrap().len(), 0);
    assert_eq!(c["models"][0]["splits"][0]["changed_predictions"], 0);
}

#[test]
fn compare_catches_three_points_less_accuracy_and_halved_throughput() {
    let (_, base) = base_run();
    let (_dir, new) = variant("new", |r| {
        assert!(flip_correct_predictions(r, 0.03) > 0);
        let t = r["models"][0]["perf"]["cost"]["docs_per_s"].as_f64().unwrap();
        r["models"][0]["perf"]["cost"]["docs_per_s"] = (t / 2.0).into();
    });
    let out = clsbench()
        .arg("compare")
        .args([base, &new])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("regression(s)"), "{md}");
    let c = read_json(&new.parent().unwrap().join("compare.json"));
    let kinds: Vec<&str> = c["regressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"quality") && kinds.contains(&"speed"), "{kinds:?}");
    for split in c["models"][0]["splits"].as_array().unwrap() {
        let acc = &split["accuracy"];
        assert!((acc["delta"].as_f64().unwrap() + 0.03).abs() < 0.005, "{acc}");
        assert!(acc["ci"]["upper"].as_f64().unwrap() < 0.0, "{acc}");
        assert_eq!(split["pairing"]["kind"], "paired");
    }
    // The same drop on other hardware: quality still fails, speed is only information.
    let (_dir2, moved) = variant("moved", |r| {
        flip_correct_predictions(r, 0.03);
        r["hardware"]["slug"] = "some-other-machine".into();
        let t = r["models"][0]["perf"]["cost"]["docs_per_s"].as_f64().unwrap();
        r["models"][0]["perf"]["cost"]["docs_per_s"] = (t / 2.0).into();
    });
    clsbench().arg("compare").args([base, &moved]).assert().code(1);
    let c = read_json(&moved.parent().unwrap().join("compare.json"));
    let kinds: Vec<&str> = c["regressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"quality") && !kinds.contains(&"speed"), "{kinds:?}");
}

#[test]
fn compare_refuses_other_suites_label_sets_and_schema_versions() {
    let (_, base) = base_run();
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit, &str); 3] = [
        ("suite", |r| r["suite"]["name"] = "cfpb113".into(), "different suites"),
        (
            "labels",
            |r| r["dataset"]["labels"][0] = "Something else".into(),
            "label sets differ",
        ),
        (
            "schema",
            |r| r["schema_version"] = 0.into(),
            "schema version 0 is not supported",
        ),
    ];
    for (name, edit, needle) in cases {
        let (_dir, other) = variant(name, edit);
        let err = stderr_on_exit(clsbench().arg("compare").args([base, &other]), 2);
        assert!(err.contains(needle), "{name}: {err}");
    }
}

#[test]
fn compare_with_no_models_in_common_exits_2() {
    let (_, base) = base_run();
    let (_dir, renamed) = variant("renamed", |r| {
        r["models"][0]["id"] = "mini".into();
        for split in r["splits"].as_array_mut().unwrap() {
            split["models"][0]["model"] = "mini".into();
        }
    });
    let err = stderr_on_exit(clsbench().arg("compare").args([base, &renamed]), 2);
    assert!(
        err.contains("nothing to compare") && err.contains("\"tfidf-lr\"") && err.contains("\"mini\""),
        "{err}"
    );
    // --allow-missing does not make a comparison of nothing pass.
    stderr_on_exit(
        clsbench().arg("compare").args([base, &renamed]).arg("--allow-missing"),
        2,
    );
}

#[test]
fn compare_of_a_new_run_without_the_val_split_is_a_regression_unless_allowed() {
    let (_, base) = base_run();
    let (_dir, no_val) = variant("no-val", |r| {
        r["splits"].as_array_mut().unwrap().retain(|s| s["split"] != "val");
    });
    let out = clsbench()
        .arg("compare")
        .args([base, &no_val])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.contains("`tfidf-lr` (missing on val)"), "{md}");
    let c = read_json(&no_val.parent().unwrap().join("compare.json"));
    assert_eq!(c["regressions"][0]["kind"], "missing", "{c}");
    let out = clsbench()
        .arg("compare")
        .args([base, &no_val])
        .arg("--allow-missing")
        .assert()
        .code(0)
        .get_output()
        .clone();
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(
        md.contains("No regression") && md.contains("allowed by --allow-missing"),
        "{md}"
    );
}

#[test]
fn verify_prints_a_verdict_table_and_gates_only_with_strict() {
    let (_, base) = base_run();
    let r = read_json(&base.join("results.json"));
    let val = split(&r, "val");
    let acc = val["models"][0]["metrics"]["accuracy"].as_f64().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let claims = dir.path().join("claims.toml");
    let suite = repo().join("suites/default.toml");
    let write = |body: &str| {
        std::fs::write(
            &claims,
            format!("title = \"test\"\nsuite = {:?}\n{body}", suite.to_str().unwrap()),
        )
        .unwrap();
    };
    let claim = |id: &str, rest: &str| format!("[[claims]]\nid = \"{id}\"\nstatement = \"{id}\"\n{rest}\n");
    write(
        &[
            claim(
                "ours",
                &format!(
                    "metric = \"accuracy\"\nmodel = \"tfidf-lr\"\ncompare = \"~=\"\nvalue = {acc}\ntolerance = 0.001"
                ),
            ),
            claim(
                "too_good",
                "metric = \"accuracy\"\nmodel = \"tfidf-lr\"\ncompare = \"~=\"\nvalue = 0.99\ntolerance = 0.005",
            ),
            claim(
                "zero_f1",
                "metric = \"zero_f1_classes\"\nmodel = \"tfidf-lr\"\ncompare = \"<=\"\nvalue = 1000",
            ),
        ]
        .concat(),
    );
    let out_dir = dir.path().join("out");
    let run = |strict: bool, code: i32| {
        let mut cmd = clsbench();
        cmd.arg("verify")
            .arg("--claims")
            .arg(&claims)
            .arg(base)
            .arg("--out")
            .arg(&out_dir);
        if strict {
            cmd.arg("--strict");
        }
        cmd.assert().code(code).get_output().clone()
    };
    let out = run(false, 0);
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(
        md.contains("| ours |") && md.contains("**reproduced**") && md.contains("**contradicted**"),
        "{md}"
    );
    let v = read_json(&out_dir.join("verdicts.json"));
    let verdict = |id: &str| {
        v["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap()["verdict"]
            .clone()
    };
    assert_eq!(
        (verdict("ours"), verdict("too_good"), verdict("zero_f1")),
        ("reproduced".into(), "contradicted".into(), "reproduced".into())
    );
    assert!(out_dir.join("verdicts.md").is_file());
    let out = run(true, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 claim(s) contradicted"));

    // Bad claims exit 2 naming the problem.
    for (body, needle) in [
        (
            claim(
                "c",
                "metric = \"accuracy\"\nmodel = \"bert\"\ncompare = \">=\"\nvalue = 0.5",
            ),
            "unknown model \"bert\"",
        ),
        (
            claim(
                "c",
                "metric = \"f2\"\nmodel = \"tfidf-lr\"\ncompare = \">=\"\nvalue = 0.5",
            ),
            "unknown metric \"f2\"",
        ),
        (
            claim(
                "c",
                "metric = \"accuracy\"\nmodel = \"tfidf-lr\"\ncompare = \"~=\"\nvalue = 0.5\ntolerance = \"five\"",
            ),
            "field `tolerance`",
        ),
    ] {
        write(&body);
        let out = run(false, 2);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle) && err.contains("line 3"), "{err}");
    }
}

#[test]
fn promote_makes_the_reference_that_compare_finds() {
    let (_, base) = base_run();
    let root = tempfile::tempdir().unwrap();
    let out = clsbench()
        .arg("promote")
        .arg(base)
        .arg("--results-root")
        .arg(root.path())
        .assert()
        .success()
        .get_output()
        .clone();
    let dest = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let slug = read_json(&base.join("results.json"))["hardware"]["slug"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(dest, root.path().join(&slug).join("default"));
    for f in ["results.json", "manifest.json", "summary.md", ".gitignore"] {
        assert!(dest.join(f).is_file(), "missing {f}");
    }
    // The plots summary.md links to come along, so the committed reference reads whole.
    let plots: Vec<_> = std::fs::read_dir(base.join("plots"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(plots.iter().any(|p| p.to_string_lossy().ends_with(".png")), "{plots:?}");
    for p in &plots {
        assert!(dest.join("plots").join(p).is_file(), "plot {p:?} not promoted");
    }
    // A second promotion needs --force.
    assert!(stderr_on_exit(
        clsbench()
            .arg("promote")
            .arg(base)
            .arg("--results-root")
            .arg(root.path()),
        2
    )
    .contains("--force"));
    clsbench()
        .arg("promote")
        .arg(base)
        .arg("--results-root")
        .arg(root.path())
        .arg("--force")
        .assert()
        .success();
    let out_dir = tempfile::tempdir().unwrap();
    clsbench()
        .args(["compare", "--reference"])
        .arg(base)
        .arg("--results-root")
        .arg(root.path())
        .arg("--out")
        .arg(out_dir.path())
        .assert()
        .code(0);
    // No reference for this suite under another root: exit 2 saying how to make one.
    let empty = tempfile::tempdir().unwrap();
    assert!(stderr_on_exit(
        clsbench()
            .args(["compare", "--reference"])
            .arg(base)
            .arg("--results-root")
            .arg(empty.path()),
        2
    )
    .contains("clsbench promote"));
}

/// Regression (hardening, defect 3): a run whose suite was named ".." was promoted straight
/// into the results root.
#[test]
fn promote_of_a_run_named_dotdot_writes_nothing_above_the_root() {
    let (_, base) = base_run();
    let copy = tempfile::tempdir().unwrap();
    let mut r = read_json(&base.join("results.json"));
    r["suite"]["name"] = serde_json::json!("..");
    std::fs::write(copy.path().join("results.json"), serde_json::to_vec(&r).unwrap()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let inner = root.path().join("results");
    let err = stderr_on_exit(
        clsbench()
            .arg("promote")
            .arg(copy.path())
            .arg("--results-root")
            .arg(&inner),
        2,
    );
    assert!(err.contains("suite.name") && err.contains("\"..\""), "{err}");
    assert_eq!(
        std::fs::read_dir(root.path()).unwrap().count(),
        0,
        "promote wrote something"
    );
}
