//! Hardware fingerprint recorded in every result, and the short slug used to file and price
//! results (`cpu-xeon-2c`, `t4`, `h100`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    pub slug: String,
    pub os: String,
    pub arch: String,
    pub cpu_model: String,
    /// Physical cores, where the OS reports them.
    #[serde(default)]
    pub cpu_cores: Option<usize>,
    /// Logical CPUs visible to the process.
    pub cpu_threads: usize,
    /// Threads our parallel code uses (rayon's pool; candle follows RAYON_NUM_THREADS too).
    pub threads_used: usize,
    pub ram_bytes: u64,
    /// The GPU the models ran on (CUDA builds only); `None` on CPU.
    #[serde(default)]
    pub gpu: Option<Gpu>,
    /// GPUs `nvidia-smi` lists, used or not (a CPU build on a GPU machine records them here).
    #[serde(default)]
    pub gpus_present: Vec<Gpu>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpu {
    pub name: String,
    pub compute_capability: Option<String>,
    pub memory_bytes: Option<u64>,
    pub driver: Option<String>,
}

impl Hardware {
    /// Describe this machine. `gpu` is filled only by a CUDA build (`--features cuda`) that
    /// finds one, because only then do the models run on it.
    pub fn detect() -> Hardware {
        let mut sys = sysinfo::System::new();
        sys.refresh_cpu_all();
        sys.refresh_memory();
        let cpu_model = sys
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let cpu_threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let mut hw = Hardware {
            slug: String::new(),
            os: format!(
                "{} {}",
                sysinfo::System::name().unwrap_or_default(),
                sysinfo::System::os_version().unwrap_or_default()
            )
            .trim()
            .to_string(),
            arch: std::env::consts::ARCH.to_string(),
            cpu_model,
            cpu_cores: sys.physical_core_count(),
            cpu_threads,
            threads_used: rayon::current_num_threads(),
            ram_bytes: sys.total_memory(),
            gpu: None,
            gpus_present: detect_gpus(),
        };
        if cfg!(feature = "cuda") {
            hw.gpu = hw.gpus_present.first().cloned();
        }
        hw.slug = hw.make_slug();
        hw
    }

    /// `cpu-<family>-<threads>c`, or the GPU's short name when a GPU is used.
    pub fn make_slug(&self) -> String {
        if let Some(gpu) = &self.gpu {
            return gpu_slug(&gpu.name);
        }
        format!("cpu-{}-{}c", cpu_family(&self.cpu_model), self.threads_used)
    }
}

/// GPUs as `nvidia-smi` reports them; empty without a driver. The query without
/// `compute_cap` is the fallback for drivers older than 510, which lack that field.
pub fn detect_gpus() -> Vec<Gpu> {
    let query = |fields: &str| {
        let out = std::process::Command::new("nvidia-smi")
            .args([
                format!("--query-gpu={fields}").as_str(),
                "--format=csv,noheader,nounits",
            ])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    if let Some(text) = query("name,compute_cap,memory.total,driver_version") {
        return parse_gpu_csv(&text, true);
    }
    query("name,memory.total,driver_version")
        .map(|text| parse_gpu_csv(&text, false))
        .unwrap_or_default()
}

/// Lines of `name, [compute_cap,] memory.total (MiB), driver_version`.
fn parse_gpu_csv(text: &str, with_compute_cap: bool) -> Vec<Gpu> {
    let known = |s: &str| (!s.is_empty() && !s.starts_with('[') && s != "N/A").then(|| s.to_string());
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let at = |i: usize| f.get(i).copied().unwrap_or("");
            let (cc, mem, driver) = if with_compute_cap {
                (known(at(1)), at(2), at(3))
            } else {
                (None, at(1), at(2))
            };
            Gpu {
                name: at(0).to_string(),
                compute_capability: cc,
                memory_bytes: mem.parse::<u64>().ok().map(|mib| mib * 1024 * 1024),
                driver: known(driver),
            }
        })
        .collect()
}

/// A short family name for a CPU brand string ("Intel(R) Xeon(R) Platinum 8488C" -> "xeon").
pub fn cpu_family(brand: &str) -> String {
    let b = brand.to_lowercase();
    for fam in [
        "xeon",
        "epyc",
        "ryzen",
        "threadripper",
        "core",
        "graviton",
        "neoverse",
        "ampere",
    ] {
        if b.contains(fam) {
            return fam.to_string();
        }
    }
    if let Some(m) = b
        .split_whitespace()
        .find(|w| w.len() == 2 && w.starts_with('m') && w[1..].chars().all(|c| c.is_ascii_digit()))
    {
        return format!("apple-{m}");
    }
    b.split(|c: char| !c.is_ascii_alphanumeric())
        .find(|w| w.len() >= 3)
        .unwrap_or("unknown")
        .to_string()
}

/// A short name for a GPU ("NVIDIA H100 80GB HBM3" -> "h100", "Tesla T4" -> "t4").
pub fn gpu_slug(name: &str) -> String {
    let n = name.to_lowercase();
    for model in [
        "h200", "h100", "a100", "a10g", "a10", "l40s", "l4", "t4", "v100", "rtx 4090", "rtx 3090",
    ] {
        if n.contains(model) {
            return model.replace(' ', "-");
        }
    }
    n.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty() && *w != "nvidia" && *w != "tesla")
        .next()
        .unwrap_or("gpu")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_short_and_stable() {
        assert_eq!(cpu_family("Intel(R) Xeon(R) Platinum 8488C"), "xeon");
        assert_eq!(cpu_family("AMD EPYC 7B13"), "epyc");
        assert_eq!(cpu_family("Apple M2 Pro"), "apple-m2");
        assert_eq!(gpu_slug("NVIDIA H100 80GB HBM3"), "h100");
        assert_eq!(gpu_slug("Tesla T4"), "t4");
        let hw = Hardware::detect();
        assert!(hw.slug.starts_with("cpu-") && hw.slug.ends_with('c'), "{}", hw.slug);
        assert!(hw.cpu_threads >= 1 && hw.ram_bytes > 0);
    }

    #[test]
    fn nvidia_smi_gpu_lines_parse() {
        let gpus = parse_gpu_csv(
            "NVIDIA H100 80GB HBM3, 9.0, 81559, 550.54.15\nTesla T4, [N/A], 15360, 535.1\n",
            true,
        );
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpus[0].compute_capability.as_deref(), Some("9.0"));
        assert_eq!(gpus[0].memory_bytes, Some(81559 * 1024 * 1024));
        assert_eq!(gpus[0].driver.as_deref(), Some("550.54.15"));
        assert_eq!(gpus[1].compute_capability, None);
        let old = parse_gpu_csv("Tesla T4, 15360, 470.82\n", false);
        assert_eq!(
            (old[0].compute_capability.clone(), old[0].driver.as_deref()),
            (None, Some("470.82"))
        );
    }
}
