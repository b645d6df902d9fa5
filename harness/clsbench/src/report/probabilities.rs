//! Per-model probabilities files: every class's probability for every evaluated document, beside
//! `predictions.csv` as `probabilities.safetensors`, so calibration (and anything else that needs
//! more than the argmax) is recomputed from the run's own files, as the metrics are from the
//! predictions.
//!
//! The file is [safetensors](https://github.com/huggingface/safetensors) (readable with
//! `safetensors.numpy.load_file`, torch, candle), self-describing:
//!
//! - one tensor per split, named after it (`val`, `test`): shape [documents, classes], the
//!   natural-log probabilities, stored as F16;
//! - metadata `format` = `clsbench-log-probs/1`, `model` (the model id), `values` = `log_probs`,
//!   `classes` (a JSON array: the column order) and `<split>.doc_ids` (a JSON array: the row order).
//!
//! Why log-probabilities in F16: half the size of F32 (a 113-class val + test of the seed study is
//! 6.3 MB per model instead of 12.6 MB), and F16 keeps 11 significant bits over its whole range,
//! so a logarithm keeps ~0.05% relative precision in every probability down to e^−104 (the
//! floor, below the smallest f32): confidence to ~2e-4 absolute, far inside a 1/15-wide ECE bin,
//! and ln p_true for the NLL to ~1e-3 relative. F16 *probabilities* would instead flush
//! everything below 6e-8 to zero and round confidences near 1 to steps of 5e-4. Rows are
//! renormalised when read (see `clsbench_stats::calibration::LogProbs`).
//!
//! `clsbench score --probs FILE` reads the same format from elsewhere; there tensors may also be
//! F32, F64 or BF16, and `values` may be `probs` (probabilities in [0, 1]).

use crate::error::{Error, Result};
use clsbench_stats::calibration::{LogProbs, LOG_PROB_FLOOR};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The file name beside `predictions.csv`.
pub const FILE_NAME: &str = "probabilities.safetensors";
/// The `format` metadata of files this version writes.
pub const FORMAT: &str = "clsbench-log-probs/1";

/// One split's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitScores {
    pub split: String,
    pub doc_ids: Vec<String>,
    pub log_probs: LogProbs,
}

/// A probabilities file, read back typed.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbabilitiesFile {
    /// The model id, when the file names one.
    pub model: Option<String>,
    /// Class names in column order.
    pub classes: Vec<String>,
    pub splits: Vec<SplitScores>,
}

impl ProbabilitiesFile {
    pub fn split(&self, name: &str) -> Option<&SplitScores> {
        self.splits.iter().find(|s| s.split == name)
    }
}

/// The rows a writer gives: one split's document ids and probabilities (as models return them).
pub struct SplitRows<'a> {
    pub split: &'a str,
    pub doc_ids: Vec<&'a str>,
    pub probabilities: Vec<Vec<f32>>,
}

/// ln p, floored so that a probability of zero stays finite.
fn log_prob(p: f32) -> f64 {
    if p > 0.0 {
        f64::from(p).ln().max(LOG_PROB_FLOOR)
    } else {
        LOG_PROB_FLOOR
    }
}

/// Writes `path` atomically (F16 log-probabilities). The probabilities must be finite (the
/// pipeline checks them first, naming the document).
pub fn write(path: &Path, model: &str, classes: &[String], splits: &[SplitRows]) -> Result<()> {
    let enc = |e: crate::error::EncodeSource| Error::encode("probabilities file", e);
    let mut metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("model".to_string(), model.to_string()),
        ("values".to_string(), "log_probs".to_string()),
        (
            "classes".to_string(),
            serde_json::to_string(classes).map_err(|e| enc(e.into()))?,
        ),
    ]);
    let mut buffers = Vec::with_capacity(splits.len());
    for s in splits {
        metadata.insert(
            format!("{}.doc_ids", s.split),
            serde_json::to_string(&s.doc_ids).map_err(|e| enc(e.into()))?,
        );
        let mut bytes = Vec::with_capacity(s.probabilities.len() * classes.len() * 2);
        for row in &s.probabilities {
            if row.len() != classes.len() {
                return Err(enc(format!(
                    "a row of {} probabilities for {} classes",
                    row.len(),
                    classes.len()
                )
                .into()));
            }
            for &p in row {
                bytes.extend_from_slice(&half::f16::from_f64(log_prob(p)).to_le_bytes());
            }
        }
        buffers.push((s.split, vec![s.probabilities.len(), classes.len()], bytes));
    }
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F16, shape.clone(), bytes)
                .map(|v| (name.to_string(), v))
                .map_err(|e| enc(e.into()))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| enc(e.into()))?;
    crate::fsutil::write_atomic(path, &bytes)
}

/// Reads a probabilities file; every problem is an error naming the file and what is wrong.
pub fn read(path: &Path) -> Result<ProbabilitiesFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes, &path.display().to_string())
}

/// As `read`, from bytes; `origin` names the source in errors.
pub fn parse(bytes: &[u8], origin: &str) -> Result<ProbabilitiesFile> {
    let bad = |msg: String| Error::bad_input(format!("{origin}: {msg}"));
    let st = SafeTensors::deserialize(bytes).map_err(|e| {
        bad(format!(
            "not a safetensors file ({e}); expected the format of README \"Probabilities files\""
        ))
    })?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("{e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if let Some(format) = meta.get("format") {
        if format != FORMAT {
            return Err(bad(format!(
                "metadata `format` is {format:?}; this clsbench reads {FORMAT:?}"
            )));
        }
    }
    let json_strings = |key: &str| -> Result<Vec<String>> {
        let text = meta
            .get(key)
            .ok_or_else(|| bad(format!("metadata has no `{key}` (a JSON array of strings)")))?;
        serde_json::from_str(text).map_err(|e| bad(format!("metadata `{key}`: expected a JSON array of strings: {e}")))
    };
    let classes = json_strings("classes")?;
    if classes.is_empty() {
        return Err(bad("metadata `classes` is empty".into()));
    }
    let values = meta.get("values").map_or("log_probs", String::as_str);
    let as_log = match values {
        "log_probs" => true,
        "probs" => false,
        other => {
            return Err(bad(format!(
                "metadata `values` is {other:?}; expected \"log_probs\" or \"probs\""
            )))
        }
    };
    let mut names: Vec<&str> = st.names();
    names.sort_unstable();
    if names.is_empty() {
        return Err(bad("no tensors; expected one per split (e.g. `val`)".into()));
    }
    let mut seen_ids: HashSet<String> = HashSet::new();
    let mut splits = Vec::with_capacity(names.len());
    for name in names {
        let view = st.tensor(name).map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        let doc_ids = json_strings(&format!("{name}.doc_ids"))?;
        let shape = view.shape();
        if shape.len() != 2 || shape[0] != doc_ids.len() || shape[1] != classes.len() {
            return Err(bad(format!(
                "tensor `{name}` has shape {shape:?}; expected [{}, {}] ({} document ids in `{name}.doc_ids` x {} classes)",
                doc_ids.len(),
                classes.len(),
                doc_ids.len(),
                classes.len()
            )));
        }
        if let Some(dup) = doc_ids.iter().find(|id| !seen_ids.insert(id.to_string())) {
            return Err(bad(format!("document id {dup:?} occurs twice")));
        }
        let raw = decode(&view).map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        let k = classes.len();
        let mut logs = Vec::with_capacity(raw.len());
        for (at, &v) in raw.iter().enumerate() {
            let fail = |what: &str| {
                bad(format!(
                    "split {name:?}, document {:?}, class {:?}: {what}",
                    doc_ids[at / k],
                    classes[at % k]
                ))
            };
            let log = if as_log {
                match v {
                    v if v.is_nan() => return Err(fail("the log-probability is NaN")),
                    v if v == f64::INFINITY => return Err(fail("the log-probability is +inf")),
                    v => v.max(LOG_PROB_FLOOR),
                }
            } else {
                if !(0.0..=1.0).contains(&v) {
                    return Err(fail(&format!("probability {v} is not in [0, 1]")));
                }
                if v > 0.0 {
                    v.ln().max(LOG_PROB_FLOOR)
                } else {
                    LOG_PROB_FLOOR
                }
            };
            logs.push(log);
        }
        let log_probs = LogProbs::new(k, logs).map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        splits.push(SplitScores {
            split: name.to_string(),
            doc_ids,
            log_probs,
        });
    }
    Ok(ProbabilitiesFile {
        model: meta.get("model").cloned(),
        classes,
        splits,
    })
}

fn decode(view: &TensorView) -> std::result::Result<Vec<f64>, String> {
    let data = view.data();
    let chunks = |width: usize| data.chunks_exact(width);
    Ok(match view.dtype() {
        Dtype::F16 => chunks(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f64())
            .collect(),
        Dtype::BF16 => chunks(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f64())
            .collect(),
        Dtype::F32 => chunks(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect(),
        Dtype::F64 => chunks(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect(),
        other => return Err(format!("dtype {other:?}; expected F16, BF16, F32 or F64")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<String> {
        vec!["a".into(), "b, \"c\"".into(), "d".into()]
    }

    fn sample(dir: &Path) -> std::path::PathBuf {
        let path = dir.join(FILE_NAME);
        let splits = [
            SplitRows {
                split: "val",
                doc_ids: vec!["1", "x,2"],
                probabilities: vec![vec![0.7, 0.2, 0.1], vec![0.0, 1.0, 0.0]],
            },
            SplitRows {
                split: "test",
                doc_ids: vec!["3"],
                probabilities: vec![vec![1e-30, 0.5, 0.5]],
            },
        ];
        write(&path, "enc", &classes(), &splits).unwrap();
        path
    }

    #[test]
    fn round_trip_keeps_ids_classes_and_probabilities_to_f16_precision() {
        let dir = tempfile::tempdir().unwrap();
        let f = read(&sample(dir.path())).unwrap();
        assert_eq!(f.model.as_deref(), Some("enc"));
        assert_eq!(f.classes, classes());
        let val = f.split("val").unwrap();
        assert_eq!(val.doc_ids, ["1", "x,2"]);
        let p0: Vec<f64> = val.log_probs.row(0).iter().map(|v| v.exp()).collect();
        for (got, want) in p0.iter().zip([0.7, 0.2, 0.1]) {
            assert!((got - want).abs() < 5e-4 * want, "{got} vs {want}");
        }
        // Zeros are floored at e^-104, not -inf: the row stays usable.
        assert!(val.log_probs.row(1).iter().all(|v| v.is_finite()));
        assert!((val.log_probs.row(1)[1]).abs() < 1e-12);
        // 1e-30 keeps its logarithm (f16 holds -69.08 to 0.03).
        let test = f.split("test").unwrap();
        assert!((test.log_probs.row(0)[0] - (1e-30f64).ln()).abs() < 0.05);
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = read(Path::new("nowhere/probabilities.safetensors")).unwrap_err();
        assert!(err.to_string().contains("nowhere/probabilities.safetensors"), "{err}");
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
    }

    fn hand_made(dtype: &str, shape: &[usize], data: &[u8], meta: &[(&str, &str)]) -> Vec<u8> {
        let mut header = serde_json::json!({"__metadata__": {}});
        for (k, v) in meta {
            header["__metadata__"][*k] = serde_json::Value::String(v.to_string());
        }
        header["val"] = serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [0, data.len()]});
        let mut text = header.to_string().into_bytes();
        while !text.len().is_multiple_of(8) {
            text.push(b' ');
        }
        let mut out = (text.len() as u64).to_le_bytes().to_vec();
        out.extend(text);
        out.extend_from_slice(data);
        out
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn wrong_shape_nan_and_missing_metadata_are_refused_naming_what() {
        let meta = [("classes", r#"["a","b"]"#), ("val.doc_ids", r#"["d1","d2"]"#)];
        // 3 columns for 2 classes.
        let bytes = hand_made("F32", &[2, 3], &f32_bytes(&[0.0; 6]), &meta);
        let err = parse(&bytes, "p.safetensors").unwrap_err().to_string();
        assert!(
            err.contains("p.safetensors") && err.contains("shape [2, 3]") && err.contains("[2, 2]"),
            "{err}"
        );
        // NaN names the document and the class.
        let bytes = hand_made("F32", &[2, 2], &f32_bytes(&[-0.1, -2.4, f32::NAN, -0.1]), &meta);
        let err = parse(&bytes, "p.safetensors").unwrap_err().to_string();
        assert!(
            err.contains("document \"d2\"") && err.contains("class \"a\"") && err.contains("NaN"),
            "{err}"
        );
        // Probabilities outside [0, 1] when the file says it holds probabilities.
        let probs = [("values", "probs"), meta[0], meta[1]];
        let bytes = hand_made("F32", &[2, 2], &f32_bytes(&[0.5, 0.5, 1.5, -0.5]), &probs);
        let err = parse(&bytes, "p.safetensors").unwrap_err().to_string();
        assert!(err.contains("\"d2\"") && err.contains("not in [0, 1]"), "{err}");
        // No doc ids for the tensor.
        let bytes = hand_made("F32", &[2, 2], &f32_bytes(&[0.0; 4]), &meta[..1]);
        let err = parse(&bytes, "p.safetensors").unwrap_err().to_string();
        assert!(err.contains("`val.doc_ids`"), "{err}");
        // Not safetensors at all.
        let err = parse(b"id,gold\n1,a\n", "p.safetensors").unwrap_err().to_string();
        assert!(err.contains("not a safetensors file"), "{err}");
        // An integer tensor.
        let bytes = hand_made("I32", &[2, 2], &[0u8; 16], &meta);
        let err = parse(&bytes, "p.safetensors").unwrap_err().to_string();
        assert!(err.contains("dtype"), "{err}");
    }

    #[test]
    fn probabilities_written_elsewhere_read_as_log_probabilities() {
        let meta = [
            ("values", "probs"),
            ("classes", r#"["a","b"]"#),
            ("val.doc_ids", r#"["d1","d2"]"#),
        ];
        let bytes = hand_made("F32", &[2, 2], &f32_bytes(&[0.25, 0.75, 1.0, 0.0]), &meta);
        let f = parse(&bytes, "p.safetensors").unwrap();
        let rows = &f.splits[0].log_probs;
        assert!((rows.row(0)[1] - 0.75f64.ln()).abs() < 1e-7);
        // A zero becomes the floor (ln(1 + e^-104) rounds to 0 in the renormalisation).
        assert_eq!(rows.row(1)[1], LOG_PROB_FLOOR);
        assert!(f.model.is_none());
    }
}
