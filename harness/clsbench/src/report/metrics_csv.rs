//! `metrics.csv` (one row per model and split, with CIs) and `per_class.csv` (precision,
//! recall, F1 and support per class), for spreadsheets and pandas.

use super::results::Results;
use crate::error::{Error, Result};
use std::path::Path;

pub fn write(run_dir: &Path, r: &Results) -> Result<()> {
    let enc = |e: csv::Error| Error::encode("metrics", e);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "model",
        "split",
        "n",
        "accuracy",
        "accuracy_lo",
        "accuracy_hi",
        "macro_f1",
        "macro_f1_lo",
        "macro_f1_hi",
        "macro_f1_bca_lo",
        "macro_f1_bca_hi",
        "weighted_f1",
        "zero_f1_classes",
    ])
    .map_err(enc)?;
    let mut pc = csv::Writer::from_writer(Vec::new());
    pc.write_record([
        "model",
        "split",
        "class_id",
        "class",
        "precision",
        "recall",
        "f1",
        "support",
    ])
    .map_err(enc)?;
    for a in &r.splits {
        for (i, m) in a.models.iter().enumerate() {
            let b = a.bootstrap.as_ref().and_then(|b| b.models.get(i));
            let f = |x: Option<f64>| x.map(|v| format!("{v:.6}")).unwrap_or_default();
            w.write_record([
                m.model.clone(),
                a.split.clone(),
                a.n.to_string(),
                format!("{:.6}", m.metrics.accuracy),
                f(b.map(|b| b.accuracy.percentile.lower)),
                f(b.map(|b| b.accuracy.percentile.upper)),
                format!("{:.6}", m.metrics.macro_f1),
                f(b.map(|b| b.macro_f1.percentile.lower)),
                f(b.map(|b| b.macro_f1.percentile.upper)),
                f(b.and_then(|b| b.macro_f1.bca.as_ref().map(|i| i.lower))),
                f(b.and_then(|b| b.macro_f1.bca.as_ref().map(|i| i.upper))),
                format!("{:.6}", m.metrics.weighted_f1),
                m.metrics.zero_f1_classes.to_string(),
            ])
            .map_err(enc)?;
            for c in &m.metrics.per_class {
                pc.write_record([
                    m.model.clone(),
                    a.split.clone(),
                    c.label.to_string(),
                    r.dataset.labels.get(c.label).cloned().unwrap_or_default(),
                    format!("{:.6}", c.precision),
                    format!("{:.6}", c.recall),
                    format!("{:.6}", c.f1),
                    c.support.to_string(),
                ])
                .map_err(enc)?;
            }
        }
    }
    let bytes = w.into_inner().map_err(|e| Error::encode("metrics", e))?;
    crate::fsutil::write_atomic(&run_dir.join("metrics.csv"), &bytes)?;
    let bytes = pc.into_inner().map_err(|e| Error::encode("per-class metrics", e))?;
    crate::fsutil::write_atomic(&run_dir.join("per_class.csv"), &bytes)
}
