//! Saving and loading what training produced, so a finished model can be re-scored without
//! retraining: LoRA adapters + head as PEFT saves them (`adapter_model.safetensors` with
//! `base_model.model.<module>.lora_A.weight` names, and `adapter_config.json`), a linear
//! probe's head (`head.safetensors`), or a full fine-tune's weights (`model.safetensors`),
//! each with HF names, plus `trained.json` naming the files and their sha256. Every file is
//! written to a temporary name and renamed, and `trained.json` last, so an interrupted save
//! never leaves a readable but inconsistent checkpoint.

use super::plan::TrainMethod;
use crate::error::{Error, Result};
use crate::params::LoraSettings;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

pub const META_FILE: &str = "trained.json";
const PEFT_PREFIX: &str = "base_model.model.";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainedMeta {
    pub method: TrainMethod,
    pub model_type: String,
    pub checkpoint: String,
    pub base_weights_sha256: String,
    pub n_classes: usize,
    /// 1-based epoch whose weights these are.
    pub epoch: usize,
    pub lora: Option<LoraSettings>,
    /// File name -> sha256.
    pub files: Vec<(String, String)>,
}

fn weights_file(method: TrainMethod) -> &'static str {
    match method {
        TrainMethod::Lora => "adapter_model.safetensors",
        TrainMethod::LinearProbe => "head.safetensors",
        TrainMethod::Full => "model.safetensors",
    }
}

/// Save trained tensors (HF names) and the metadata that makes them loadable.
pub fn save(dir: &Path, meta: &TrainedMeta, tensors: &[(String, Tensor)], head_modules: &[&str]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io_op(dir, crate::error::IoOp::CreateDir, e))?;
    let mut meta = meta.clone();
    meta.files.clear();
    let prefix = if meta.method == TrainMethod::Lora {
        PEFT_PREFIX
    } else {
        ""
    };
    let map: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(n, t)| (format!("{prefix}{n}"), t.clone()))
        .collect();
    let name = weights_file(meta.method);
    let path = dir.join(name);
    save_safetensors_atomic(&path, &map)?;
    meta.files.push((name.to_string(), crate::fsutil::sha256_file(&path)?));
    if let (TrainMethod::Lora, Some(l)) = (meta.method, &meta.lora) {
        let config = serde_json::json!({
            "peft_type": "LORA",
            "task_type": "SEQ_CLS",
            "base_model_name_or_path": meta.checkpoint,
            "r": l.r,
            "lora_alpha": l.alpha,
            "lora_dropout": l.dropout,
            "target_modules": l.targets,
            "modules_to_save": head_modules,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
        });
        let p = dir.join("adapter_config.json");
        crate::fsutil::write_json_atomic(&p, &config)?;
        meta.files
            .push(("adapter_config.json".into(), crate::fsutil::sha256_file(&p)?));
    }
    crate::fsutil::write_json_atomic(&dir.join(META_FILE), &meta)
}

/// Write `map` as safetensors to a temporary name, fsync, rename over `path`.
///
/// safetensors (0.8) writes through a `tempfile::NamedTempFile`, which is created mode 0600,
/// and renames it into place, so its files came out 0600 while every other file (plain
/// `File::create`) is 0666 less the umask, 0644 usually. The temporary name is therefore
/// first created by us, to learn the mode a new file gets here, and that mode is put back on
/// the file safetensors leaves. (Serialising to memory and using `fsutil::write_atomic`
/// would also do, at the cost of a second copy of the weights in memory.)
pub(crate) fn save_safetensors_atomic(path: &Path, map: &HashMap<String, Tensor>) -> Result<()> {
    // `write_atomic_with` removes the temp file on every error path (a full disk stays no
    // fuller) and names `path`, not the temp file, in errors.
    crate::fsutil::write_atomic_with(path, |tmp| {
        let mode = std::fs::File::create(tmp)
            .and_then(|f| f.metadata())
            .map_err(|e| Error::write(path, e))?
            .permissions();
        candle_core::safetensors::save(map, tmp).map_err(|e| match io_cause(&e) {
            Some(io) => Error::write(path, io),
            None => Error::Model(format!(
                "writing {}: {}",
                path.display(),
                crate::error::candle_message(e)
            )),
        })?;
        std::fs::set_permissions(tmp, mode).map_err(|e| Error::write(path, e))?;
        std::fs::File::open(tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::write(path, e))
    })
}

/// The I/O error under a candle error (safetensors wraps it), so a full disk while saving
/// weights is reported as the write error it is, not as a model failure.
fn io_cause(e: &candle_core::Error) -> Option<std::io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(std::io::Error::new(io.kind(), io.to_string()));
        }
        cur = err.source();
    }
    None
}

/// Read a saved checkpoint: its metadata and its tensors under HF names, after checking each
/// file against the sha256 recorded when it was written.
pub fn load(dir: &Path, device: &Device) -> Result<(TrainedMeta, HashMap<String, Tensor>)> {
    let meta_path = dir.join(META_FILE);
    if !meta_path.is_file() {
        return Err(Error::bad_input(format!(
            "{}: no trained model here (missing {META_FILE})",
            dir.display()
        )));
    }
    let meta: TrainedMeta = crate::fsutil::read_json(&meta_path)?;
    for (file, sha) in &meta.files {
        let p = dir.join(file);
        let got = crate::fsutil::sha256_file(&p)?;
        if &got != sha {
            return Err(Error::bad_input(format!(
                "{}: sha256 {got} differs from {sha} recorded in {META_FILE}",
                p.display()
            )));
        }
    }
    let path = dir.join(weights_file(meta.method));
    let raw = candle_core::safetensors::load(&path, device)
        .map_err(|e| Error::bad_input(format!("{}: {e}", path.display())))?;
    let tensors = raw
        .into_iter()
        .map(|(k, v)| (k.strip_prefix(PEFT_PREFIX).map(str::to_string).unwrap_or(k), v))
        .collect();
    Ok((meta, tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lora_checkpoint_round_trips_with_peft_names() {
        let dir = tempfile::tempdir().unwrap();
        let a = Tensor::new(&[[1f32, 2.0]], &Device::Cpu).unwrap();
        let meta = TrainedMeta {
            method: TrainMethod::Lora,
            model_type: "qwen2".into(),
            checkpoint: "Qwen/Qwen2.5-0.5B".into(),
            base_weights_sha256: "x".into(),
            n_classes: 3,
            epoch: 2,
            lora: Some(LoraSettings {
                r: 1,
                alpha: 2.0,
                dropout: 0.0,
                targets: vec!["q_proj".into()],
            }),
            files: vec![],
        };
        let name = "model.layers.0.self_attn.q_proj.lora_A.weight".to_string();
        save(dir.path(), &meta, &[(name.clone(), a)], &["score"]).unwrap();
        let raw = candle_core::safetensors::load(dir.path().join("adapter_model.safetensors"), &Device::Cpu).unwrap();
        assert!(raw.contains_key("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
        let cfg: serde_json::Value = crate::fsutil::read_json(&dir.path().join("adapter_config.json")).unwrap();
        assert_eq!(cfg["modules_to_save"], serde_json::json!(["score"]));
        let (m, t) = load(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(m.epoch, 2);
        assert_eq!(t[&name].to_vec2::<f32>().unwrap(), vec![vec![1.0, 2.0]]);
        // A tampered file is refused.
        std::fs::write(dir.path().join("adapter_config.json"), "{}").unwrap();
        assert!(load(dir.path(), &Device::Cpu)
            .unwrap_err()
            .to_string()
            .contains("sha256"));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            names.iter().all(|n| !n.to_string_lossy().contains(".tmp-")),
            "{names:?}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn saved_weights_have_the_permissions_of_every_other_file() {
        // head.safetensors came out 0600 (safetensors' own temp file) beside 0644 JSON files.
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let meta = TrainedMeta {
            method: TrainMethod::LinearProbe,
            model_type: "qwen2".into(),
            checkpoint: "x".into(),
            base_weights_sha256: "x".into(),
            n_classes: 2,
            epoch: 1,
            lora: None,
            files: vec![],
        };
        let w = Tensor::new(&[[1f32, 2.0]], &Device::Cpu).unwrap();
        save(dir.path(), &meta, &[("score.weight".into(), w)], &["score"]).unwrap();
        let mode = |n: &str| std::fs::metadata(dir.path().join(n)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("head.safetensors"), mode(META_FILE));
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        assert_eq!(mode("head.safetensors"), mode("plain"));
    }
}
