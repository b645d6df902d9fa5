//! The price table: US dollars per hour for each hardware slug, every entry with its source
//! and date. The built-in table is `harness/clsbench/prices.toml`, compiled in; a suite's
//! `[perf] prices` file overrides it slug by slug.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The built-in table, compiled in so that a results file never depends on where the binary runs.
pub const BUILTIN_PRICES_TOML: &str = include_str!("../../prices.toml");
/// How results name the built-in table.
pub const BUILTIN_ORIGIN: &str = "built-in harness/clsbench/prices.toml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceEntry {
    /// A hardware slug, or a pattern with one `*` (`cpu-*-2c`).
    pub slug: String,
    pub usd_per_hour: f64,
    /// Where the number comes from: provider, instance type, region (or a URL).
    pub source: String,
    /// When the price was read: `YYYY-MM` or `YYYY-MM-DD`.
    pub date: String,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default)]
    price: Vec<PriceEntry>,
}

/// A price as applied to a result: the entry and the table it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedPrice {
    #[serde(flatten)]
    pub entry: PriceEntry,
    /// `built-in harness/clsbench/prices.toml` or the path of the user's table.
    pub table: String,
}

/// Price entries in lookup order: user tables first, the built-in table last.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    entries: Vec<(PriceEntry, String)>,
}

impl PriceTable {
    /// The compiled-in table.
    pub fn builtin() -> Result<PriceTable> {
        PriceTable::parse(BUILTIN_PRICES_TOML, BUILTIN_ORIGIN)
    }

    /// The built-in table, overridden by `user` when given (the suite's `[perf] prices`).
    pub fn with_user_file(user: Option<&Path>) -> Result<PriceTable> {
        let builtin = PriceTable::builtin()?;
        match user {
            None => Ok(builtin),
            Some(path) => Ok(PriceTable::load(path)?.overriding(builtin)),
        }
    }

    pub fn load(path: &Path) -> Result<PriceTable> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        PriceTable::parse(&text, &path.display().to_string())
    }

    /// Parse and validate a table; `origin` names it in errors and in results.
    pub fn parse(text: &str, origin: &str) -> Result<PriceTable> {
        let file: PriceFile = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| format!(" line {}:", text[..s.start.min(text.len())].matches('\n').count() + 1))
                .unwrap_or_default();
            Error::bad_input(format!(
                "{origin}:{at} {} (each [[price]] needs slug, usd_per_hour, source and date)",
                e.message().trim()
            ))
        })?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in file.price.iter().enumerate() {
            let at = format!("{origin}: [[price]] #{} (slug {:?})", i + 1, p.slug);
            validate_entry(p).map_err(|msg| Error::bad_input(format!("{at}: {msg}")))?;
            if !seen.insert(p.slug.as_str()) {
                return Err(Error::bad_input(format!(
                    "{at}: duplicate slug; each slug may be priced once per table"
                )));
            }
        }
        Ok(PriceTable {
            entries: file.price.into_iter().map(|p| (p, origin.to_string())).collect(),
        })
    }

    /// This table's entries win; `fallback`'s are consulted after them.
    pub fn overriding(mut self, fallback: PriceTable) -> PriceTable {
        self.entries.extend(fallback.entries);
        self
    }

    /// The price for a slug: the first exact match in lookup order, else the first pattern
    /// that matches. `None` means the cost is unknown (never zero).
    pub fn lookup(&self, slug: &str) -> Option<AppliedPrice> {
        let applied = |(e, t): &(PriceEntry, String)| AppliedPrice {
            entry: e.clone(),
            table: t.clone(),
        };
        self.entries
            .iter()
            .find(|(e, _)| e.slug == slug)
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|(e, _)| e.slug.contains('*') && glob_matches(&e.slug, slug))
            })
            .map(applied)
    }

    pub fn entries(&self) -> impl Iterator<Item = (&PriceEntry, &str)> {
        self.entries.iter().map(|(e, t)| (e, t.as_str()))
    }
}

fn validate_entry(p: &PriceEntry) -> std::result::Result<(), String> {
    if p.slug.trim().is_empty() || p.slug.matches('*').count() > 1 {
        return Err("field `slug`: expected a hardware slug with at most one `*`".into());
    }
    if !(p.usd_per_hour.is_finite() && p.usd_per_hour > 0.0) {
        return Err(format!(
            "field `usd_per_hour`: expected a positive number of US dollars, got {}",
            p.usd_per_hour
        ));
    }
    if p.source.trim().is_empty() {
        return Err(
            "field `source`: empty; say where the price comes from (provider, instance type, region or URL)".into(),
        );
    }
    if !valid_date(&p.date) {
        return Err(format!(
            "field `date`: expected YYYY-MM or YYYY-MM-DD (when the price was read), got {:?}",
            p.date
        ));
    }
    Ok(())
}

fn valid_date(date: &str) -> bool {
    let parts: Vec<&str> = date.split('-').collect();
    let num = |s: &str, len: usize, lo: u32, hi: u32| {
        s.len() == len
            && s.chars().all(|c| c.is_ascii_digit())
            && s.parse::<u32>().is_ok_and(|v| (lo..=hi).contains(&v))
    };
    match parts.as_slice() {
        [y, m] => num(y, 4, 1990, 2999) && num(m, 2, 1, 12),
        [y, m, d] => num(y, 4, 1990, 2999) && num(m, 2, 1, 12) && num(d, 2, 1, 31),
        _ => false,
    }
}

/// `prefix*suffix` matching; a single `*` is all a slug pattern needs, so no glob crate.
fn glob_matches(pattern: &str, slug: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == slug,
        Some((pre, suf)) => slug.len() >= pre.len() + suf.len() && slug.starts_with(pre) && slug.ends_with(suf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_parses_and_every_entry_has_source_and_date() {
        let t = PriceTable::builtin().unwrap();
        for slug in ["t4", "l4", "a10g", "a100", "h100", "h200"] {
            let p = t.lookup(slug).unwrap_or_else(|| panic!("built-in table lacks {slug}"));
            assert!(!p.entry.source.is_empty() && valid_date(&p.entry.date));
            assert_eq!(p.table, BUILTIN_ORIGIN);
        }
    }

    #[test]
    fn cpu_slugs_match_by_thread_count_pattern() {
        let t = PriceTable::builtin().unwrap();
        assert_eq!(t.lookup("cpu-xeon-2c").unwrap().entry.slug, "cpu-*-2c");
        assert_eq!(t.lookup("cpu-epyc-16c").unwrap().entry.slug, "cpu-*-16c");
        // The pattern's suffix includes the dash, so 12 threads are not priced as 2.
        assert!(t.lookup("cpu-xeon-12c").is_none());
    }

    #[test]
    fn unknown_slug_has_no_price() {
        let t = PriceTable::builtin().unwrap();
        assert!(t.lookup("tpu-v5e").is_none());
    }

    #[test]
    fn entry_without_source_is_rejected_with_file_and_line() {
        let text = "[[price]]\nslug = \"t4\"\nusd_per_hour = 0.5\ndate = \"2024-06\"\n";
        let err = PriceTable::parse(text, "mine.toml").unwrap_err().to_string();
        assert!(
            err.contains("mine.toml") && err.contains("source") && err.contains("line"),
            "{err}"
        );
    }

    #[test]
    fn entry_with_empty_source_or_bad_date_is_rejected() {
        let empty = "[[price]]\nslug = \"t4\"\nusd_per_hour = 0.5\nsource = \" \"\ndate = \"2024-06\"\n";
        let err = PriceTable::parse(empty, "mine.toml").unwrap_err().to_string();
        assert!(err.contains("source") && err.contains("\"t4\""), "{err}");
        let bad_date = "[[price]]\nslug = \"t4\"\nusd_per_hour = 0.5\nsource = \"me\"\ndate = \"June\"\n";
        let err = PriceTable::parse(bad_date, "mine.toml").unwrap_err().to_string();
        assert!(err.contains("date") && err.contains("June"), "{err}");
        let no_date = "[[price]]\nslug = \"t4\"\nusd_per_hour = 0.5\nsource = \"me\"\n";
        assert!(PriceTable::parse(no_date, "mine.toml")
            .unwrap_err()
            .to_string()
            .contains("date"));
    }

    #[test]
    fn non_positive_price_and_duplicates_are_rejected() {
        let zero = "[[price]]\nslug = \"t4\"\nusd_per_hour = 0.0\nsource = \"me\"\ndate = \"2024-06\"\n";
        assert!(PriceTable::parse(zero, "m")
            .unwrap_err()
            .to_string()
            .contains("usd_per_hour"));
        let one = "[[price]]\nslug = \"t4\"\nusd_per_hour = 1.0\nsource = \"me\"\ndate = \"2024-06\"\n";
        let dup = format!("{one}{one}");
        assert!(PriceTable::parse(&dup, "m")
            .unwrap_err()
            .to_string()
            .contains("duplicate"));
    }

    #[test]
    fn user_table_overrides_builtin_by_slug_and_is_named() {
        let user = "[[price]]\nslug = \"t4\"\nusd_per_hour = 0.35\nsource = \"GCP n1 + T4, us-central1\"\ndate = \"2025-01-15\"\n";
        let t = PriceTable::parse(user, "my-prices.toml")
            .unwrap()
            .overriding(PriceTable::builtin().unwrap());
        let p = t.lookup("t4").unwrap();
        assert_eq!((p.entry.usd_per_hour, p.table.as_str()), (0.35, "my-prices.toml"));
        assert_eq!(t.lookup("h100").unwrap().table, BUILTIN_ORIGIN);
    }

    #[test]
    fn exact_slug_wins_over_pattern() {
        let user = "[[price]]\nslug = \"cpu-*-2c\"\nusd_per_hour = 1.0\nsource = \"a\"\ndate = \"2024-01\"\n\
                    [[price]]\nslug = \"cpu-xeon-2c\"\nusd_per_hour = 2.0\nsource = \"b\"\ndate = \"2024-01\"\n";
        let t = PriceTable::parse(user, "m").unwrap();
        assert_eq!(t.lookup("cpu-xeon-2c").unwrap().entry.usd_per_hour, 2.0);
        assert_eq!(t.lookup("cpu-epyc-2c").unwrap().entry.usd_per_hour, 1.0);
    }
}
