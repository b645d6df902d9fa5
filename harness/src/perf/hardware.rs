//! Hardware fingerprint recorded in every result, and the short slug used to file and price
//! results (`cpu-xeon-2c`, `t4`, `h100`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    pub slug: String,
    pub os: String,
    pub arch: String,
    pub cpu_model: String,
    /// Logical CPUs visible to the process.
    pub cpu_threads: usize,
    /// Threads our parallel code uses (rayon's pool; candle follows RAYON_NUM_THREADS too).
    pub threads_used: usize,
    pub ram_bytes: u64,
    #[serde(default)]
    pub gpu: Option<Gpu>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpu {
    pub name: String,
    pub compute_capability: Option<String>,
    pub memory_bytes: Option<u64>,
    pub driver: Option<String>,
}

impl Hardware {
    /// Describe this machine (CPU only; the CUDA build fills `gpu`).
    pub fn detect() -> Hardware {
        let mut sys = sysinfo::System::new();
        sys.refresh_cpu_all();
        sys.refresh_memory();
        let cpu_model = sys.cpus().first().map(|c| c.brand().trim().to_string()).filter(|s| !s.is_empty()).unwrap_or_else(|| "unknown".into());
        let cpu_threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let mut hw = Hardware {
            slug: String::new(),
            os: format!("{} {}", sysinfo::System::name().unwrap_or_default(), sysinfo::System::os_version().unwrap_or_default()).trim().to_string(),
            arch: std::env::consts::ARCH.to_string(),
            cpu_model,
            cpu_threads,
            threads_used: rayon::current_num_threads(),
            ram_bytes: sys.total_memory(),
            gpu: None,
        };
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

/// A short family name for a CPU brand string ("Intel(R) Xeon(R) Platinum 8488C" -> "xeon").
pub fn cpu_family(brand: &str) -> String {
    let b = brand.to_lowercase();
    for fam in ["xeon", "epyc", "ryzen", "threadripper", "core", "graviton", "neoverse", "ampere"] {
        if b.contains(fam) {
            return fam.to_string();
        }
    }
    if let Some(m) = b.split_whitespace().find(|w| w.len() == 2 && w.starts_with('m') && w[1..].chars().all(|c| c.is_ascii_digit())) {
        return format!("apple-{m}");
    }
    b.split(|c: char| !c.is_ascii_alphanumeric()).find(|w| w.len() >= 3).unwrap_or("unknown").to_string()
}

/// A short name for a GPU ("NVIDIA H100 80GB HBM3" -> "h100", "Tesla T4" -> "t4").
pub fn gpu_slug(name: &str) -> String {
    let n = name.to_lowercase();
    for model in ["h200", "h100", "a100", "a10g", "a10", "l40s", "l4", "t4", "v100", "rtx 4090", "rtx 3090"] {
        if n.contains(model) {
            return model.replace(' ', "-");
        }
    }
    n.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty() && *w != "nvidia" && *w != "tesla").next().unwrap_or("gpu").to_string()
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
}
