//! The claims file: published claims about a suite's models, in TOML (format documented in
//! `fixtures/claims/README.md`). Loading validates everything that can be checked without a run: known
//! metrics and comparisons, well-formed tolerances, model ids and splits that exist in a suite
//! the file names. Errors name the file, the line of the claim and the field.

use crate::error::{Error, Result};
use crate::suite::Suite;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// What a claim measures. Quality metrics come with bootstrap CIs (except the zero-F1 count);
/// speed and cost numbers are hardware-bound; the trainable share comes from the training report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Accuracy,
    MacroF1,
    /// Classes with F1 = 0 over all classes (a count; no CI in our results).
    ZeroF1Classes,
    /// Single-example latency, median, milliseconds.
    LatencyMs,
    /// Documents per second at the chosen batch size.
    Throughput,
    /// US dollars per million documents.
    CostPer1m,
    /// Trained parameters / all parameters (0..1).
    TrainableShare,
}

impl Metric {
    pub const ALL: [Metric; 7] = [
        Metric::Accuracy,
        Metric::MacroF1,
        Metric::ZeroF1Classes,
        Metric::LatencyMs,
        Metric::Throughput,
        Metric::CostPer1m,
        Metric::TrainableShare,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::MacroF1 => "macro_f1",
            Metric::ZeroF1Classes => "zero_f1_classes",
            Metric::LatencyMs => "latency_ms",
            Metric::Throughput => "throughput",
            Metric::CostPer1m => "cost_per_1m",
            Metric::TrainableShare => "trainable_share",
        }
    }

    fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == s)
    }

    /// Measured by the timing protocol, so only comparable on the same hardware.
    pub fn is_speed(self) -> bool {
        matches!(self, Metric::LatencyMs | Metric::Throughput | Metric::CostPer1m)
    }
}

/// How the claimed quantity is built from the claim's models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// The metric of the one model.
    Value,
    /// metric(models[0]) − metric(models[1]).
    Difference,
    /// metric(models[0]) / metric(models[1]).
    Ratio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = "<")]
    Lt,
    /// Equal within a tolerance.
    #[serde(rename = "~=")]
    Approx,
}

impl Op {
    pub const ALL: [Op; 5] = [Op::Ge, Op::Le, Op::Gt, Op::Lt, Op::Approx];

    pub fn symbol(self) -> &'static str {
        match self {
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Lt => "<",
            Op::Approx => "~=",
        }
    }

    fn parse(s: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.symbol() == s)
    }
}

/// Allowed distance for `~=`: absolute (in the metric's unit) or relative to the claimed value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tolerance {
    Absolute(f64),
    /// A fraction of |claimed value| (`"25%"` in the file is 0.25).
    Relative(f64),
}

impl Tolerance {
    /// The tolerance in the metric's unit around `claimed`.
    pub fn absolute(self, claimed: f64) -> f64 {
        match self {
            Tolerance::Absolute(t) => t,
            Tolerance::Relative(r) => r * claimed.abs(),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Tolerance::Absolute(t) => fmt_value(t),
            Tolerance::Relative(r) => format!("{}%", fmt_value(r * 100.0)),
        }
    }

    /// A number (absolute) or a string `"<number>%"` (relative); never negative.
    fn parse(v: &toml::Value) -> std::result::Result<Tolerance, String> {
        let bad = |what: String| {
            format!("field `tolerance`: {what}; expected a non-negative number (absolute, e.g. 0.005) or a percentage string (relative, e.g. \"25%\")")
        };
        let t = match v {
            toml::Value::Float(f) => Tolerance::Absolute(*f),
            toml::Value::Integer(i) => Tolerance::Absolute(*i as f64),
            toml::Value::String(s) => {
                let number = s
                    .trim()
                    .strip_suffix('%')
                    .ok_or_else(|| bad(format!("{s:?} is not a percentage")))?;
                let pct: f64 = number
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("{s:?} is not a percentage")))?;
                Tolerance::Relative(pct / 100.0)
            }
            other => return Err(bad(format!("got {other}"))),
        };
        let x = match t {
            Tolerance::Absolute(x) | Tolerance::Relative(x) => x,
        };
        if !x.is_finite() || x < 0.0 {
            return Err(bad(format!("got {v}")));
        }
        Ok(t)
    }
}

/// One claim, validated.
#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    pub id: String,
    /// 1-based line of the claim's table in the claims file.
    pub line: usize,
    pub statement: String,
    pub metric: Metric,
    /// Suite model ids: one, or two for `difference` / `ratio` (first − / ÷ second).
    pub models: Vec<String>,
    pub of: Combine,
    /// Split the claim is about; `None` = the run's primary split.
    pub split: Option<String>,
    pub compare: Op,
    pub value: f64,
    pub tolerance: Option<Tolerance>,
    pub source: String,
    /// Where the claim was measured, in words.
    pub hardware: String,
    /// The same as a clsbench hardware slug (`t4`, `cpu-xeon-2c`): speed claims are judged only
    /// when it equals the run's slug.
    pub hardware_slug: Option<String>,
}

impl Claim {
    /// "macro_f1(qwen − modernbert)", for tables.
    pub fn quantity(&self) -> String {
        match self.of {
            Combine::Value => format!("{}({})", self.metric.name(), self.models[0]),
            Combine::Difference => format!("{}({} − {})", self.metric.name(), self.models[0], self.models[1]),
            Combine::Ratio => format!("{}({} / {})", self.metric.name(), self.models[0], self.models[1]),
        }
    }

    /// "~= 0.5697 ± 0.005", for tables.
    pub fn claimed(&self) -> String {
        match self.tolerance {
            Some(t) => format!("{} {} ± {}", self.compare.symbol(), fmt_value(self.value), t.describe()),
            None => format!("{} {}", self.compare.symbol(), fmt_value(self.value)),
        }
    }
}

/// A number as a reader wants it: integers bare, otherwise 4 decimals (6 below 0.01), without
/// trailing zeros.
pub(crate) fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        return format!("{v:.0}");
    }
    let s = if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else if v.abs() >= 0.01 {
        format!("{v:.4}")
    } else {
        format!("{v:.6}")
    };
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ClaimsFile {
    pub path: PathBuf,
    pub title: String,
    /// The suites the claims are about: `verify` refuses runs of other suites.
    pub suites: Vec<SuiteRef>,
    pub claims: Vec<Claim>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    title: String,
    /// Path of the suite file (or files), relative to the claims file.
    suite: OneOrMany,
    #[serde(default)]
    defaults: RawDefaults,
    claims: Vec<Spanned<RawClaim>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    split: Option<String>,
    source: Option<String>,
    hardware: Option<String>,
    hardware_slug: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClaim {
    id: String,
    statement: String,
    metric: String,
    model: Option<String>,
    models: Option<Vec<String>>,
    of: Option<String>,
    split: Option<String>,
    compare: String,
    value: Option<f64>,
    tolerance: Option<toml::Value>,
    source: Option<String>,
    hardware: Option<String>,
    hardware_slug: Option<String>,
}

/// A suite a claims file is about.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteRef {
    pub name: String,
    /// The suite file, resolved against the claims file's directory.
    pub path: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl ClaimsFile {
    /// Read, parse and validate a claims file, including its model ids against its suites.
    pub fn load(path: &Path) -> Result<ClaimsFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let (title, suite_paths, claims) = parse(&text, path)?;
        let mut suites = Vec::new();
        for rel in &suite_paths {
            let suite = Suite::load(&base.join(rel)).map_err(|e| {
                Error::bad_input(format!("{}: field `suite` = {:?}: {e}", path.display(), rel.display()))
            })?;
            suites.push(suite);
        }
        check_against_suites(&claims, &suites, path)?;
        let suites = suites
            .into_iter()
            .zip(&suite_paths)
            .map(|(s, rel)| SuiteRef {
                name: s.name,
                path: base.join(rel),
            })
            .collect();
        Ok(ClaimsFile {
            path: path.to_path_buf(),
            title,
            suites,
            claims,
        })
    }

    pub fn suite_names(&self) -> Vec<&str> {
        self.suites.iter().map(|s| s.name.as_str()).collect()
    }
}

/// Parse claims text without reading the suites (model ids unchecked): (title, suite paths, claims).
pub fn parse(text: &str, origin: &Path) -> Result<(String, Vec<PathBuf>, Vec<Claim>)> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| format!(" line {}:", line_of(s.start)))
            .unwrap_or_default();
        Error::bad_input(format!("{}:{at} {}", origin.display(), e.message().trim()))
    })?;
    let mut ids = BTreeSet::new();
    let mut claims = Vec::new();
    for spanned in raw.claims {
        let line = line_of(spanned.span().start);
        let rc = spanned.into_inner();
        let at = format!("{} line {line}: claim {:?}", origin.display(), rc.id);
        if !ids.insert(rc.id.clone()) {
            return Err(Error::bad_input(format!("{at}: field `id`: duplicate claim id")));
        }
        let claim = validate_claim(rc, line, &raw.defaults).map_err(|msg| Error::bad_input(format!("{at}: {msg}")))?;
        claims.push(claim);
    }
    if claims.is_empty() {
        return Err(Error::bad_input(format!(
            "{}: field `claims`: expected at least one [[claims]] entry",
            origin.display()
        )));
    }
    let suites = match raw.suite {
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(ps) if !ps.is_empty() => ps,
        OneOrMany::Many(_) => {
            return Err(Error::bad_input(format!(
                "{}: field `suite`: expected at least one suite file",
                origin.display()
            )))
        }
    };
    Ok((raw.title, suites, claims))
}

fn validate_claim(rc: RawClaim, line: usize, defaults: &RawDefaults) -> std::result::Result<Claim, String> {
    let metric = Metric::parse(&rc.metric).ok_or_else(|| {
        let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        format!(
            "field `metric`: unknown metric {:?}; expected one of {}",
            rc.metric,
            names.join(", ")
        )
    })?;
    let compare = Op::parse(&rc.compare).ok_or_else(|| {
        let ops: Vec<&str> = Op::ALL.iter().map(|o| o.symbol()).collect();
        format!(
            "field `compare`: unknown comparison {:?}; expected one of {}",
            rc.compare,
            ops.join(", ")
        )
    })?;
    let models = match (rc.model, rc.models) {
        (Some(m), None) => vec![m],
        (None, Some(ms)) => ms,
        (Some(_), Some(_)) => return Err("give either `model` or `models`, not both".into()),
        (None, None) => return Err("missing field `model` (one model) or `models` (two models)".into()),
    };
    let of = match (rc.of.as_deref(), models.len()) {
        (None | Some("value"), 1) => Combine::Value,
        (None | Some("difference"), 2) => Combine::Difference,
        (Some("ratio"), 2) => Combine::Ratio,
        (Some(o @ ("value" | "difference" | "ratio")), n) => {
            return Err(format!(
                "field `of` = {o:?} needs {} model(s), got {n}",
                if o == "value" { 1 } else { 2 }
            ))
        }
        (Some(o), _) => {
            return Err(format!(
                "field `of`: unknown {o:?}; expected \"value\", \"difference\" or \"ratio\""
            ))
        }
        (None, n) => return Err(format!("field `models`: expected one or two model ids, got {n}")),
    };
    if models.len() == 2 && models[0] == models[1] {
        return Err(format!("field `models`: the two models are the same ({:?})", models[0]));
    }
    let value = match (rc.value, of, compare) {
        (Some(v), _, _) if !v.is_finite() => return Err(format!("field `value`: expected a finite number, got {v}")),
        (Some(v), _, _) => v,
        // "A beats B" needs no number: the difference is compared with 0.
        (None, Combine::Difference, Op::Gt | Op::Lt | Op::Ge | Op::Le) => 0.0,
        (None, _, _) => return Err("missing field `value` (the claimed number)".into()),
    };
    let tolerance = match (&rc.tolerance, compare) {
        (Some(t), Op::Approx) => Some(Tolerance::parse(t)?),
        (None, Op::Approx) => {
            return Err("compare = \"~=\" needs a `tolerance` (e.g. 0.005, or \"25%\" of the claimed value)".into())
        }
        (Some(_), op) => {
            return Err(format!(
                "field `tolerance` only applies to compare = \"~=\" (this claim uses {:?})",
                op.symbol()
            ))
        }
        (None, _) => None,
    };
    if of == Combine::Ratio && value <= 0.0 {
        return Err(format!("field `value`: a ratio is positive, got {value}"));
    }
    let split = rc.split.or_else(|| defaults.split.clone());
    let hardware_slug = rc.hardware_slug.or_else(|| defaults.hardware_slug.clone());
    if metric.is_speed() && hardware_slug.is_none() {
        return Err(format!(
            "metric {:?} is a speed number: give `hardware_slug` (e.g. \"t4\", \"cpu-xeon-2c\") so verify knows \
             whether our timing is comparable",
            metric.name()
        ));
    }
    Ok(Claim {
        id: rc.id,
        line,
        statement: rc.statement,
        metric,
        models,
        of,
        split,
        compare,
        value,
        tolerance,
        source: rc.source.or_else(|| defaults.source.clone()).unwrap_or_default(),
        hardware: rc.hardware.or_else(|| defaults.hardware.clone()).unwrap_or_default(),
        hardware_slug,
    })
}

/// Some suite must hold all of a claim's models and evaluate its split.
fn check_against_suites(claims: &[Claim], suites: &[Suite], origin: &Path) -> Result<()> {
    let has_models = |s: &Suite, c: &Claim| c.models.iter().all(|id| s.models.iter().any(|m| &m.id == id));
    let evaluates = |s: &Suite, split: &str| s.evaluation.splits.iter().any(|x| x.as_str() == split);
    for c in claims {
        let at = format!("{} line {}: claim {:?}", origin.display(), c.line, c.id);
        let holding: Vec<&Suite> = suites.iter().filter(|s| has_models(s, c)).collect();
        if holding.is_empty() {
            let unknown = c
                .models
                .iter()
                .find(|id| !suites.iter().any(|s| s.models.iter().any(|m| &m.id == *id)));
            let listing: Vec<String> = suites
                .iter()
                .map(|s| {
                    let ids: Vec<&str> = s.models.iter().map(|m| m.id.as_str()).collect();
                    format!("suite {:?} has {}", s.name, ids.join(", "))
                })
                .collect();
            let what = match unknown {
                Some(id) => format!("unknown model {id:?}"),
                None => format!("no suite has all of the models {:?}", c.models),
            };
            return Err(Error::bad_input(format!("{at}: {what}: {}", listing.join("; "))));
        }
        if let Some(split) = &c.split {
            if !holding.iter().any(|s| evaluates(s, split)) {
                let s = holding[0];
                let splits: Vec<&str> = s.evaluation.splits.iter().map(|x| x.as_str()).collect();
                return Err(Error::bad_input(format!(
                    "{at}: field `split`: {split:?} is not evaluated by suite {:?} (evaluation.splits = [{}])",
                    s.name,
                    splits.join(", ")
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "title = \"t\"\nsuite = \"s.toml\"\n[defaults]\nsplit = \"val\"\nhardware_slug = \"t4\"\n";

    fn parse_claim(body: &str) -> Result<Vec<Claim>> {
        parse(
            &format!("{HEAD}\n[[claims]]\nid = \"c1\"\nstatement = \"s\"\n{body}"),
            Path::new("claims.toml"),
        )
        .map(|(_, _, c)| c)
    }

    fn err(body: &str) -> String {
        parse_claim(body).unwrap_err().to_string()
    }

    #[test]
    fn parses_value_difference_and_ratio_claims() {
        let c = parse_claim("metric = \"accuracy\"\nmodel = \"a\"\ncompare = \"~=\"\nvalue = 0.57\ntolerance = 0.005")
            .unwrap();
        assert_eq!(
            (c[0].of, c[0].compare, c[0].tolerance),
            (Combine::Value, Op::Approx, Some(Tolerance::Absolute(0.005)))
        );
        assert_eq!(c[0].line, 7, "the line of [[claims]]");
        assert_eq!(c[0].split.as_deref(), Some("val"), "from [defaults]");
        let c = parse_claim("metric = \"macro_f1\"\nmodels = [\"a\", \"b\"]\ncompare = \">\"").unwrap();
        assert_eq!(
            (c[0].of, c[0].value),
            (Combine::Difference, 0.0),
            "A beats B: difference > 0"
        );
        let c = parse_claim("metric = \"latency_ms\"\nmodels = [\"a\", \"b\"]\nof = \"ratio\"\ncompare = \"~=\"\nvalue = 19\ntolerance = \"25%\"").unwrap();
        assert_eq!(c[0].tolerance, Some(Tolerance::Relative(0.25)));
        assert_eq!(c[0].tolerance.unwrap().absolute(c[0].value), 4.75);
        assert_eq!(c[0].hardware_slug.as_deref(), Some("t4"));
    }

    #[test]
    fn unknown_metric_is_named_with_the_alternatives() {
        let e = err("metric = \"acc\"\nmodel = \"a\"\ncompare = \">=\"\nvalue = 0.5");
        assert!(
            e.contains("claims.toml line 7: claim \"c1\"")
                && e.contains("unknown metric \"acc\"")
                && e.contains("macro_f1"),
            "{e}"
        );
    }

    #[test]
    fn malformed_tolerances_are_refused() {
        for (tol, needle) in [
            ("\"5\"", "\"5\" is not a percentage"),
            ("\"x%\"", "not a percentage"),
            ("-0.1", "got -0.1"),
            ("[1]", "got [1]"),
            ("\"-3%\"", "got \"-3%\""),
        ] {
            let e = err(&format!(
                "metric = \"accuracy\"\nmodel = \"a\"\ncompare = \"~=\"\nvalue = 0.5\ntolerance = {tol}"
            ));
            assert!(e.contains("field `tolerance`") && e.contains(needle), "{tol}: {e}");
        }
        let e = err("metric = \"accuracy\"\nmodel = \"a\"\ncompare = \"~=\"\nvalue = 0.5");
        assert!(e.contains("needs a `tolerance`"), "{e}");
        let e = err("metric = \"accuracy\"\nmodel = \"a\"\ncompare = \">=\"\nvalue = 0.5\ntolerance = 0.1");
        assert!(e.contains("only applies to compare = \"~=\""), "{e}");
    }

    #[test]
    fn other_mistakes_name_the_field() {
        assert!(
            err("metric = \"accuracy\"\nmodel = \"a\"\ncompare = \"==\"\nvalue = 0.5")
                .contains("unknown comparison \"==\"")
        );
        assert!(err("metric = \"accuracy\"\nmodel = \"a\"\ncompare = \">=\"").contains("missing field `value`"));
        assert!(
            err("metric = \"accuracy\"\nmodels = [\"a\", \"b\", \"c\"]\ncompare = \">\"")
                .contains("one or two model ids")
        );
        assert!(
            err("metric = \"accuracy\"\nmodel = \"a\"\nof = \"ratio\"\ncompare = \">\"\nvalue = 1")
                .contains("needs 2 model(s)")
        );
        assert!(
            err("metric = \"accuracy\"\nmodel = \"a\"\ncompare = \">\"\nvalue = 1\nunit = \"x\"")
                .contains("unknown field `unit`")
        );
        let e = parse("suite = \"s.toml\"\n[[claims]]\nid = \"c\"\nstatement = \"s\"\nmetric = \"latency_ms\"\nmodel = \"a\"\ncompare = \"<=\"\nvalue = 3", Path::new("x.toml"));
        assert!(e.unwrap_err().to_string().contains("give `hardware_slug`"));
    }

    #[test]
    fn model_ids_and_splits_are_checked_against_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny");
        for f in ["suite.toml", "complaints.csv"] {
            std::fs::copy(tiny.join(f), dir.path().join(f)).unwrap();
        }
        let write = |body: &str| {
            let p = dir.path().join("claims.toml");
            std::fs::write(
                &p,
                format!("suite = \"suite.toml\"\n\n[[claims]]\nid = \"c\"\nstatement = \"s\"\n{body}"),
            )
            .unwrap();
            ClaimsFile::load(&p)
        };
        let ok = write("metric = \"accuracy\"\nmodel = \"tfidf-lr\"\ncompare = \">=\"\nvalue = 0.5").unwrap();
        assert_eq!(ok.suite_names(), ["tiny"]);
        let e = write("metric = \"accuracy\"\nmodels = [\"tfidf-lr\", \"bert\"]\ncompare = \">\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 3: claim \"c\": unknown model \"bert\"") && e.contains("tfidf-lr, tfidf-lr-unigram"),
            "{e}"
        );
        let e = write("metric = \"accuracy\"\nmodel = \"tfidf-lr\"\nsplit = \"dev\"\ncompare = \">=\"\nvalue = 0.5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"dev\" is not evaluated"), "{e}");
    }

    #[test]
    fn the_seed_claims_file_loads_against_the_cfpb113_suite() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/claims/half-a-percent.toml");
        let f = ClaimsFile::load(&path).unwrap();
        assert_eq!(f.suite_names(), ["cfpb113"]);
        let get = |id: &str| {
            f.claims
                .iter()
                .find(|c| c.id == id)
                .unwrap_or_else(|| panic!("no claim {id}"))
        };
        assert_eq!(
            (get("dec05_val_acc").value, get("enc_ft_val_acc").value),
            (0.5697, 0.5659)
        );
        assert_eq!(get("dec_beats_enc_macro_f1").compare, Op::Gt);
        assert_eq!(get("rare_classes_rescued_delta").value, 9.0);
        assert_eq!(get("lat_ratio_19x").of, Combine::Ratio);
        assert_eq!(get("dec05_trainable_share").metric, Metric::TrainableShare);
        assert_eq!(get("tfidf_test_acc").split.as_deref(), Some("test"));
    }

    #[test]
    fn the_cpu_analog_claims_file_loads_against_both_cpu_suites() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/claims/cfpb-issues-mini.toml");
        let f = ClaimsFile::load(&path).unwrap();
        assert_eq!(f.suite_names(), ["cfpb-issues-mini", "default"]);
        let ratio = f.claims.iter().find(|c| c.id == "lat_ratio_19x").unwrap();
        assert_eq!((ratio.of, ratio.hardware_slug.as_deref()), (Combine::Ratio, Some("t4")));
    }

    #[test]
    fn a_file_about_several_suites_needs_one_suite_holding_all_models_of_a_claim() {
        let dir = tempfile::tempdir().unwrap();
        let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny");
        std::fs::copy(tiny.join("complaints.csv"), dir.path().join("complaints.csv")).unwrap();
        let text = std::fs::read_to_string(tiny.join("suite.toml")).unwrap();
        std::fs::write(dir.path().join("a.toml"), &text).unwrap();
        let other = text
            .replace("name = \"tiny\"", "name = \"tiny-b\"")
            .replace("id = \"tfidf-lr-unigram\"", "id = \"only-in-b\"");
        std::fs::write(dir.path().join("b.toml"), other).unwrap();
        let write = |models: &str| {
            let p = dir.path().join("claims.toml");
            let body = format!("suite = [\"a.toml\", \"b.toml\"]\n[[claims]]\nid = \"c\"\nstatement = \"s\"\nmetric = \"accuracy\"\nmodels = {models}\ncompare = \">\"");
            std::fs::write(&p, body).unwrap();
            ClaimsFile::load(&p)
        };
        assert_eq!(
            write("[\"tfidf-lr\", \"only-in-b\"]").unwrap().suite_names(),
            ["tiny", "tiny-b"]
        );
        let e = write("[\"tfidf-lr-unigram\", \"only-in-b\"]").unwrap_err().to_string();
        assert!(e.contains("no suite has all of the models"), "{e}");
    }
}
