//! `verdicts.md` (a table a person reads) and `verdicts.json` (the same, for programs).

use super::file::fmt_value;
use super::{CiKind, Verdict, VerifyReport};
use crate::error::Result;
use std::fmt::Write;
use std::path::Path;

/// Write `verdicts.md` and `verdicts.json` into `dir`.
pub fn write(dir: &Path, report: &VerifyReport) -> Result<()> {
    crate::fsutil::write_json_atomic(&dir.join("verdicts.json"), report)?;
    crate::fsutil::write_atomic(&dir.join("verdicts.md"), render(report).as_bytes())
}

fn cell(s: &str) -> String {
    s.replace('|', "/").replace('\n', " ")
}

pub fn render(r: &VerifyReport) -> String {
    let mut s = String::new();
    let conf = r.confidence * 100.0;
    let title = if r.title.is_empty() { "Claims" } else { &r.title };
    let _ = writeln!(s, "# {title}: verdicts\n");
    let _ = writeln!(
        s,
        "Claims `{}` (sha256 `{}`) against run `{}` of suite `{}` (`{}`, clsbench {}), hardware `{}`.\n",
        r.claims_file,
        &r.claims_sha256[..12.min(r.claims_sha256.len())],
        r.run_id,
        r.suite,
        r.results_file,
        r.git_rev,
        r.hardware_slug
    );
    let counts: Vec<String> = Verdict::ALL
        .iter()
        .map(|v| format!("{} {}", r.count(*v), v.name()))
        .collect();
    let _ = writeln!(s, "{} claims: {}.\n", r.verdicts.len(), counts.join(", "));
    let _ = writeln!(
        s,
        "| claim | quantity | split | claimed | ours | {conf:.0}% CI | verdict | why |\n|---|---|---|---|---:|---|---|---|"
    );
    for v in &r.verdicts {
        let claimed = match v.tolerance {
            Some(t) => format!("{} {} ± {}", v.compare.symbol(), fmt_value(v.claimed), t.describe()),
            None => format!("{} {}", v.compare.symbol(), fmt_value(v.claimed)),
        };
        let ci = match (v.ci, v.ci_kind) {
            (Some(ci), CiKind::PairedPercentile) => {
                format!("[{}, {}] paired", fmt_value(ci.lower), fmt_value(ci.upper))
            }
            (Some(ci), CiKind::SeedAware | CiKind::SeedAwareDifference) => {
                format!("[{}, {}] seeds", fmt_value(ci.lower), fmt_value(ci.upper))
            }
            (Some(ci), _) => format!("[{}, {}]", fmt_value(ci.lower), fmt_value(ci.upper)),
            (None, _) if v.ours.is_some() => "none".to_string(),
            (None, _) => String::new(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | **{}** | {} |",
            cell(&v.id),
            cell(&v.quantity),
            v.split,
            claimed,
            v.ours.map(fmt_value).unwrap_or_else(|| "—".into()),
            ci,
            v.verdict.name(),
            cell(&v.reason)
        );
    }
    let _ = writeln!(
        s,
        "\nVerdicts: **reproduced** = the claimed value lies inside our CI or within the tolerance, or the claimed \
         direction holds with the CI excluding the threshold; **contradicted** = our CI excludes the claimed value \
         ± tolerance, or the opposite direction is significant; **inconclusive** = the CI is too wide to say, or \
         the number was not recorded; **not-run** = a model or split is missing from this run; \
         **hardware-differs** = a speed claim measured on other hardware (ours shown beside theirs, not judged). \
         Numbers without a CI (zero-F1 counts, ratios, speed, parameter shares) are compared as points. \
         `paired` = the paired document bootstrap of a difference; `seeds` = the seed-aware interval of the mean over \
         training seeds (runs with several seeds: two-level bootstrap, README \"Training seeds\"). An accuracy-gap \
         claim below the split's minimum detectable effect is inconclusive, not reproduced.\n"
    );
    let _ = writeln!(s, "## Claims\n");
    for v in &r.verdicts {
        let models: Vec<String> = v
            .per_model
            .iter()
            .map(|(m, x)| format!("{m} = {}", fmt_value(*x)))
            .collect();
        let _ = writeln!(
            s,
            "- **{}** — {} Source: {}. Hardware: {}.{}",
            v.id,
            v.statement.trim(),
            if v.source.is_empty() { "not given" } else { &v.source },
            if v.hardware.is_empty() {
                "not given"
            } else {
                &v.hardware
            },
            if models.is_empty() {
                String::new()
            } else {
                format!(" Ours: {}.", models.join(", "))
            }
        );
    }
    s
}
