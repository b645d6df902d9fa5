//! Input of `clsbench score`: predictions made anywhere, as CSV in one of two shapes.
//!
//! - wide: `id,gold,<model>,<model>...` — one column of predicted labels per model, optionally
//!   `<model>:prob` columns (or `prob` when there is one model) with the probability of each
//!   predicted label, and a `split` column (not used);
//! - long: `id,model,gold,pred` — one row per document and model (the shape of pandas'
//!   `melt`), optionally with the `split` (not used) and `prob` columns of clsbench's own
//!   predictions files, and a `seed` column (`id,model,seed,gold,pred`): one row per document,
//!   model and training seed, for the seed-aware statistics. Every model (and seed) must cover
//!   the same ids with the same gold label.
//!
//! A `prob` (the predicted class's probability, in [0, 1]) gives the calibration statistics that
//! need only the confidence: ECE, MCE and the reliability diagram (of each model's first seed).
//!
//! Labels may be names or numbers; they are compared as text. The reader is strict, as its
//! numbers are only as good as its input: a column named twice, an unknown column in the long
//! shape, a `<model>:prob` column without its model, a blank id, gold label or prediction, a
//! probability that is not a number in [0, 1] are errors naming the line or the column.

use crate::analysis::SplitAnalysis;
use crate::data::csv::CsvSource;
use crate::error::{Error, Result};
use crate::suite::EvaluationSpec;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The columns the long shape may have.
const LONG_COLUMNS: &[&str] = &["id", "model", "seed", "gold", "pred", "split", "prob"];

/// Predictions aligned on document ids (in the order of the first model's rows).
#[derive(Debug)]
pub struct ScoreTable {
    pub ids: Vec<String>,
    pub gold: Vec<String>,
    /// Per model (in order of first appearance): its predictions, of its first seed when the
    /// long shape has a `seed` column.
    pub preds: Vec<(String, Vec<String>)>,
    /// With a `seed` column: per model, every (seed, predictions) in order of appearance (the
    /// first is also in `preds`). Empty without one.
    pub seed_runs: Vec<(String, Vec<SeedPredictions>)>,
    /// Per model (aligned with `preds`), the probability of each predicted label when the file
    /// has a `prob` column for it.
    pub probs: Vec<Option<Vec<f64>>>,
}

/// The suffix of a wide shape's probability column: `<model>:prob`.
const PROB_SUFFIX: &str = ":prob";

/// A probability in [0, 1] from field `at`, else an error naming the line and the column.
fn probability(src: &CsvSource, record: &csv::ByteRecord, at: usize, loc: crate::data::csv::Loc) -> Result<f64> {
    let text = src.non_blank(record, at, loc, "a probability in [0, 1]")?;
    match text.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(Error::bad_input(format!(
            "{}: {loc}: column {:?}: expected the probability of the predicted label, a number in [0, 1], got {text:?}",
            src.origin(),
            src.header()[at]
        ))),
    }
}

/// One training seed's predicted labels, aligned with `ScoreTable::ids`.
pub type SeedPredictions = (u64, Vec<String>);

pub fn read(path: &Path) -> Result<ScoreTable> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes, &path.display().to_string())
}

/// As `read`, from bytes; `origin` names the source in errors.
pub fn parse(bytes: &[u8], origin: &str) -> Result<ScoreTable> {
    let mut src = CsvSource::new(bytes, origin)?;
    // Every column is read in both shapes (the long one has only known columns), so a name
    // that occurs twice is refused wherever it is.
    src.require_unique_names()?;
    let header_line = src.header_line();
    let shapes = "expected columns `id,gold,<model>...` (wide) or `id,model,gold,pred` (long)";
    let (Some(id_at), Some(gold_at)) = (src.column("id")?, src.column("gold")?) else {
        return Err(Error::bad_input(format!(
            "{origin}: line {header_line}: {shapes}; the header has {}",
            src.header().join(", ")
        )));
    };
    let long = match (src.column("model")?, src.column("pred")?) {
        (Some(model_at), Some(pred_at)) => Some((model_at, pred_at)),
        (Some(_), None) => {
            return Err(Error::bad_input(format!(
                "{origin}: line {header_line}: column \"model\" but no column \"pred\"; {shapes}"
            )))
        }
        // Without `model`, a `pred` column is the predictions of a model named "pred" (wide).
        (None, _) => None,
    };
    if long.is_some() {
        if let Some(unknown) = src.header().iter().find(|h| !LONG_COLUMNS.contains(&h.as_str())) {
            return Err(Error::bad_input(format!(
                "{origin}: line {header_line}: unknown column {unknown:?} in the long shape, which has {}; \
                 remove or rename it",
                LONG_COLUMNS.join(", ")
            )));
        }
    } else {
        // Wide: each column other than id and gold holds a model's predictions.
        if let Some(k) = src.header().iter().position(|h| h.is_empty()) {
            return Err(Error::bad_input(format!(
                "{origin}: line {header_line}: column {} of the header has no name; in the wide shape it \
                 must name the model whose predictions it holds",
                k + 1
            )));
        }
    }
    let mut record = csv::ByteRecord::new();
    let table = match long {
        None => read_wide(&mut src, &mut record, id_at, gold_at)?,
        Some((model_at, pred_at)) => read_long(&mut src, &mut record, id_at, gold_at, model_at, pred_at)?,
    };
    if table.ids.is_empty() {
        return Err(Error::bad_input(format!(
            "{origin}: line {header_line}: a header and no data rows"
        )));
    }
    Ok(table)
}

fn read_wide(src: &mut CsvSource, record: &mut csv::ByteRecord, id_at: usize, gold_at: usize) -> Result<ScoreTable> {
    let header = src.header().to_vec();
    let is_prob = |h: &str| h == "prob" || h.ends_with(PROB_SUFFIX);
    let model_cols: Vec<usize> = (0..header.len())
        .filter(|&c| c != id_at && c != gold_at && header[c] != "split" && !is_prob(&header[c]))
        .collect();
    if model_cols.is_empty() {
        return Err(Error::bad_input(format!(
            "{}: line {}: no model columns besides \"id\" and \"gold\"",
            src.origin(),
            src.header_line()
        )));
    }
    // Each probability column belongs to one model column.
    let mut prob_cols: Vec<Option<usize>> = vec![None; model_cols.len()];
    for (c, h) in header.iter().enumerate().filter(|(_, h)| is_prob(h)) {
        let model = h.strip_suffix(PROB_SUFFIX).unwrap_or("");
        let k = if h == "prob" {
            (model_cols.len() == 1).then_some(0).ok_or_else(|| {
                Error::bad_input(format!(
                    "{}: line {}: column \"prob\" with {} model columns: name it `<model>:prob` (e.g. \"{}:prob\")",
                    src.origin(),
                    src.header_line(),
                    model_cols.len(),
                    header[model_cols[0]]
                ))
            })?
        } else {
            model_cols.iter().position(|&m| header[m] == model).ok_or_else(|| {
                Error::bad_input(format!(
                    "{}: line {}: column {h:?} holds a model's probabilities, but there is no model column {model:?}",
                    src.origin(),
                    src.header_line()
                ))
            })?
        };
        prob_cols[k] = Some(c);
    }
    let mut t = ScoreTable {
        ids: vec![],
        gold: vec![],
        preds: model_cols.iter().map(|&c| (header[c].clone(), vec![])).collect(),
        seed_runs: Vec::new(),
        probs: prob_cols.iter().map(|c| c.map(|_| Vec::new())).collect(),
    };
    let mut first_line: HashMap<String, usize> = HashMap::new();
    while let Some(loc) = src.next_record(record)? {
        src.non_blank(record, id_at, loc, "a document id")?;
        let id = src.field(record, id_at, loc)?.to_string();
        if let Some(first) = first_line.insert(id.clone(), loc.line) {
            return Err(Error::bad_input(format!(
                "{}: line {}: id {id:?} occurs twice (first on line {first})",
                src.origin(),
                loc.line
            )));
        }
        t.gold.push(src.non_blank(record, gold_at, loc, "a label")?.to_string());
        for (k, &c) in model_cols.iter().enumerate() {
            t.preds[k].1.push(src.non_blank(record, c, loc, "a label")?.to_string());
            if let (Some(at), Some(probs)) = (prob_cols[k], t.probs[k].as_mut()) {
                probs.push(probability(src, record, at, loc)?);
            }
        }
        t.ids.push(id);
    }
    Ok(t)
}

fn read_long(
    src: &mut CsvSource,
    record: &mut csv::ByteRecord,
    id_at: usize,
    gold_at: usize,
    model_at: usize,
    pred_at: usize,
) -> Result<ScoreTable> {
    let origin = src.origin().to_string();
    let seed_at = src.column("seed")?;
    let prob_at = src.column("prob")?;
    // The first run seen fixes the documents and their gold labels; a run is a model, or a
    // (model, seed) with a `seed` column.
    let mut order: Vec<String> = Vec::new();
    // Per run: its model, seed, the line it first appears on, its predictions (and the
    // probabilities of a `prob` column) by id.
    type Run = (String, Option<u64>, usize, HashMap<String, (String, Option<f64>)>);
    let mut per_run: Vec<Run> = Vec::new();
    // Per id of the first run: its gold label and line.
    let mut gold: HashMap<String, (String, usize)> = HashMap::new();
    let mut seen: HashSet<(usize, String)> = HashSet::new();
    let name = |model: &str, seed: Option<u64>| match seed {
        Some(s) => format!("model {model:?} seed {s}"),
        None => format!("model {model:?}"),
    };
    while let Some(loc) = src.next_record(record)? {
        src.non_blank(record, id_at, loc, "a document id")?;
        let id = src.field(record, id_at, loc)?.to_string();
        let model = src.non_blank(record, model_at, loc, "a model name")?.to_string();
        let g = src.non_blank(record, gold_at, loc, "a label")?.to_string();
        let p = src.non_blank(record, pred_at, loc, "a label")?.to_string();
        let prob = prob_at.map(|at| probability(src, record, at, loc)).transpose()?;
        let seed = match seed_at {
            None => None,
            Some(c) => {
                let text = src.non_blank(record, c, loc, "a training seed")?;
                Some(text.trim().parse::<u64>().map_err(|_| {
                    Error::bad_input(format!(
                        "{origin}: line {}: column \"seed\": expected a non-negative integer training seed, got {text:?}",
                        loc.line
                    ))
                })?)
            }
        };
        let k = match per_run.iter().position(|(m, s, ..)| *m == model && *s == seed) {
            Some(k) => k,
            None => {
                per_run.push((model.clone(), seed, loc.line, HashMap::new()));
                per_run.len() - 1
            }
        };
        if !seen.insert((k, id.clone())) {
            return Err(Error::bad_input(format!(
                "{origin}: line {}: id {id:?} occurs twice for {}",
                loc.line,
                name(&model, seed)
            )));
        }
        if k == 0 {
            gold.insert(id.clone(), (g, loc.line));
            order.push(id.clone());
        } else {
            let first = name(&per_run[0].0, per_run[0].1);
            match gold.get(&id) {
                None => {
                    return Err(Error::bad_input(format!(
                        "{origin}: line {}: unknown id {id:?} for {} (not among {first}'s ids)",
                        loc.line,
                        name(&model, seed)
                    )))
                }
                Some((g0, line0)) if *g0 != g => {
                    return Err(Error::bad_input(format!(
                        "{origin}: line {}: id {id:?} has gold {g:?} for {} but {g0:?} for {first} (line {line0})",
                        loc.line,
                        name(&model, seed)
                    )))
                }
                _ => {}
            }
        }
        per_run[k].3.insert(id, (p, prob));
    }
    let mut preds: Vec<(String, Vec<String>)> = Vec::new();
    let mut seed_runs: Vec<(String, Vec<SeedPredictions>)> = Vec::new();
    let mut probs: Vec<Option<Vec<f64>>> = Vec::new();
    for (model, seed, first_line, map) in per_run {
        let mut v = Vec::with_capacity(order.len());
        let mut pv = Vec::with_capacity(order.len());
        for id in &order {
            let (pred, prob) = map.get(id).cloned().ok_or_else(|| {
                Error::bad_input(format!(
                    "{origin}: {} (first on line {first_line}) has no prediction for id {id:?} \
                     (line {} for the first model)",
                    name(&model, seed),
                    gold[id].1
                ))
            })?;
            v.push(pred);
            pv.extend(prob);
        }
        let pv = prob_at.map(|_| pv);
        if let Some(seed) = seed {
            match seed_runs.iter_mut().find(|(m, _)| *m == model) {
                Some((_, runs)) => runs.push((seed, v)),
                None => {
                    seed_runs.push((model.clone(), vec![(seed, v.clone())]));
                    preds.push((model, v));
                    probs.push(pv);
                }
            }
        } else {
            preds.push((model, v));
            probs.push(pv);
        }
    }
    let gold = order.iter().map(|id| gold[id].0.clone()).collect();
    Ok(ScoreTable {
        ids: order,
        gold,
        preds,
        seed_runs,
        probs,
    })
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

    /// Issue 13: `id,model,seed,gold,pred` gives every model's seeds; each (model, seed) must
    /// cover the first run's ids with the same gold.
    #[test]
    fn a_seed_column_groups_runs_by_model_and_seed() {
        let t = read_str(
            "id,model,seed,gold,pred\n1,enc,1,a,a\n2,enc,1,b,a\n1,enc,2,a,b\n2,enc,2,b,b\n1,dec,1,a,a\n2,dec,1,b,b\n",
        )
        .unwrap();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            t.preds,
            [("enc".into(), s(&["a", "a"])), ("dec".into(), s(&["a", "b"]))]
        );
        assert_eq!(t.seed_runs[0].1, [(1, s(&["a", "a"])), (2, s(&["b", "b"]))]);
        assert_eq!(t.seed_runs[1].1, [(1, s(&["a", "b"]))]);
        for (text, needle) in [
            (
                "id,model,seed,gold,pred\n1,enc,1,a,a\n2,enc,1,b,a\n1,enc,2,a,b\n",
                "model \"enc\" seed 2 (first on line 4) has no prediction for id \"2\"",
            ),
            (
                "id,model,seed,gold,pred\n1,enc,1,a,a\n1,enc,2,b,b\n",
                "gold \"b\" for model \"enc\" seed 2",
            ),
            (
                "id,model,seed,gold,pred\n1,enc,1,a,a\n1,enc,x,a,a\n",
                "line 3: column \"seed\"",
            ),
            (
                "id,model,seed,gold,pred\n1,enc,1,a,a\n1,enc,1,a,b\n",
                "occurs twice for model \"enc\" seed 1",
            ),
        ] {
            let err = read_str(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
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

    fn parse_str(text: &str) -> Result<ScoreTable> {
        parse(text.as_bytes(), "preds.csv")
    }

    fn parse_err(text: &str) -> String {
        let e = parse_str(text).unwrap_err();
        assert!(matches!(e, Error::BadInput(_)), "{e:?}");
        e.to_string()
    }

    #[test]
    fn a_duplicate_header_column_is_refused() {
        for text in [
            "id,gold,enc,enc\n1,a,a,b\n",
            "id,gold,id,enc\n1,a,2,b\n",
            "id,model,gold,pred,pred\n1,enc,a,a,b\n",
        ] {
            let err = parse_err(text);
            assert!(
                err.contains("line 1") && err.contains("appears 2 times"),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn an_unknown_column_of_the_long_shape_is_refused_by_name() {
        let err = parse_err("id,model,gold,pred,score\n1,enc,a,a,0.5\n");
        assert!(
            err.contains("unknown column \"score\"") && err.contains("line 1"),
            "{err}"
        );
        // The columns of clsbench's own predictions files are known.
        let t = parse_str("id,split,model,gold,pred,prob\n1,val,enc,a,a,0.9\n").unwrap();
        assert_eq!(t.preds, [("enc".to_string(), vec!["a".to_string()])]);
        // "model" without "pred" is a long shape missing a column, not a model named "model".
        assert!(parse_err("id,model,gold\n1,enc,a\n").contains("no column \"pred\""));
    }

    #[test]
    fn prob_columns_are_read_in_both_shapes() {
        let long =
            parse_str("id,model,gold,pred,prob\n1,enc,a,a,0.9\n2,enc,b,a,0.625\n1,dec,a,b,1\n2,dec,b,b,0\n").unwrap();
        assert_eq!(long.probs, [Some(vec![0.9, 0.625]), Some(vec![1.0, 0.0])]);
        let wide = parse_str("id,gold,enc,dec,enc:prob,dec:prob,split\n1,a,a,b,0.9,1\n2,b,a,b,0.625,0,val\n");
        // The split column is known (not a model) but the row above is short: the reader says so.
        assert!(wide.is_err());
        let wide =
            parse_str("id,gold,enc,dec,enc:prob,dec:prob,split\n1,a,a,b,0.9,1,val\n2,b,a,b,0.625,0,val\n").unwrap();
        assert_eq!(wide.preds, long.preds);
        assert_eq!(wide.probs, long.probs);
        let one = parse_str("id,gold,enc,prob\n1,a,a,0.5\n").unwrap();
        assert_eq!(one.probs, [Some(vec![0.5])]);
        let none = parse_str("id,gold,enc\n1,a,a\n").unwrap();
        assert_eq!(none.probs, [None]);
    }

    #[test]
    fn bad_prob_columns_are_refused_naming_the_column() {
        let err = parse_err("id,model,gold,pred,prob\n1,enc,a,a,0.9\n2,enc,b,a,high\n");
        assert!(
            err.contains("line 3") && err.contains("column \"prob\"") && err.contains("\"high\""),
            "{err}"
        );
        let err = parse_err("id,gold,enc,enc:prob\n1,a,a,1.5\n");
        assert!(
            err.contains("line 2") && err.contains("\"enc:prob\"") && err.contains("[0, 1]"),
            "{err}"
        );
        let err = parse_err("id,gold,enc,dec:prob\n1,a,a,0.5\n");
        assert!(
            err.contains("\"dec:prob\"") && err.contains("no model column \"dec\""),
            "{err}"
        );
        let err = parse_err("id,gold,enc,dec,prob\n1,a,a,a,0.5\n");
        assert!(err.contains("column \"prob\"") && err.contains("enc:prob"), "{err}");
        let err = parse_err("id,model,gold,pred,prob\n1,enc,a,a,\n");
        assert!(err.contains("column \"prob\" is empty"), "{err}");
        let err = parse_err("id,model,gold,pred,confidence\n1,enc,a,a,0.5\n");
        assert!(err.contains("unknown column \"confidence\""), "{err}");
    }

    #[test]
    fn a_blank_id_is_refused_with_its_line() {
        for text in [
            "id,gold,enc\n1,a,a\n ,b,b\n",
            "id,model,gold,pred\r\n1,enc,a,a\r\n,enc,b,b\r\n",
        ] {
            let err = parse_err(text);
            assert!(
                err.contains("line 3") && err.contains("column \"id\" is empty"),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn score_line_numbers_are_the_file_lines_in_crlf_files() {
        let err = parse_err("id,gold,enc\r\n1,a,a\r\n2,b,b\r\n3,c,c\r\n4,d,\r\n");
        assert!(err.contains("line 5") && err.contains("\"enc\""), "{err}");
        let err = parse_err("id,gold,enc\r\n1,a,a\r\n2,b,b\r\n3,c,c\r\n4,d,d,d\r\n");
        assert!(err.contains("line 5") && err.contains("4 field(s)"), "{err}");
    }

    #[test]
    fn an_empty_file_or_a_header_alone_is_refused() {
        assert!(parse_err("").contains("line 1"));
        assert!(parse_err("id,gold,enc\n").contains("no data rows"));
    }

    #[test]
    fn wrong_header_explains_both_shapes() {
        let err = read_str("doc,label\n1,a\n").unwrap_err().to_string();
        assert!(err.contains("wide") && err.contains("long"), "{err}");
    }

    mod properties {
        use super::*;
        use crate::data::csv::testgen::*;
        use proptest::prelude::*;

        fn check_error(e: Error) -> std::result::Result<(), TestCaseError> {
            prop_assert!(matches!(e, Error::BadInput(_)), "{e:?}");
            let msg = e.to_string();
            prop_assert!(msg.starts_with("preds.csv: "), "{msg}");
            prop_assert!(names_a_line_or_column(&msg), "{msg}");
            Ok(())
        }

        /// A document: id, gold label, one prediction per model.
        type Doc = (String, String, Vec<String>);

        /// The models' names and their documents.
        fn table() -> impl Strategy<Value = (Vec<String>, Vec<Doc>)> {
            (1usize..4, 1usize..8).prop_flat_map(|(n_models, n_docs)| {
                let models = prop::collection::hash_set("[a-z]{1,4}( [a-z]{1,2})?", n_models)
                    .prop_map(|m| {
                        m.into_iter()
                            .filter(|m| !["id", "gold", "prob", "split"].contains(&m.as_str()))
                            .collect::<Vec<_>>()
                    })
                    .prop_filter("a model", |m| !m.is_empty());
                let docs = prop::collection::vec((non_blank(), prop::collection::vec(non_blank(), n_models)), n_docs);
                (models, docs).prop_map(|(models, docs)| {
                    let docs = docs
                        .into_iter()
                        .enumerate()
                        .map(|(i, (gold, preds))| (format!("doc {i}"), gold, preds[..models.len()].to_vec()))
                        .collect();
                    (models, docs)
                })
            })
        }

        fn wide(models: &[String], docs: &[Doc], crlf: bool) -> String {
            let mut header = vec!["id", "gold"];
            header.extend(models.iter().map(String::as_str));
            let mut file = record(&header, crlf);
            for (id, gold, preds) in docs {
                let mut fields = vec![id.as_str(), gold.as_str()];
                fields.extend(preds.iter().map(String::as_str));
                file += &record(&fields, crlf);
            }
            file
        }

        fn long(models: &[String], docs: &[Doc], crlf: bool) -> String {
            let mut file = record(&["id", "split", "model", "gold", "pred", "prob"], crlf);
            for (k, model) in models.iter().enumerate() {
                for (id, gold, preds) in docs {
                    file += &record(
                        &[
                            id.as_str(),
                            "test",
                            model.as_str(),
                            gold.as_str(),
                            preds[k].as_str(),
                            "0.5",
                        ],
                        crlf,
                    );
                }
            }
            file
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(CASES))]

            #[test]
            fn arbitrary_bytes_never_panic_and_errors_name_a_line(
                header in prop::sample::select(vec![
                    "", "id,gold,enc,dec\n", "id,model,gold,pred\r\n", "id,split,model,gold,pred,prob\n", "id,gold\n",
                ]),
                body in prop::collection::vec(any::<u8>(), 0..300),
            ) {
                let mut input = header.as_bytes().to_vec();
                input.extend(body);
                if let Err(e) = parse(&input, "preds.csv") {
                    check_error(e)?;
                }
            }

            #[test]
            fn valid_wide_and_long_files_read_back_the_same_table((models, docs) in table(), crlf in any::<bool>()) {
                for file in [wide(&models, &docs, crlf), long(&models, &docs, crlf)] {
                    let t = parse(file.as_bytes(), "preds.csv").unwrap();
                    prop_assert_eq!(t.ids, docs.iter().map(|d| d.0.clone()).collect::<Vec<_>>());
                    prop_assert_eq!(t.gold, docs.iter().map(|d| d.1.trim().to_string()).collect::<Vec<_>>());
                    for (k, (model, preds)) in t.preds.iter().enumerate() {
                        prop_assert_eq!(model, &models[k]);
                        let want: Vec<String> = docs.iter().map(|d| d.2[k].trim().to_string()).collect();
                        prop_assert_eq!(preds, &want);
                    }
                }
            }

            #[test]
            fn mutated_files_never_panic_and_errors_name_a_line(
                (models, docs) in table(),
                crlf in any::<bool>(),
                long_shape in any::<bool>(),
                mutations in mutations(),
            ) {
                let file = if long_shape { long(&models, &docs, crlf) } else { wide(&models, &docs, crlf) };
                if let Err(e) = parse(&mutate(file.into_bytes(), &mutations), "preds.csv") {
                    check_error(e)?;
                }
            }
        }
    }
}
