//! Epoch checkpoints, so that an interrupted training run continues from its last finished
//! epoch instead of epoch 1, and ends exactly where an uninterrupted run would have.
//!
//! At the end of every epoch `fit_transformer` writes, in `<work_dir>/resume/`:
//! - `weights-epoch-K.safetensors`: every trainable tensor by HF name, in its training dtype;
//! - `optimizer-epoch-K.safetensors`: AdamW's moments (`exp_avg.<name>`, `exp_avg_sq.<name>`,
//!   PyTorch's names);
//! - `state.json`: the epoch, the optimiser and scheduler step counts, the dropout stream's
//!   position, the epoch history, the best epoch so far (its weights are
//!   `weights-epoch-B.safetensors`, kept until a better epoch replaces it), the sha256 of each
//!   file, and a fingerprint of everything the run was given.
//!
//! Each tensor file is written under a temporary name and renamed; `state.json` is written
//! last (atomically) and is the commit point: files it does not name are leftovers of an
//! older epoch or a killed write, and are removed. A checkpoint is used only when its
//! fingerprint equals the run's (settings, seed, base weights, device, train and val data),
//! so one from other settings is never resumed; it is overwritten by the first epoch.
//! The batch order needs no state: `batches::epoch_batches` derives each epoch's shuffle from
//! the seed and the epoch number.

use super::checkpoint::save_safetensors_atomic;
use super::loss_scale::LossScaler;
use super::optim::AdamWState;
use super::EpochReport;
use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The epoch checkpoint's folder inside the training work directory.
pub const RESUME_DIR: &str = "resume";
const STATE_FILE: &str = "state.json";
/// Bumped when the checkpoint's layout or meaning changes; part of the fingerprint.
pub const FORMAT: u32 = 1;

/// A ChaCha8 stream's exact position: seed, stream and word position (rand_chacha's own
/// accessors; its serde feature is not enabled here).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RngState {
    pub seed_hex: String,
    pub stream: u64,
    /// u128 in decimal (JSON numbers stop at 2^53 in most readers).
    pub word_pos: String,
}

impl RngState {
    pub fn of(rng: &ChaCha8Rng) -> RngState {
        RngState {
            seed_hex: hex::encode(rng.get_seed()),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    pub fn restore(&self) -> Result<ChaCha8Rng> {
        use rand::SeedableRng;
        let bad = || Error::Model(format!("epoch checkpoint: unreadable rng state {self:?}"));
        let seed: [u8; 32] = hex::decode(&self.seed_hex)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        let word_pos: u128 = self.word_pos.parse().map_err(|_| bad())?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(word_pos);
        Ok(rng)
    }
}

/// An `EpochReport` with its floats as bit patterns: serde_json's default float parsing may be
/// one ulp off, and the resumed report must equal the uninterrupted one exactly.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SavedEpoch {
    epoch: usize,
    optimizer_steps: usize,
    /// train_loss, val_macro_f1, val_accuracy, train_seconds, val_seconds,
    /// train_examples_per_second, each as `f64::to_bits` in hex.
    floats: [String; 6],
    /// The same numbers, readable (not read back).
    readable: [f64; 6],
}

fn bits(x: f64) -> String {
    format!("{:016x}", x.to_bits())
}

fn unbits(s: &str) -> Result<f64> {
    u64::from_str_radix(s, 16)
        .map(f64::from_bits)
        .map_err(|_| Error::Model(format!("epoch checkpoint: unreadable number {s:?}")))
}

impl SavedEpoch {
    fn of(e: &EpochReport) -> SavedEpoch {
        let v = [
            e.train_loss,
            e.val_macro_f1,
            e.val_accuracy,
            e.train_seconds,
            e.val_seconds,
            e.train_examples_per_second,
        ];
        SavedEpoch {
            epoch: e.epoch,
            optimizer_steps: e.optimizer_steps,
            floats: v.map(bits),
            readable: v,
        }
    }

    fn report(&self) -> Result<EpochReport> {
        let f = |i: usize| unbits(&self.floats[i]);
        Ok(EpochReport {
            epoch: self.epoch,
            train_loss: f(0)?,
            val_macro_f1: f(1)?,
            val_accuracy: f(2)?,
            train_seconds: f(3)?,
            val_seconds: f(4)?,
            train_examples_per_second: f(5)?,
            optimizer_steps: self.optimizer_steps,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    format: u32,
    fingerprint: String,
    /// What was fingerprinted, for a reader wondering why a checkpoint was not used.
    settings: serde_json::Value,
    /// Last finished epoch (1-based).
    epoch: usize,
    /// Optimiser steps taken so far: the scheduler's position.
    optimizer_steps: usize,
    /// AdamW's bias-correction step count.
    adam_step: usize,
    dropout_rng: RngState,
    epochs: Vec<SavedEpoch>,
    best_epoch: usize,
    /// The best epoch's val macro F1 as `f64::to_bits` in hex.
    best_val_macro_f1: String,
    /// Training wall time up to the end of `epoch`, summed over the runs that got there.
    wall_seconds: f64,
    weights_file: String,
    optimizer_file: String,
    best_weights_file: String,
    /// File name -> sha256.
    files: Vec<(String, String)>,
    /// The f16 loss scaler's state (scale, good steps in a row, skipped steps), so a resumed
    /// run scales as an uninterrupted one; absent for f32 and bf16.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loss_scaler: Option<LossScaler>,
}

/// What training needs to continue after `epoch`.
pub struct Resumed {
    /// Last finished epoch (1-based).
    pub epoch: usize,
    pub optimizer_steps: usize,
    pub optimizer: AdamWState,
    pub dropout_rng: ChaCha8Rng,
    pub epochs: Vec<EpochReport>,
    /// (1-based epoch, val macro F1, trained tensors by HF name).
    pub best: (usize, f64, Vec<(String, Tensor)>),
    /// The trainable tensors at the end of `epoch`, by HF name.
    pub weights: HashMap<String, Tensor>,
    pub wall_seconds: f64,
    pub loss_scaler: Option<LossScaler>,
}

/// What `load` found.
pub enum Lookup {
    /// No checkpoint: train from epoch 1.
    Nothing,
    /// A checkpoint that is not used, and why (other settings, damaged files).
    Ignored(String),
    Found(Box<Resumed>),
}

/// What `save` writes at the end of an epoch.
pub struct EpochCheckpoint<'a> {
    pub fingerprint: &'a str,
    pub settings: &'a serde_json::Value,
    pub epoch: usize,
    pub optimizer_steps: usize,
    pub optimizer: &'a AdamWState,
    pub dropout_rng: &'a ChaCha8Rng,
    pub epochs: &'a [EpochReport],
    pub best_epoch: usize,
    pub best_val_macro_f1: f64,
    /// The trainable tensors now, by HF name.
    pub weights: &'a [(String, Tensor)],
    pub wall_seconds: f64,
    pub loss_scaler: Option<&'a LossScaler>,
}

pub fn dir(work_dir: &Path) -> PathBuf {
    work_dir.join(RESUME_DIR)
}

fn weights_name(epoch: usize) -> String {
    format!("weights-epoch-{epoch}.safetensors")
}

fn optimizer_name(epoch: usize) -> String {
    format!("optimizer-epoch-{epoch}.safetensors")
}

/// The fingerprint of `settings` (canonical JSON, sha256).
pub fn fingerprint(settings: &serde_json::Value) -> String {
    crate::fsutil::sha256_bytes(&serde_json::to_vec(settings).unwrap_or_default())
}

/// sha256 over examples in order (each text length-prefixed, then its label), so that any
/// change of text, label or order gives another fingerprint.
pub fn examples_sha256(texts: &[&str], labels: &[usize]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (t, &l) in texts.iter().zip(labels) {
        h.update((t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
        h.update((l as u64).to_le_bytes());
    }
    hex::encode(h.finalize())
}

/// Write the checkpoint of a finished epoch; `state.json` last, then remove what it no longer
/// names.
pub fn save(work_dir: &Path, c: &EpochCheckpoint) -> Result<()> {
    let dir = dir(work_dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io_op(&dir, crate::error::IoOp::CreateDir, e))?;
    let weights_file = weights_name(c.epoch);
    let map: HashMap<String, Tensor> = c.weights.iter().cloned().collect();
    save_safetensors_atomic(&dir.join(&weights_file), &map)?;
    let optimizer_file = optimizer_name(c.epoch);
    let mut moments = HashMap::new();
    for (name, m, v) in &c.optimizer.moments {
        moments.insert(format!("exp_avg.{name}"), m.clone());
        moments.insert(format!("exp_avg_sq.{name}"), v.clone());
    }
    save_safetensors_atomic(&dir.join(&optimizer_file), &moments)?;
    let best_weights_file = weights_name(c.best_epoch);
    let mut files = Vec::new();
    for f in [&weights_file, &optimizer_file, &best_weights_file] {
        if !files.iter().any(|(n, _): &(String, String)| n == f) {
            files.push((f.clone(), crate::fsutil::sha256_file(&dir.join(f))?));
        }
    }
    let state = State {
        format: FORMAT,
        fingerprint: c.fingerprint.to_string(),
        settings: c.settings.clone(),
        epoch: c.epoch,
        optimizer_steps: c.optimizer_steps,
        adam_step: c.optimizer.step_t,
        dropout_rng: RngState::of(c.dropout_rng),
        epochs: c.epochs.iter().map(SavedEpoch::of).collect(),
        best_epoch: c.best_epoch,
        best_val_macro_f1: bits(c.best_val_macro_f1),
        wall_seconds: c.wall_seconds,
        weights_file,
        optimizer_file,
        best_weights_file,
        files,
        loss_scaler: c.loss_scaler.cloned(),
    };
    crate::fsutil::write_json_atomic(&dir.join(STATE_FILE), &state)?;
    let keep: Vec<&str> = state.files.iter().map(|(n, _)| n.as_str()).collect();
    for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != STATE_FILE && !keep.contains(&name.as_str()) {
            // Only our own leftovers live here; one that cannot be removed costs disk, not
            // correctness.
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// The checkpoint in `work_dir`, when there is one for exactly these settings. One from
/// other settings, or with a damaged file, is reported and not used.
pub fn load(work_dir: &Path, fingerprint: &str, device: &Device) -> Result<Lookup> {
    let dir = dir(work_dir);
    let state_path = dir.join(STATE_FILE);
    if !state_path.is_file() {
        return Ok(Lookup::Nothing);
    }
    let state: State = match crate::fsutil::read_json(&state_path) {
        Ok(s) => s,
        Err(e) => return Ok(Lookup::Ignored(format!("unreadable epoch checkpoint ({e})"))),
    };
    if state.format != FORMAT || state.fingerprint != fingerprint {
        return Ok(Lookup::Ignored(format!(
            "the epoch checkpoint in {} was written with other settings or data",
            dir.display()
        )));
    }
    for (file, sha) in &state.files {
        let p = dir.join(file);
        match crate::fsutil::sha256_file(&p) {
            Ok(got) if &got == sha => {}
            _ => {
                return Ok(Lookup::Ignored(format!(
                    "{} is missing or differs from the sha256 in {STATE_FILE}",
                    p.display()
                )))
            }
        }
    }
    let read = |file: &str| -> Result<HashMap<String, Tensor>> {
        let p = dir.join(file);
        candle_core::safetensors::load(&p, device)
            .map_err(|e| Error::Model(format!("{}: {}", p.display(), crate::error::candle_message(e))))
    };
    let weights = read(&state.weights_file)?;
    let mut best: Vec<(String, Tensor)> = read(&state.best_weights_file)?.into_iter().collect();
    best.sort_by(|a, b| a.0.cmp(&b.0));
    let mut raw = read(&state.optimizer_file)?;
    let names: Vec<String> = raw
        .keys()
        .filter_map(|k| k.strip_prefix("exp_avg.").map(str::to_string))
        .collect();
    let mut moments = Vec::with_capacity(names.len());
    for n in names {
        let m = raw.remove(&format!("exp_avg.{n}"));
        let v = raw.remove(&format!("exp_avg_sq.{n}"));
        match (m, v) {
            (Some(m), Some(v)) => moments.push((n, m, v)),
            _ => {
                return Ok(Lookup::Ignored(format!(
                    "{}: moments of `{n}` incomplete",
                    state.optimizer_file
                )))
            }
        }
    }
    let epochs = state
        .epochs
        .iter()
        .map(SavedEpoch::report)
        .collect::<Result<Vec<_>>>()?;
    Ok(Lookup::Found(Box::new(Resumed {
        epoch: state.epoch,
        optimizer_steps: state.optimizer_steps,
        optimizer: AdamWState {
            step_t: state.adam_step,
            moments,
        },
        dropout_rng: state.dropout_rng.restore()?,
        epochs,
        best: (state.best_epoch, unbits(&state.best_val_macro_f1)?, best),
        weights,
        wall_seconds: state.wall_seconds,
        loss_scaler: state.loss_scaler,
    })))
}

/// Remove the epoch checkpoint (after training finished and its result is saved).
pub fn remove(work_dir: &Path) -> Result<()> {
    let dir = dir(work_dir);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io_op(&dir, crate::error::IoOp::Remove, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};

    #[test]
    fn rng_state_restores_the_exact_position() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        // An odd number of u32 draws leaves the position inside a block.
        for _ in 0..37 {
            rng.next_u32();
        }
        let saved = RngState::of(&rng);
        let json = serde_json::to_string(&saved).unwrap();
        let mut back = serde_json::from_str::<RngState>(&json).unwrap().restore().unwrap();
        let a: Vec<u32> = (0..100).map(|_| rng.next_u32()).collect();
        let b: Vec<u32> = (0..100).map(|_| back.next_u32()).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn epoch_reports_round_trip_exactly() {
        let e = EpochReport {
            epoch: 3,
            train_loss: 0.1 + 0.2,
            val_macro_f1: 1.0 / 3.0,
            val_accuracy: f64::MIN_POSITIVE,
            train_seconds: 1e-300,
            val_seconds: 12.5,
            train_examples_per_second: 9.87654321e12,
            optimizer_steps: 4,
        };
        let json = serde_json::to_string(&SavedEpoch::of(&e)).unwrap();
        let back = serde_json::from_str::<SavedEpoch>(&json).unwrap().report().unwrap();
        assert_eq!(back, e);
        assert_eq!(back.train_loss.to_bits(), e.train_loss.to_bits());
    }
}
