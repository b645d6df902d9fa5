//! Label processing as in the seed (`utils/data_utils.py`): map raw labels through the merge
//! map, keep rows whose merged label is in the label list, drop classes below a minimum count.

use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Raw label -> canonical label. Keys starting with `_` are comments and are ignored.
pub fn read_merge_map(path: &Path) -> Result<HashMap<String, String>> {
    let value: serde_json::Value = crate::fsutil::read_json(path)?;
    let obj = value.as_object().ok_or_else(|| {
        Error::bad_input(format!(
            "{}: expected a JSON object raw label -> canonical label",
            path.display()
        ))
    })?;
    let mut map = HashMap::new();
    for (k, v) in obj {
        if k.starts_with('_') {
            continue;
        }
        let v = v.as_str().ok_or_else(|| {
            Error::bad_input(format!(
                "{}: key {k:?}: expected a string (the canonical label), got {v}",
                path.display()
            ))
        })?;
        map.insert(k.clone(), v.to_string());
    }
    Ok(map)
}

/// The class names, in class-id order.
pub fn read_label_list(path: &Path) -> Result<Vec<String>> {
    let value: serde_json::Value = crate::fsutil::read_json(path)?;
    let arr = value
        .as_array()
        .ok_or_else(|| Error::bad_input(format!("{}: expected a JSON array of class names", path.display())))?;
    let mut out = Vec::with_capacity(arr.len());
    for (i, v) in arr.iter().enumerate() {
        let s = v
            .as_str()
            .ok_or_else(|| Error::bad_input(format!("{}: element {i}: expected a string, got {v}", path.display())))?;
        out.push(s.to_string());
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = out.iter().find(|s| !seen.insert(s.as_str())) {
        return Err(Error::bad_input(format!(
            "{}: class {dup:?} is listed twice",
            path.display()
        )));
    }
    Ok(out)
}

/// What label processing did, for `describe` and the manifest.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct LabelReport {
    pub raw_classes: usize,
    pub merged_classes: usize,
    pub rows_merged: usize,
    /// Rows dropped because their merged label is not in the label list.
    pub rows_not_in_list: usize,
    /// Classes (and their rows) dropped by the minimum count.
    pub classes_below_min_count: Vec<(String, usize)>,
    pub rows_below_min_count: usize,
    pub final_classes: usize,
}

/// Decide the class list from merged labels and their counts over all rows.
///
/// With a label list, classes are the list (rows outside it are dropped when `drop_unlisted`,
/// else an error); without one, the sorted distinct labels. `min_count` then removes classes
/// with fewer rows. Returns the classes and, per input label, its class id (None = dropped).
pub fn decide_classes(
    merged: &[String],
    label_list: Option<&[String]>,
    min_count: Option<usize>,
    drop_unlisted: bool,
    origin: &str,
    report: &mut LabelReport,
) -> Result<(Vec<String>, Vec<Option<usize>>)> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for l in merged {
        *counts.entry(l.as_str()).or_default() += 1;
    }
    report.merged_classes = counts.len();
    let mut classes: Vec<String> = match label_list {
        Some(list) => {
            let listed: std::collections::HashSet<&str> = list.iter().map(|s| s.as_str()).collect();
            let unlisted: Vec<(&str, usize)> = counts
                .iter()
                .filter(|(l, _)| !listed.contains(*l))
                .map(|(l, c)| (*l, *c))
                .collect();
            if !unlisted.is_empty() && !drop_unlisted {
                let shown: Vec<String> = unlisted
                    .iter()
                    .take(5)
                    .map(|(l, c)| format!("{l:?} ({c} rows)"))
                    .collect();
                return Err(Error::bad_input(format!(
                    "{origin}: {} label(s) are not in the label list after merging, e.g. {}; add them to the merge map or \
                     the list, or set `labels.drop_unlisted = true` to drop their rows",
                    unlisted.len(),
                    shown.join(", ")
                )));
            }
            report.rows_not_in_list = unlisted.iter().map(|(_, c)| c).sum();
            list.to_vec()
        }
        // BTreeMap order is byte order, which is Python's sorted() order for str.
        None => counts.keys().map(|s| s.to_string()).collect(),
    };
    if let Some(min) = min_count {
        let (keep, drop): (Vec<String>, Vec<String>) = classes
            .into_iter()
            .partition(|c| counts.get(c.as_str()).copied().unwrap_or(0) >= min);
        for c in drop {
            let n = counts.get(c.as_str()).copied().unwrap_or(0);
            report.rows_below_min_count += n;
            report.classes_below_min_count.push((c, n));
        }
        classes = keep;
    }
    let id_of: HashMap<&str, usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let ids = merged.iter().map(|l| id_of.get(l.as_str()).copied()).collect();
    report.final_classes = classes.len();
    Ok((classes, ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn seed_merge_map_loads_and_skips_comments() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/seed/label_merge_mapping.json");
        let map = read_merge_map(&p).unwrap();
        assert_eq!(
            map.len(),
            36,
            "36 mapping entries per the protocol; `_`-keys are comments"
        );
        assert!(map.keys().all(|k| !k.starts_with('_')));
        assert_eq!(map["Improper use of my credit report"], "Improper use of your report");
    }

    #[test]
    fn classes_sort_like_python_and_min_count_drops() {
        let merged = s(&["b", "a", "B", "a", "b", "a"]);
        let mut r = LabelReport::default();
        let (classes, ids) = decide_classes(&merged, None, Some(2), false, "x", &mut r).unwrap();
        assert_eq!(
            classes,
            s(&["a", "b"]),
            "uppercase sorts first, then is dropped by min_count"
        );
        assert_eq!(ids, vec![Some(1), Some(0), None, Some(0), Some(1), Some(0)]);
        assert_eq!(r.classes_below_min_count, vec![("B".to_string(), 1)]);
    }

    #[test]
    fn unlisted_label_is_an_error_unless_dropped() {
        let merged = s(&["a", "zzz"]);
        let list = s(&["a"]);
        let err = decide_classes(
            &merged,
            Some(&list),
            None,
            false,
            "data.csv",
            &mut LabelReport::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("data.csv") && err.contains("\"zzz\""), "{err}");
        let mut r = LabelReport::default();
        let (_, ids) = decide_classes(&merged, Some(&list), None, true, "data.csv", &mut r).unwrap();
        assert_eq!(ids, vec![Some(0), None]);
        assert_eq!(r.rows_not_in_list, 1);
    }
}
