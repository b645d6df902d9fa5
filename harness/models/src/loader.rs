//! Finding a checkpoint's files (a local directory in Hugging Face layout, or the Hub through
//! hf-hub with its cache honoured) and reading its weights with shape checks that name the
//! offending tensor.

use super::config::ModelConfig;
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// Environment variable naming a directory of model directories (`$CLSBENCH_MODEL_DIR/<name>`).
pub const MODEL_DIR_ENV: &str = "CLSBENCH_MODEL_DIR";

/// The files of one checkpoint, all present on disk.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// Where the files were found (a local directory or the hf-hub cache snapshot).
    pub dir: PathBuf,
    pub config: PathBuf,
    /// One `model.safetensors`, or the shards listed by `model.safetensors.index.json`.
    pub weights: Vec<PathBuf>,
    pub tokenizer: PathBuf,
    /// `tokenizer_config.json`, when the checkpoint has one (it names the eos/pad tokens).
    pub tokenizer_config: Option<PathBuf>,
    /// "local" or "hub:<repo id>".
    pub origin: String,
}

impl ModelFiles {
    pub fn read_config(&self) -> Result<ModelConfig> {
        ModelConfig::from_file(&self.config)
    }

    /// sha256 over the weight files: the file's own digest for one file, else the digest of
    /// the shards' digests in order (provenance for results).
    pub fn weights_sha256(&self) -> Result<String> {
        let digests = self
            .weights
            .iter()
            .map(|p| crate::fsutil::sha256_file(p))
            .collect::<Result<Vec<_>>>()?;
        Ok(if digests.len() == 1 {
            digests[0].clone()
        } else {
            crate::fsutil::sha256_bytes(digests.join("\n").as_bytes())
        })
    }
}

/// What a checkpoint's safetensors headers say about its tensors, read without touching
/// their data (the memory planner's view of the load).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoredTensors {
    /// Elements over all tensors of all shards.
    pub elements: usize,
    /// Bytes of tensor data over all shards (the header's offsets).
    pub bytes: usize,
}

impl StoredTensors {
    /// Mean bytes per stored element (4 for an f32 checkpoint, 2 for bf16 or f16).
    pub fn bytes_per_element(&self) -> f64 {
        if self.elements == 0 {
            0.0
        } else {
            self.bytes as f64 / self.elements as f64
        }
    }

    /// The bytes a build of `params` parameters reads through the memory map: the model's
    /// parameters (new heads and adapters too, a slight overestimate) at the stored bytes per
    /// element, never more than the checkpoint stores (an untied lm_head it holds is not read).
    pub fn mapped_bytes(&self, params: usize) -> f64 {
        params.min(self.elements) as f64 * self.bytes_per_element()
    }
}

/// The largest safetensors header read (the format's own limit is 100 MB).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Read the headers of `files` (8 bytes of length, then the JSON index of names, dtypes,
/// shapes and offsets) and count their elements and bytes; the tensor data is not read.
pub fn stored_tensors(files: &[PathBuf]) -> Result<StoredTensors> {
    use std::io::Read;
    let mut total = StoredTensors { elements: 0, bytes: 0 };
    for path in files {
        let bad = |why: String| Error::bad_input(format!("cannot read safetensors {}: {why}", path.display()));
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut len = [0u8; 8];
        f.read_exact(&mut len)
            .map_err(|_| bad("shorter than the 8-byte header length".into()))?;
        let n = u64::from_le_bytes(len);
        if n > MAX_HEADER_BYTES {
            return Err(bad(format!("header length {n} exceeds {MAX_HEADER_BYTES} bytes")));
        }
        let mut header = vec![0u8; n as usize];
        f.read_exact(&mut header)
            .map_err(|_| bad(format!("header of {n} bytes is cut short")))?;
        let meta: safetensors::tensor::Metadata =
            serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
        for info in meta.tensors().values() {
            total.elements += info.shape.iter().product::<usize>();
            total.bytes += info.data_offsets.1.saturating_sub(info.data_offsets.0);
        }
    }
    Ok(total)
}

/// Resolve a checkpoint: `local_dir` first, then `$CLSBENCH_MODEL_DIR/<last part of the id>`,
/// then `checkpoint` itself as a directory, then the Hub (cache first; network only when a
/// file is missing from the cache and `HF_HUB_OFFLINE` is not set).
pub fn resolve(checkpoint: &str, local_dir: Option<&Path>) -> Result<ModelFiles> {
    resolve_with(checkpoint, local_dir, &HubSettings::from_env())
}

/// Where hf-hub looks and whether it may use the network; read from the environment
/// (`HF_HOME`, `HF_HUB_OFFLINE`, `CLSBENCH_MODEL_DIR`) except in tests.
#[derive(Debug, Clone)]
pub struct HubSettings {
    pub cache: hf_hub::Cache,
    pub offline: bool,
    pub model_dir: Option<PathBuf>,
    /// The Hub's address (`HF_ENDPOINT`, default https://huggingface.co).
    pub endpoint: String,
}

impl HubSettings {
    pub fn from_env() -> HubSettings {
        HubSettings {
            cache: hf_hub::Cache::from_env(),
            offline: std::env::var("HF_HUB_OFFLINE")
                .map(|v| !v.is_empty() && v != "0")
                .unwrap_or(false),
            model_dir: std::env::var_os(MODEL_DIR_ENV).map(PathBuf::from),
            endpoint: std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into()),
        }
    }
}

pub fn resolve_with(checkpoint: &str, local_dir: Option<&Path>, hub: &HubSettings) -> Result<ModelFiles> {
    let mut tried = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(d) = local_dir {
        candidates.push(d.to_path_buf());
    }
    if let Some(root) = &hub.model_dir {
        let last = checkpoint.rsplit('/').next().unwrap_or(checkpoint);
        candidates.push(Path::new(&root).join(last));
    }
    candidates.push(PathBuf::from(checkpoint));
    for dir in candidates {
        if dir.join("config.json").is_file() {
            return from_dir(&dir);
        }
        tried.push(dir.display().to_string());
    }
    if looks_like_repo_id(checkpoint) {
        let also = format!(" (also tried local directories: {})", tried.join(", "));
        return from_hub(checkpoint, hub).map_err(|e| match e {
            Error::Hub { repo, message, source } => Error::Hub {
                repo,
                message: message + &also,
                source,
            },
            other => Error::bad_input(format!("{}{also}", other.message())),
        });
    }
    Err(Error::bad_input(format!(
        "model {checkpoint:?}: no config.json in any of: {}; give a directory in Hugging Face layout or a Hub id like \"org/name\"",
        tried.join(", ")
    )))
}

/// `owner/name` as the Hub spells them: letters, digits, `-_.`, neither starting nor ending with
/// `-` or `.`, no `--` or `..`. So `./model` and `../x/y` are paths, never sent to the Hub.
fn looks_like_repo_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    let part_ok = |p: &&str| {
        !p.is_empty()
            && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && ![p.chars().next(), p.chars().last()]
                .iter()
                .any(|c| matches!(c, Some('-' | '.')))
            && !p.contains("--")
            && !p.contains("..")
    };
    parts.len() == 2 && parts.iter().all(part_ok)
}

/// A local directory in Hugging Face layout.
pub fn from_dir(dir: &Path) -> Result<ModelFiles> {
    let need = |name: &str| -> Result<PathBuf> {
        let p = dir.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(Error::bad_input(format!(
                "model directory {}: missing file {name}",
                dir.display()
            )))
        }
    };
    let config = need("config.json")?;
    let tokenizer = need("tokenizer.json")?;
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let weights = if single.is_file() {
        vec![single]
    } else if index.is_file() {
        shard_names(&index)?
            .into_iter()
            .map(|s| dir.join(s))
            .collect::<Vec<_>>()
    } else {
        return Err(Error::bad_input(format!(
            "model directory {}: missing weights: expected model.safetensors or model.safetensors.index.json",
            dir.display()
        )));
    };
    for w in &weights {
        if !w.is_file() {
            return Err(Error::bad_input(format!(
                "model directory {}: missing weight shard {}",
                dir.display(),
                w.display()
            )));
        }
    }
    let tc = dir.join("tokenizer_config.json");
    Ok(ModelFiles {
        dir: dir.to_path_buf(),
        config,
        weights,
        tokenizer,
        tokenizer_config: tc.is_file().then_some(tc),
        origin: "local".into(),
    })
}

/// The distinct shard file names of a `model.safetensors.index.json`, in first-seen order.
fn shard_names(index: &Path) -> Result<Vec<String>> {
    let v: serde_json::Value = crate::fsutil::read_json(index)?;
    let map = v.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| {
        Error::bad_input(format!(
            "{}: field `weight_map`: expected an object tensor name -> shard file",
            index.display()
        ))
    })?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (name, file) in map {
        let f = file.as_str().ok_or_else(|| {
            Error::bad_input(format!(
                "{}: weight_map[{name:?}]: expected a file name",
                index.display()
            ))
        })?;
        if seen.insert(f.to_string()) {
            out.push(f.to_string());
        }
    }
    Ok(out)
}

/// Fetch a checkpoint through hf-hub: files already in the cache (`$HF_HOME/hub`) are used as
/// they are; missing ones are downloaded unless `HF_HUB_OFFLINE` is set.
fn from_hub(repo_id: &str, hub: &HubSettings) -> Result<ModelFiles> {
    let cache = &hub.cache;
    let cached = cache.model(repo_id.to_string());
    let api = if hub.offline {
        None
    } else {
        Some(
            hf_hub::api::sync::ApiBuilder::from_cache(cache.clone())
                .with_endpoint(hub.endpoint.clone())
                .with_progress(false)
                .build()
                .map_err(|e| Error::bad_input(format!("cannot set up the Hugging Face Hub client: {e}")))?,
        )
    };
    let fetch = |name: &str, required: bool| -> Result<Option<PathBuf>> {
        if let Some(p) = cached.get(name) {
            return Ok(Some(p));
        }
        let Some(api) = &api else {
            return if required {
                Err(Error::bad_input(format!(
                    "model {repo_id:?}: {name} is not in the Hugging Face cache ({}) and HF_HUB_OFFLINE is set; \
                     download it once online, or point `local_dir` / ${MODEL_DIR_ENV} at a local copy",
                    cache.path().display()
                )))
            } else {
                Ok(None)
            };
        };
        match api.model(repo_id.to_string()).get(name) {
            Ok(p) => Ok(Some(p)),
            Err(_) if !required => Ok(None),
            Err(e) => Err(Error::Hub {
                repo: repo_id.to_string(),
                message: format!(
                    "model {repo_id:?}: cannot download {name} from the Hugging Face Hub ({e}); if this machine is offline, \
                     point `local_dir` / ${MODEL_DIR_ENV} at a local copy or fill the cache at {}",
                    cache.path().display()
                ),
                source: Box::new(e),
            }),
        }
    };
    let config = fetch("config.json", true)?.expect("required");
    let tokenizer = fetch("tokenizer.json", true)?.expect("required");
    let tokenizer_config = fetch("tokenizer_config.json", false)?;
    let weights = match fetch("model.safetensors", false)? {
        Some(p) => vec![p],
        None => {
            let index = fetch("model.safetensors.index.json", true)?.expect("required");
            let mut out = Vec::new();
            for shard in shard_names(&index)? {
                out.push(fetch(&shard, true)?.expect("required"));
            }
            out
        }
    };
    let dir = config.parent().unwrap_or(Path::new(".")).to_path_buf();
    Ok(ModelFiles {
        dir,
        config,
        weights,
        tokenizer,
        tokenizer_config,
        origin: format!("hub:{repo_id}"),
    })
}

/// Memory-mapped safetensors weights, read by name with the shape the config implies.
pub struct Weights {
    st: candle_core::safetensors::MmapedSafetensors,
    names: HashMap<String, (Vec<usize>, usize)>,
    files: Vec<PathBuf>,
}

impl Weights {
    pub fn open(files: &[PathBuf]) -> Result<Weights> {
        // SAFETY: the mapped files are model checkpoints nobody writes to while we run; a
        // concurrent writer could change tensor bytes under us, which is the documented
        // hazard of memory maps and the price of not copying gigabytes up front.
        let st = unsafe { candle_core::safetensors::MmapedSafetensors::multi(files) }
            .map_err(|e| Error::bad_input(format!("cannot read safetensors {}: {e}", display_files(files))))?;
        let names = st
            .tensors()
            .into_iter()
            .enumerate()
            .map(|(i, (name, view))| (name, (view.shape().to_vec(), i)))
            .collect();
        Ok(Weights {
            st,
            names,
            files: files.to_vec(),
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.names.keys()
    }

    /// The tensor `name` converted to `dtype`, after checking its shape; `None` if absent.
    pub fn get(&self, name: &str, shape: &[usize], dtype: DType, device: &Device) -> Result<Option<Tensor>> {
        let Some((have, _)) = self.names.get(name) else {
            return Ok(None);
        };
        if have.as_slice() != shape {
            return Err(Error::bad_input(format!(
                "{}: tensor `{name}` has shape {have:?} but config.json implies {shape:?}",
                display_files(&self.files)
            )));
        }
        let t = self
            .st
            .load(name, device)
            .map_err(|e| Error::Model(format!("loading tensor `{name}`: {e}")))?;
        Ok(Some(if t.dtype() == dtype { t } else { t.to_dtype(dtype)? }))
    }
}

fn display_files(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_tensors_count_elements_and_bytes_from_the_headers_of_every_shard() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.safetensors"), dir.path().join("b.safetensors"));
        let f32s = Tensor::zeros((3, 4), DType::F32, &Device::Cpu).unwrap();
        let f16s = Tensor::zeros(6, DType::F16, &Device::Cpu).unwrap();
        candle_core::safetensors::save(&HashMap::from([("w".to_string(), f32s)]), &a).unwrap();
        candle_core::safetensors::save(&HashMap::from([("h".to_string(), f16s)]), &b).unwrap();
        let st = stored_tensors(&[a.clone(), b]).unwrap();
        assert_eq!((st.elements, st.bytes), (12 + 6, 12 * 4 + 6 * 2));
        assert!((st.bytes_per_element() - 60.0 / 18.0).abs() < 1e-12);
        // A build reads its parameters at that rate, never more than the files hold.
        assert!((st.mapped_bytes(6) - 20.0).abs() < 1e-9);
        assert_eq!(st.mapped_bytes(1000), 60.0);
        // Not a safetensors file: the error names it.
        std::fs::write(&a, b"\xff\x00\x00\x00\x00\x00\x00\x00{").unwrap();
        let err = stored_tensors(std::slice::from_ref(&a)).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::BAD_INPUT);
        assert!(err.to_string().contains(&a.display().to_string()), "{err}");
        std::fs::write(&a, b"abc").unwrap();
        assert!(stored_tensors(&[a])
            .unwrap_err()
            .to_string()
            .contains("8-byte header length"));
    }

    #[test]
    fn missing_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = from_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("config.json"), "{err}");
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let err = from_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("tokenizer.json"), "{err}");
        std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
        let err = from_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("model.safetensors"), "{err}");
    }

    #[test]
    fn sharded_index_lists_each_shard_once() {
        let dir = tempfile::tempdir().unwrap();
        let idx = dir.path().join("model.safetensors.index.json");
        std::fs::write(&idx, r#"{"metadata": {}, "weight_map": {"a": "m-1.safetensors", "b": "m-2.safetensors", "c": "m-1.safetensors"}}"#).unwrap();
        assert_eq!(shard_names(&idx).unwrap(), vec!["m-1.safetensors", "m-2.safetensors"]);
    }

    #[test]
    fn shape_mismatch_names_the_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.safetensors");
        let t = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        candle_core::safetensors::save(&HashMap::from([("w.weight", t)]), &p).unwrap();
        let w = Weights::open(&[p]).unwrap();
        let err = w
            .get("w.weight", &[3, 2], DType::F32, &Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("w.weight") && err.contains("[2, 3]") && err.contains("[3, 2]"),
            "{err}"
        );
        assert!(w.get("nope", &[1], DType::F32, &Device::Cpu).unwrap().is_none());
    }

    #[test]
    fn offline_hub_miss_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let hub = HubSettings {
            cache: hf_hub::Cache::new(dir.path().to_path_buf()),
            offline: true,
            model_dir: None,
            endpoint: "https://huggingface.co".into(),
        };
        let err = resolve_with("nobody/no-such-model", None, &hub)
            .unwrap_err()
            .to_string();
        assert!(err.contains("HF_HUB_OFFLINE") && err.contains("config.json"), "{err}");
    }

    /// Regression: `./no-such-model` was taken for a Hub id (owner ".") and sent to the Hub, so a
    /// missing local checkpoint depended on the network and, offline, exited 4 instead of 2.
    #[test]
    fn relative_paths_are_not_hub_ids() {
        for id in [
            "HuggingFaceTB/SmolLM2-135M",
            "answerdotai/ModernBERT-base",
            "Qwen/Qwen2.5-0.5B",
            "a_b/c.d",
        ] {
            assert!(looks_like_repo_id(id), "{id}");
        }
        for path in [
            "./no-such-model",
            "../x",
            "./a/b",
            "-x/y",
            "x/y.",
            "x/a--b",
            "x/a..b",
            "/abs",
            "a/b/c",
            "x",
        ] {
            assert!(!looks_like_repo_id(path), "{path}");
        }
    }

    /// Regression: a Hub that cannot be reached exited 2 ("bad input") as if the model id
    /// were wrong. The endpoint here is a closed local port: nothing leaves the machine.
    #[test]
    fn an_unreachable_hub_is_an_environment_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let hub = HubSettings {
            cache: hf_hub::Cache::new(dir.path().to_path_buf()),
            offline: false,
            model_dir: None,
            endpoint: "http://127.0.0.1:9".into(),
        };
        let err = resolve_with("nobody/no-such-model", None, &hub).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::ENVIRONMENT, "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("\"nobody/no-such-model\": cannot download config.json")
                && msg.contains("also tried local directories"),
            "{msg}"
        );
        assert!(
            std::error::Error::source(&err).is_some(),
            "the Hub's error is kept as the source"
        );
    }
}
