//! Peak memory: the process's resident set (Linux `VmHWM`) and, when a GPU is used, device
//! memory sampled through `nvidia-smi` while the timing runs.
//!
//! The RSS peak is a process-wide high-water mark. Before each model's timing clsbench resets
//! it (`/proc/self/clear_refs`, Linux >= 4.0), so the peak covers that model's timing with its
//! weights resident; where the reset is refused the peak covers the whole process so far and
//! the report says so.

use serde::{Deserialize, Serialize};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// What the RSS peak covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RssScope {
    /// Reset just before the model's timing: the peak of the timing phase (weights included).
    Timing,
    /// The reset was refused: the peak of the whole process so far (earlier models included).
    Process,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// Peak resident set size; `None` where unavailable (not Linux).
    pub peak_rss_bytes: Option<u64>,
    pub rss_scope: Option<RssScope>,
    /// Resident set when the timing began (the fitted model, the data and whatever the fit
    /// left allocated): the peak minus this is what inference itself added.
    #[serde(default)]
    pub start_rss_bytes: Option<u64>,
    /// Peak device memory seen while timing; `None` without a GPU.
    pub device_peak_bytes: Option<u64>,
    /// How the device peak was measured, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_source: Option<String>,
}

/// `VmHWM` (peak RSS) in bytes, from /proc/self/status; `None` where there is no procfs.
pub fn peak_rss_bytes() -> Option<u64> {
    status_field_kib("VmHWM:").map(|kib| kib * 1024)
}

/// `VmRSS` (current RSS) in bytes.
pub fn current_rss_bytes() -> Option<u64> {
    status_field_kib("VmRSS:").map(|kib| kib * 1024)
}

fn status_field_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kib(&status, field)
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let mut parts = line[field.len()..].split_whitespace();
    let value = parts.next()?.parse().ok()?;
    (parts.next() == Some("kB")).then_some(value)
}

/// Reset the peak RSS to the current RSS; `false` where the kernel refuses or has no procfs.
pub fn reset_peak_rss() -> bool {
    // "5" resets the peak resident set size (proc(5), clear_refs); Linux >= 4.0.
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Samples device memory in a background thread until stopped.
pub struct DeviceMemorySampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(Option<u64>, Option<String>)>,
}

impl DeviceMemorySampler {
    /// Every `interval`, read this process's GPU memory from `nvidia-smi` (or, when the
    /// process is not listed, as inside some containers, the device's used memory). A sampled
    /// peak is a lower bound of the true peak.
    pub fn start(interval: Duration) -> DeviceMemorySampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let pid = std::process::id();
            let mut peak: Option<u64> = None;
            let mut source = None;
            loop {
                if let Some((bytes, how)) = sample_device_memory(pid) {
                    peak = Some(peak.map_or(bytes, |p| p.max(bytes)));
                    source = Some(how);
                }
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(interval);
            }
            (peak, source)
        });
        DeviceMemorySampler { stop, handle }
    }

    /// Stop sampling (after one last sample) and return the peak and how it was measured.
    pub fn finish(self) -> (Option<u64>, Option<String>) {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap_or((None, None))
    }
}

/// How `with_model_memory_sampled`'s peak is measured, in words (results' `device_source`).
pub const DRIVER_SOURCE: &str = "CUDA driver (cuMemGetInfo) device-wide used memory, sampled every 20 ms";

/// Run `work` while a second thread reads `model.device_memory_used_bytes()` every
/// `interval`; returns `work`'s result and the peak seen (`None` when the model reports no
/// device memory, as on the CPU). A sampled peak is a lower bound of the true peak.
pub fn with_model_memory_sampled<T: Send>(
    model: &dyn crate::classifier::TextClassifier,
    interval: Duration,
    work: impl FnOnce() -> T + Send,
) -> (T, Option<u64>) {
    with_memory_sampled(|| model.device_memory_used_bytes(), interval, work)
}

/// Run `work` while a second thread calls `read` every `interval`; returns `work`'s result and
/// the largest reading (`None` when the first reading is `None`: nothing to sample).
pub fn with_memory_sampled<T: Send>(
    read: impl Fn() -> Option<u64> + Sync,
    interval: Duration,
    work: impl FnOnce() -> T + Send,
) -> (T, Option<u64>) {
    let first = read();
    if first.is_none() {
        return (work(), None);
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut peak = first;
            while !stop.load(Ordering::SeqCst) {
                peak = peak.max(read());
                std::thread::sleep(interval);
            }
            peak.max(read())
        });
        let out = work();
        stop.store(true, Ordering::SeqCst);
        (out, sampler.join().unwrap_or(first))
    })
}

fn nvidia_smi(args: &[&str]) -> Option<String> {
    let out = Command::new("nvidia-smi").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn sample_device_memory(pid: u32) -> Option<(u64, String)> {
    if let Some(apps) = nvidia_smi(&["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]) {
        if let Some(mib) = process_mib(&apps, pid) {
            return Some((mib * MIB, "nvidia-smi per-process used memory, sampled".to_string()));
        }
    }
    let used = nvidia_smi(&["--query-gpu=memory.used", "--format=csv,noheader,nounits"])?;
    let mib = first_number(&used)?;
    Some((
        mib * MIB,
        "nvidia-smi device-wide used memory of GPU 0, sampled (process not listed)".to_string(),
    ))
}

const MIB: u64 = 1024 * 1024;

/// The MiB used by `pid` in `nvidia-smi --query-compute-apps=pid,used_memory` CSV output.
fn process_mib(csv: &str, pid: u32) -> Option<u64> {
    let mut total = None;
    for line in csv.lines() {
        let mut f = line.split(',').map(str::trim);
        if f.next().and_then(|p| p.parse::<u32>().ok()) == Some(pid) {
            if let Some(mib) = f.next().and_then(|m| m.parse::<u64>().ok()) {
                total = Some(total.unwrap_or(0) + mib); // one line per GPU the process uses
            }
        }
    }
    total
}

fn first_number(text: &str) -> Option<u64> {
    text.lines().next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_parse_in_kib() {
        let status = "Name:\tclsbench\nVmPeak:\t  100 kB\nVmHWM:\t    2192 kB\nVmRSS:\t    2100 kB\n";
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(2192));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
        assert_eq!(parse_status_kib("VmHWM:\t12 MB\n", "VmHWM:"), None, "unit must be kB");
    }

    #[test]
    #[cfg(target_os = "linux")]
    // The peak is process-wide and other tests reset it concurrently: run alone with
    // `cargo test --lib peak_rss -- --ignored --test-threads=1`.
    #[ignore = "process-wide high-water mark; other tests reset it concurrently"]
    fn peak_rss_grows_with_an_allocation_and_resets() {
        // Other tests run in this process at the same time, so compare with the current RSS and
        // leave slack for what they free meanwhile.
        let before = current_rss_bytes().unwrap();
        let block = vec![1u8; 256 << 20];
        std::hint::black_box(&block);
        let after = peak_rss_bytes().unwrap();
        assert!(
            after >= before + (200 << 20),
            "RSS {before} -> peak {after} after touching 256 MiB"
        );
        drop(block);
        if reset_peak_rss() {
            let reset = peak_rss_bytes().unwrap();
            assert!(
                reset < after,
                "reset peak {reset} should drop below {after} once the block is freed"
            );
        }
    }

    /// A model whose "device memory" is a counter the work moves, to test the sampler.
    struct Counted(std::sync::atomic::AtomicU64);

    impl crate::classifier::TextClassifier for Counted {
        fn n_classes(&self) -> usize {
            2
        }
        fn predict_proba(&self, texts: &[&str]) -> crate::Result<Vec<Vec<f32>>> {
            Ok(vec![vec![0.5, 0.5]; texts.len()])
        }
        fn device_memory_used_bytes(&self) -> Option<u64> {
            Some(self.0.load(Ordering::SeqCst))
        }
    }

    #[test]
    fn the_models_device_memory_peak_is_sampled_while_the_work_runs() {
        let m = Counted(std::sync::atomic::AtomicU64::new(100));
        let (out, peak) = with_model_memory_sampled(&m, Duration::from_millis(1), || {
            m.0.store(5000, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(30));
            m.0.store(200, Ordering::SeqCst);
            7
        });
        assert_eq!((out, peak), (7, Some(5000)));
        // A model without device memory (the CPU) gets no sampler and no peak.
        struct Cpu;
        impl crate::classifier::TextClassifier for Cpu {
            fn n_classes(&self) -> usize {
                2
            }
            fn predict_proba(&self, _: &[&str]) -> crate::Result<Vec<Vec<f32>>> {
                Ok(vec![])
            }
        }
        assert_eq!(
            with_model_memory_sampled(&Cpu, Duration::from_millis(1), || 1),
            (1, None)
        );
    }

    #[test]
    fn nvidia_smi_process_lines_are_summed_for_our_pid() {
        let csv = "1234, 500\n999, 70\n1234, 250\n";
        assert_eq!(process_mib(csv, 1234), Some(750));
        assert_eq!(process_mib(csv, 42), None);
        assert_eq!(process_mib("[Not Supported]\n", 42), None);
        assert_eq!(first_number("81559\n"), Some(81559));
    }
}
