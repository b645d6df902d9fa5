//! Per-model predictions files: `id,split,gold,pred,prob` (class names, probability of the
//! predicted class). They are the ground truth of a run: metrics, statistics and comparisons
//! are all recomputed from them.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionRow {
    pub id: String,
    pub split: String,
    pub gold: String,
    pub pred: String,
    pub prob: f32,
}

/// Write rows atomically as CSV.
pub fn write(path: &Path, rows: &[PredictionRow]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(|e| Error::encode("predictions", e))?;
    }
    let bytes = w.into_inner().map_err(|e| Error::encode("predictions", e))?;
    crate::fsutil::write_atomic(path, &bytes)
}

/// Read a predictions file written by `write`.
pub fn read(path: &Path) -> Result<Vec<PredictionRow>> {
    let mut rdr = csv::Reader::from_path(path).map_err(|e| Error::bad_input(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, row) in rdr.deserialize().enumerate() {
        let row: PredictionRow =
            row.map_err(|e| Error::bad_input(format!("{}: data row {}: {e}", path.display(), i + 1)))?;
        out.push(row);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_quotes_and_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.csv");
        let rows = vec![PredictionRow {
            id: "a,1".into(),
            split: "val".into(),
            gold: "Problem with a \"purchase\"".into(),
            pred: "x\ny".into(),
            prob: 0.25,
        }];
        write(&p, &rows).unwrap();
        assert_eq!(read(&p).unwrap(), rows);
    }
}
