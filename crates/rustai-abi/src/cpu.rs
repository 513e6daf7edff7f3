//! Plugin- and host-side helper: how many CPU threads compute should use by default.
//! Not part of the ABI (nothing here crosses it).
//!
//! Inference is bound by memory bandwidth and the SIMD units of each *physical* core:
//! threads beyond the physical cores the process may run on (its CPU affinity and cgroup
//! quota) only contend with each other, which on a 2-core machine halves generation speed.

use std::collections::BTreeSet;

/// Physical cores this process may use: the CPUs in its affinity mask counted once per
/// (package, core) pair, and never more than the scheduler grants (`available_parallelism`
/// honours the affinity mask and a cgroup CPU quota). At least 1.
pub fn usable_cores() -> u32 {
    let granted = std::thread::available_parallelism().map_or(1, |n| n.get());
    let physical = allowed_cpus().and_then(|cpus| physical_cores(&cpus, |path| std::fs::read_to_string(path).ok()));
    let n = physical.map_or(granted, |p| p.min(granted));
    u32::try_from(n).unwrap_or(u32::MAX).max(1)
}

/// The CPUs in this process's affinity mask (`Cpus_allowed_list` in `/proc/self/status`).
fn allowed_cpus() -> Option<Vec<u32>> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
    parse_cpu_list(list.trim())
}

/// A kernel CPU list such as `0-3,8,10-11`.
pub(crate) fn parse_cpu_list(list: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?);
                if b < a || b - a > 65_536 {
                    return None;
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    (!cpus.is_empty()).then_some(cpus)
}

/// Distinct (package, core) pairs among `cpus`, read through `read` from sysfs topology;
/// `None` when the topology cannot be read (then only the scheduler's count is used).
pub(crate) fn physical_cores(cpus: &[u32], read: impl Fn(&str) -> Option<String>) -> Option<usize> {
    let mut cores = BTreeSet::new();
    for cpu in cpus {
        let field = |name: &str| read(&format!("/sys/devices/system/cpu/cpu{cpu}/topology/{name}"))?.trim().parse::<i64>().ok();
        cores.insert((field("physical_package_id")?, field("core_id")?));
    }
    (!cores.is_empty()).then_some(cores.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-3,8,10-11"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(parse_cpu_list("5"), Some(vec![5]));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn hyperthread_siblings_count_once() {
        // cpu0/cpu2 and cpu1/cpu3 are siblings on one package.
        let topo = |path: &str| {
            let cpu: u32 = path.split("/cpu").nth(2)?.split('/').next()?.parse().ok()?;
            Some(if path.ends_with("core_id") { (cpu % 2).to_string() } else { "0".to_owned() })
        };
        assert_eq!(physical_cores(&[0, 1, 2, 3], topo), Some(2));
        assert_eq!(physical_cores(&[0, 2], topo), Some(1));
        assert_eq!(physical_cores(&[0], |_| None), None);
    }

    #[test]
    fn never_more_than_the_scheduler_grants() {
        let granted = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        assert!((1..=granted).contains(&usable_cores()));
    }
}
