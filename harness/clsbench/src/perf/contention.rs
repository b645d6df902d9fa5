//! Was the machine shared while a model was timed?
//!
//! The 1-minute load average cannot say: it counts clsbench's own threads, so right after a
//! model trained on every core it reads "busy" for a minute or more although nothing else runs.
//! What can say is the CPU time everything else used during the timing window: all CPUs' busy
//! time (`/proc/stat`) minus this process's (`/proc/self/stat`), divided by the wall time, in
//! cores. Linux only (`None` elsewhere). Hand-written: sysinfo reports per-process usage as a
//! percentage between two refreshes, not the tick counts this subtraction needs.

use std::time::Instant;

/// Ticks per second of both files. USER_HZ is 100 on every Linux ABI clsbench builds for, and
/// the kernel converts to it for userspace whatever its internal HZ.
const USER_HZ: f64 = 100.0;

/// Other processes using more than this many cores on average make a timing suspect.
pub const BUSY_OTHER_CORES: f64 = 0.25;

/// CPU counters at one instant.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    busy_ticks: u64,
    own_ticks: u64,
    at: Instant,
}

impl CpuSnapshot {
    /// `None` without procfs.
    pub fn take() -> Option<CpuSnapshot> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        Some(CpuSnapshot {
            busy_ticks: parse_busy_ticks(&stat)?,
            own_ticks: parse_own_ticks(&own)?,
            at: Instant::now(),
        })
    }

    /// Average cores used by other processes since `self` was taken.
    pub fn other_cores_since(&self) -> Option<f64> {
        let now = CpuSnapshot::take()?;
        let secs = now.at.duration_since(self.at).as_secs_f64();
        other_cores(self, &now, secs)
    }
}

fn other_cores(before: &CpuSnapshot, after: &CpuSnapshot, secs: f64) -> Option<f64> {
    if secs <= 0.0 {
        return None;
    }
    let busy = after.busy_ticks.saturating_sub(before.busy_ticks) as f64;
    let own = after.own_ticks.saturating_sub(before.own_ticks) as f64;
    // Both counters tick in whole jiffies at different moments: clamp the rounding below zero.
    Some(((busy - own) / USER_HZ / secs).max(0.0))
}

/// Busy ticks of all CPUs: the aggregate `cpu` line's user + nice + system + irq + softirq +
/// steal (guest time is already inside user and nice; idle and iowait are not busy).
fn parse_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    (v.len() >= 4).then(|| get(0) + get(1) + get(2) + get(5) + get(6) + get(7))
}

/// utime + stime of this process (fields 14 and 15 of /proc/self/stat; the command name in
/// field 2 may contain spaces and parentheses, so count from the last ')').
fn parse_own_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field n is at index n - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ticks_skip_idle_and_iowait() {
        let stat = "cpu  100 5 30 9000 70 2 3 4 50 0\ncpu0 50 2 15 4500 35 1 1 2 25 0\nintr 1\n";
        assert_eq!(parse_busy_ticks(stat), Some(100 + 5 + 30 + 2 + 3 + 4));
        assert_eq!(parse_busy_ticks("intr 1\n"), None);
    }

    #[test]
    fn own_ticks_survive_a_command_name_with_spaces_and_parens() {
        let stat = "4242 (clsbench (x) y) R 1 4242 4242 0 -1 4194304 100 0 0 0 250 40 0 0 20 0 3 0 9 0";
        assert_eq!(parse_own_ticks(stat), Some(290));
    }

    #[test]
    fn other_cores_subtract_our_own_time() {
        let at = Instant::now();
        let before = CpuSnapshot {
            busy_ticks: 1_000,
            own_ticks: 400,
            at,
        };
        // 10 s on 2 cores: we used 2 cores (2,000 ticks), everything else 0.5 core (500 ticks).
        let after = CpuSnapshot {
            busy_ticks: 3_500,
            own_ticks: 2_400,
            at,
        };
        assert_eq!(other_cores(&before, &after, 10.0), Some(0.5));
        assert_eq!(other_cores(&before, &after, 0.0), None);
    }

    #[test]
    fn a_live_reading_is_a_non_negative_core_count() {
        if let Some(s) = CpuSnapshot::take() {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let cores = s.other_cores_since().expect("procfs was readable a moment ago");
            assert!(cores.is_finite() && cores >= 0.0);
        }
    }
}
