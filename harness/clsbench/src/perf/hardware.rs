//! Hardware fingerprint recorded in every result, and the short slug used to file and price
//! results (`cpu-xeon-2c`, `t4`, `h100`).

use crate::models::device::{GpuInfo, ResolvedDevice};
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
    /// The GPU the models ran on (the run's resolved device); `None` on the CPU.
    #[serde(default)]
    pub gpu: Option<Gpu>,
    /// The device models ran on: `cpu` or `cuda:N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
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
    /// Describe this machine for a run on `device`: `gpu` (and the slug) is the GPU the run
    /// uses, from `nvidia-smi`'s line for it (driver version included) completed by what the
    /// CUDA driver itself reports (name, compute capability, memory) when `nvidia-smi` is
    /// absent or silent.
    pub fn detect_for(device: &ResolvedDevice) -> Hardware {
        let mut hw = Hardware::detect();
        hw.device = Some(device.label.clone());
        if let Some(info) = &device.gpu {
            hw.gpu = Some(gpu_record(info, &hw.gpus_present));
            hw.slug = hw.make_slug();
        }
        hw
    }

    /// Describe this machine, models on the CPU (`gpu` empty; `gpus_present` lists what
    /// `nvidia-smi` sees).
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
            device: None,
            gpus_present: detect_gpus(),
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

/// The record of the GPU a run uses: `nvidia-smi`'s line at its index (which has the driver
/// version) when it names the same GPU, with the driver's own compute capability and memory
/// filling what that line lacks; the driver's view alone otherwise.
pub fn gpu_record(info: &GpuInfo, present: &[Gpu]) -> Gpu {
    let from_driver = Gpu {
        name: info.name.clone(),
        compute_capability: Some(info.compute_capability_string()),
        memory_bytes: Some(info.memory_bytes),
        driver: None,
    };
    match present.get(info.ordinal) {
        Some(smi) if smi.name == info.name => Gpu {
            name: smi.name.clone(),
            compute_capability: smi.compute_capability.clone().or(from_driver.compute_capability),
            memory_bytes: smi.memory_bytes.or(from_driver.memory_bytes),
            driver: smi.driver.clone(),
        },
        // No nvidia-smi, or its order differs from CUDA's (CUDA_VISIBLE_DEVICES): the driver
        // version is still the same for every GPU of the machine.
        _ => Gpu {
            driver: present.first().and_then(|g| g.driver.clone()),
            ..from_driver
        },
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
        .find(|w| !w.is_empty() && *w != "nvidia" && *w != "tesla")
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
    fn the_gpu_record_joins_nvidia_smi_and_the_driver() {
        let h200 = GpuInfo {
            ordinal: 0,
            name: "NVIDIA H200".into(),
            compute_capability: (9, 0),
            memory_bytes: 150_754_820_096,
        };
        let smi = parse_gpu_csv("NVIDIA H200, 9.0, 143771, 580.159.03\n", true);
        let g = gpu_record(&h200, &smi);
        assert_eq!(g, smi[0], "nvidia-smi's line wins where it has the field");
        // An old driver's nvidia-smi without compute_cap: the driver's fills it in.
        let old = parse_gpu_csv("NVIDIA H200, 143771, 470.82\n", false);
        let g = gpu_record(&h200, &old);
        assert_eq!(g.compute_capability.as_deref(), Some("9.0"));
        assert_eq!(g.memory_bytes, Some(143771 * 1024 * 1024));
        // No nvidia-smi at all: the driver's view, no driver version.
        let g = gpu_record(&h200, &[]);
        assert_eq!(
            (
                g.name.as_str(),
                g.compute_capability.as_deref(),
                g.memory_bytes,
                g.driver
            ),
            ("NVIDIA H200", Some("9.0"), Some(150_754_820_096), None)
        );
        assert_eq!(gpu_slug(&g.name), "h200");
        let hw = Hardware::detect_for(&ResolvedDevice::cpu(crate::models::device::DeviceRequest::Auto));
        assert_eq!((hw.gpu, hw.device.as_deref()), (None, Some("cpu")));
    }

    #[test]
    fn every_priced_gpu_slug_comes_from_its_nvidia_smi_name() {
        for (name, slug) in [
            ("Tesla T4", "t4"),
            ("NVIDIA L4", "l4"),
            ("NVIDIA A10G", "a10g"),
            ("NVIDIA A100-SXM4-40GB", "a100"),
            ("NVIDIA H100 80GB HBM3", "h100"),
            ("NVIDIA H200", "h200"),
        ] {
            assert_eq!(gpu_slug(name), slug, "{name}");
            let prices = crate::perf::prices::PriceTable::builtin().unwrap();
            assert!(prices.lookup(slug).is_some(), "no built-in price for {slug}");
        }
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
