//! Input of `clsbench score`: predictions made anywhere, as CSV in one of two shapes.
//!
//! - wide: `id,gold,<model>,<model>...` — one column of predicted labels per model;
//! - long: `id,model,gold,pred` — one row per document and model (the shape of pandas'
//!   `melt`). Every model must cover the same ids with the same gold label.
//!
//! Labels may be names or numbers; they are compared as text.

use crate::analysis::SplitAnalysis;
use crate::error::{Error, Result};
use crate::suite::EvaluationSpec;
use std::collections::HashMap;
use std::path::Path;

/// Predictions aligned on document ids (in the order of the first model's rows).
#[derive(Debug)]
pub struct ScoreTable {
    pub ids: Vec<String>,
    pub gold: Vec<String>,
    pub preds: Vec<(String, Vec<String>)>,
}

pub fn read(path: &Path) -> Result<ScoreTable> {
    let origin = path.display().to_string();
    let mut rdr = csv::Reader::from_path(path).map_err(|e| Error::bad_input(format!("{origin}: {e}")))?;
    let headers: Vec<String> = rdr
        .headers()
        .map_err(|e| Error::bad_input(format!("{origin}: cannot read the header: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let (Some(id_at), Some(gold_at)) = (col("id"), col("gold")) else {
        return Err(Error::bad_input(format!(
            "{origin}: expected columns `id,gold,<model>...` (wide) or `id,model,gold,pred` (long); the header has {}",
            headers.join(", ")
        )));
    };
    let long = col("model").zip(col("pred"));
    let mut records = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| Error::bad_input(format!("{origin}: data row {}: {e}", i + 1)))?;
        records.push(rec);
    }
    if records.is_empty() {
        return Err(Error::bad_input(format!("{origin}: no data rows")));
    }
    let line = |rec: &csv::StringRecord| rec.position().map(|p| p.line()).unwrap_or(0);
    match long {
        None => {
            let model_cols: Vec<usize> = (0..headers.len()).filter(|&c| c != id_at && c != gold_at).collect();
            if model_cols.is_empty() {
                return Err(Error::bad_input(format!(
                    "{origin}: no model columns besides `id` and `gold`"
                )));
            }
            let mut seen = std::collections::HashSet::new();
            let mut t = ScoreTable {
                ids: vec![],
                gold: vec![],
                preds: model_cols.iter().map(|&c| (headers[c].clone(), vec![])).collect(),
            };
            for rec in &records {
                let id = rec[id_at].to_string();
                if !seen.insert(id.clone()) {
                    return Err(Error::bad_input(format!(
                        "{origin}: line {}: id {id:?} occurs twice",
                        line(rec)
                    )));
                }
                t.ids.push(id);
                t.gold.push(non_empty(rec, gold_at, "gold", &origin)?);
                for (k, &c) in model_cols.iter().enumerate() {
                    t.preds[k].1.push(non_empty(rec, c, &headers[c], &origin)?);
                }
            }
            Ok(t)
        }
        Some((model_at, pred_at)) => {
            // The first model seen fixes the documents and their gold labels.
            let mut order: Vec<String> = Vec::new();
            let mut per_model: Vec<(String, HashMap<String, String>)> = Vec::new();
            let mut gold: HashMap<String, String> = HashMap::new();
            for rec in &records {
                let (id, model) = (rec[id_at].to_string(), rec[model_at].to_string());
                let g = non_empty(rec, gold_at, "gold", &origin)?;
                let p = non_empty(rec, pred_at, "pred", &origin)?;
                let k = match per_model.iter().position(|(m, _)| *m == model) {
                    Some(k) => k,
                    None => {
                        per_model.push((model.clone(), HashMap::new()));
                        per_model.len() - 1
                    }
                };
                if k == 0 {
                    if gold.insert(id.clone(), g.clone()).is_some() {
                        return Err(Error::bad_input(format!(
                            "{origin}: line {}: id {id:?} occurs twice for model {model:?}",
                            line(rec)
                        )));
                    }
                    order.push(id.clone());
                } else {
                    match gold.get(&id) {
                        None => {
                            return Err(Error::bad_input(format!(
                                "{origin}: line {}: unknown id {id:?} for model {model:?} (not among model {:?}'s ids)",
                                line(rec),
                                per_model[0].0
                            )))
                        }
                        Some(g0) if *g0 != g => {
                            return Err(Error::bad_input(format!(
                            "{origin}: line {}: id {id:?} has gold {g:?} for model {model:?} but {g0:?} for model {:?}",
                            line(rec),
                            per_model[0].0
                        )))
                        }
                        _ => {}
                    }
                }
                if per_model[k].1.insert(id.clone(), p).is_some() && k != 0 {
                    return Err(Error::bad_input(format!(
                        "{origin}: line {}: id {id:?} occurs twice for model {model:?}",
                        line(rec)
                    )));
                }
            }
            let mut preds = Vec::new();
            for (model, map) in per_model {
                let mut v = Vec::with_capacity(order.len());
                for id in &order {
                    v.push(map.get(id).cloned().ok_or_else(|| {
                        Error::bad_input(format!("{origin}: model {model:?} has no prediction for id {id:?}"))
                    })?);
                }
                preds.push((model, v));
            }
            let gold = order.iter().map(|id| gold[id].clone()).collect();
            Ok(ScoreTable {
                ids: order,
                gold,
                preds,
            })
        }
    }
}

fn non_empty(rec: &csv::StringRecord, at: usize, name: &str, origin: &str) -> Result<String> {
    let v = rec.get(at).unwrap_or("").trim();
    if v.is_empty() {
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        return Err(Error::bad_input(format!(
            "{origin}: line {line}: column {name:?} is empty; expected a label"
        )));
    }
    Ok(v.to_string())
}

/// Markdown for `score`: the split table plus what the numbers mean.
pub fn render(a: &SplitAnalysis, labels: &[String], eval: &EvaluationSpec) -> String {
    let mut s = format!(
        "# clsbench score\n\n{} documents, {} classes (gold ∪ predicted); {} paired resamples, {:?} stream, seed {}.\n",
        a.n,
        labels.len(),
        eval.resamples,
        eval.rng,
        eval.bootstrap_seed.unwrap_or(0)
    );
    crate::report::summary::render_split(&mut s, a, eval.confidence);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_str(text: &str) -> Result<ScoreTable> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("preds.csv");
        std::fs::write(&p, text).unwrap();
        read(&p)
    }

    #[test]
    fn wide_and_long_shapes_agree() {
        let wide = read_str("id,gold,enc,dec\n1,a,a,b\n2,b,b,b\n").unwrap();
        let long = read_str("id,model,gold,pred\n1,enc,a,a\n2,enc,b,b\n2,dec,b,b\n1,dec,a,b\n").unwrap();
        assert_eq!(wide.ids, long.ids);
        assert_eq!(wide.gold, long.gold);
        assert_eq!(wide.preds, long.preds);
    }

    #[test]
    fn unknown_id_is_named() {
        let err = read_str("id,model,gold,pred\n1,enc,a,a\n9,dec,a,a\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown id \"9\"") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn mismatched_gold_is_named() {
        let err = read_str("id,model,gold,pred\n1,enc,a,a\n1,dec,b,a\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("gold \"b\"") && err.contains("\"a\""), "{err}");
    }

    #[test]
    fn missing_prediction_is_named() {
        let err = read_str("id,model,gold,pred\n1,enc,a,a\n2,enc,a,a\n1,dec,a,a\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"dec\"") && err.contains("\"2\""), "{err}");
    }

    #[test]
    fn wrong_header_explains_both_shapes() {
        let err = read_str("doc,label\n1,a\n").unwrap_err().to_string();
        assert!(err.contains("wide") && err.contains("long"), "{err}");
    }
}
