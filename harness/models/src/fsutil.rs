//! File helpers shared by every writer: atomic writes (temp file + rename, so an interrupted
//! run never leaves a half-written result; the temp file is removed on every error path and
//! swept at the next run when a killed process left it), path components checked before they
//! are joined, the run directory's lock, and sha256 of inputs for provenance.

use crate::error::{Error, IoOp, Result};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// The marker in every temp file's name: `.<name>.tmp-<pid>` (earlier versions also wrote
/// `.<stem>.tmp-<pid>.png` for plots; the sweep recognises both).
const TMP_MARKER: &str = ".tmp-";

/// The sibling temp path `write_atomic_with` uses for `path`.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}{TMP_MARKER}{}", std::process::id()))
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Write `bytes` to `path` atomically: write a sibling temp file, fsync, rename over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    // Errors name the file the user will look for, not the temp file (which is removed).
    write_atomic_with(path, |tmp| {
        let mut f = std::fs::File::create(tmp).map_err(|e| Error::write(path, e))?;
        f.write_all(bytes).map_err(|e| Error::write(path, e))?;
        f.sync_all().map_err(|e| Error::write(path, e))
    })
}

/// Let `fill` write a temp file (a streaming writer such as safetensors'), then rename it over
/// `path`. On any error the temp file is removed, so a full disk stays no fuller.
pub fn write_atomic_with(path: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir).map_err(|e| Error::io_op(dir, IoOp::CreateDir, e))?;
    let tmp = temp_path(path);
    let done = fill(&tmp).and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io_op(path, IoOp::Rename, e)));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// Serialise `value` as pretty JSON and write it atomically.
pub fn write_json_atomic<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::encode(path.display().to_string(), e))?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Remove temp files (`.<name>.tmp-<pid>...`) under `dir`, recursively, whose writing process
/// is gone: a SIGKILL between create and rename leaves one behind. Files of live processes
/// (another run writing there right now) are left alone. Returns how many were removed.
pub fn sweep_stale_temps(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            removed += sweep_stale_temps(&path);
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = temp_owner(&name) else { continue };
        if !process_alive(pid) && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The pid in a temp file's name, if it is one of ours.
fn temp_owner(name: &str) -> Option<u32> {
    if !name.starts_with('.') {
        return None;
    }
    let (_, rest) = name.rsplit_once(TMP_MARKER)?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Whether a process with this pid exists on this machine (Linux: /proc; elsewhere we cannot
/// tell cheaply and say yes, so nothing is swept).
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// Check that `value` can be used as one path component: letters, digits, `-`, `_`, `.`, and
/// not `.` or `..` (a suite name or run id becomes a directory; it must stay inside the
/// output directory).
pub fn path_component<'a>(field: &str, value: &'a str) -> Result<&'a str> {
    let ok_chars = !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok_chars || value == "." || value == ".." {
        return Err(Error::bad_input(format!(
            "{field}: expected letters, digits, '-', '_' or '.' (a single directory name, not \".\" or \"..\"), got {value:?}"
        )));
    }
    Ok(value)
}

/// `base` joined with `parts`, each checked by [`path_component`]; the result is checked
/// again to lie under `base` (so no future caller can join its way out).
pub fn join_under(base: &Path, parts: &[(&str, &str)]) -> Result<PathBuf> {
    let mut path = base.to_path_buf();
    for (field, value) in parts {
        path.push(path_component(field, value)?);
    }
    let inside = path
        .strip_prefix(base)
        .map(|rest| rest.components().all(|c| matches!(c, Component::Normal(_))))
        .unwrap_or(false);
    if !inside {
        return Err(Error::bad_input(format!(
            "{} is not inside {}",
            path.display(),
            base.display()
        )));
    }
    Ok(path)
}

/// An advisory lock on a run directory (`<dir>/.lock`), held until dropped; the file says who
/// holds it (pid, host, start time) so a refused second writer can name the holder. The
/// kernel releases the lock when the process dies, so a killed run never blocks the next one.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
    path: PathBuf,
}

impl DirLock {
    pub const FILE: &'static str = ".lock";

    pub fn acquire(dir: &Path) -> Result<DirLock> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io_op(dir, IoOp::CreateDir, e))?;
        let path = dir.join(Self::FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::write(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Environment(format!(
                    "{} is being written by another clsbench run ({}); wait for it to finish or use another --run-id",
                    dir.display(),
                    if holder.is_empty() { "holder unknown" } else { holder }
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io_op(&path, IoOp::Lock, e)),
        }
        let host = sysinfo::System::host_name().unwrap_or_else(|| "unknown host".into());
        let who = format!(
            "pid {} on {host}, since {}\n",
            std::process::id(),
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        file.set_len(0).map_err(|e| Error::write(&path, e))?;
        file.write_all(who.as_bytes()).map_err(|e| Error::write(&path, e))?;
        Ok(DirLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Read and parse a JSON file, naming the file in any error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// sha256 of a file's bytes, hex encoded. Memoised for this process by (path, size, mtime):
/// the resume check hashes base weights that training then hashes again.
pub fn sha256_file(path: &Path) -> Result<String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Stamp = (PathBuf, u64, Option<std::time::SystemTime>);
    static MEMO: OnceLock<Mutex<HashMap<Stamp, String>>> = OnceLock::new();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let stamp: Stamp = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let memo = MEMO.get_or_init(Default::default);
    if let Some(hit) = memo.lock().ok().and_then(|m| m.get(&stamp).cloned()) {
        return Ok(hit);
    }
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let digest = hex::encode(hasher.finalize());
    if let Ok(mut m) = memo.lock() {
        m.insert(stamp, digest.clone());
    }
    Ok(digest)
}

/// sha256 of bytes already in memory, hex encoded.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_json_atomic(&p, &serde_json::json!({"x": 1})).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
        let v: serde_json::Value = read_json(&p).unwrap();
        assert_eq!(v["x"], 1);
    }

    #[test]
    fn failed_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        let err = write_atomic_with(&p, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(Error::write(tmp, std::io::Error::from(std::io::ErrorKind::StorageFull)))
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("cannot write"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn stale_temp_files_of_dead_processes_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("plots");
        std::fs::create_dir(&sub).unwrap();
        // pid 4194305 is above Linux's pid_max limit (2^22), so no process can hold it.
        let dead = sub.join(".quality.tmp-4194305.png");
        let mine = sub.join(format!(".summary.md.tmp-{}", std::process::id()));
        let keep = sub.join("quality.png");
        for p in [&dead, &mine, &keep] {
            std::fs::write(p, b"").unwrap();
        }
        assert_eq!(sweep_stale_temps(dir.path()), 1);
        assert!(!dead.exists() && mine.exists() && keep.exists());
    }

    #[test]
    fn names_that_leave_the_output_directory_are_refused() {
        let base = Path::new("out");
        for bad in ["..", ".", "", "../../escaped", "/abs", "a/b", "a\\b"] {
            let err = join_under(base, &[("--run-id", bad)]).unwrap_err();
            assert!(err.to_string().contains("--run-id"), "{bad}: {err}");
            assert_eq!(err.exit_code(), 2);
        }
        assert_eq!(join_under(base, &[("name", "s-1.v2")]).unwrap(), base.join("s-1.v2"));
    }

    #[test]
    fn a_second_writer_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = DirLock::acquire(dir.path()).unwrap();
        let err = DirLock::acquire(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&format!("pid {}", std::process::id())), "{msg}");
        assert_eq!(err.exit_code(), crate::error::exit::ENVIRONMENT);
        drop(held);
        DirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn sha256_matches_known_digest() {
        // sha256("abc") from FIPS 180-2.
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
