//! Resource monitor: snapshots of memory, CPU, temperature and battery, with a
//! short history. The source is a trait, so tests (and other platforms) can
//! drive every state; [`SystemSource`] reads the real machine (sysinfo, and
//! `/sys/class/power_supply` for the battery on Linux).

use std::{
    collections::VecDeque,
    path::Path,
    sync::Mutex,
    time::SystemTime,
};

use super::adaptive::{BatteryState, DeviceState, MemoryPressure, ThermalState};

/// One reading of the machine's resources.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSnapshot {
    /// When it was taken.
    pub at: SystemTime,
    /// Total memory, bytes.
    pub memory_total: u64,
    /// Memory available to new allocations, bytes.
    pub memory_available: u64,
    /// Global CPU use, percent.
    pub cpu_usage_percent: f32,
    /// Hottest temperature sensor, °C, where the platform exposes one.
    pub temperature_celsius: Option<f32>,
    /// Battery level, percent, when there is a battery.
    pub battery_percent: Option<u8>,
    /// Battery state.
    pub battery: BatteryState,
    /// GPU memory in use, bytes, when known.
    pub gpu_memory_used: Option<u64>,
}

impl ResourceSnapshot {
    /// Memory pressure: critical under 10 % available, warning under 20 %.
    pub fn memory_pressure(&self) -> MemoryPressure {
        if self.memory_total == 0 {
            return MemoryPressure::Normal;
        }
        let free = self.memory_available as f64 / self.memory_total as f64;
        if free < 0.10 {
            MemoryPressure::Critical
        } else if free < 0.20 {
            MemoryPressure::Warning
        } else {
            MemoryPressure::Normal
        }
    }

    /// Thermal state from the hottest sensor: fair from 75 °C, serious from 85 °C,
    /// critical from 95 °C; nominal when there is no sensor.
    pub fn thermal_state(&self) -> ThermalState {
        match self.temperature_celsius {
            Some(t) if t >= 95.0 => ThermalState::Critical,
            Some(t) if t >= 85.0 => ThermalState::Serious,
            Some(t) if t >= 75.0 => ThermalState::Fair,
            _ => ThermalState::Nominal,
        }
    }

    /// The state the adaptive rules look at.
    pub fn device_state(&self) -> DeviceState {
        DeviceState {
            thermal: self.thermal_state(),
            memory: self.memory_pressure(),
            battery_percent: self.battery_percent,
            battery: self.battery,
        }
    }
}

/// Where snapshots come from.
pub trait ResourceSource: Send {
    /// Take a reading.
    fn sample(&mut self) -> ResourceSnapshot;
}

/// The real machine.
pub struct SystemSource {
    system: sysinfo::System,
    components: Option<sysinfo::Components>,
}

impl std::fmt::Debug for SystemSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemSource").finish_non_exhaustive()
    }
}

impl SystemSource {
    /// Open the platform's sources; fails where sysinfo does not support the platform.
    pub fn new() -> Result<Self, String> {
        let system = sysinfo::System::new().map_err(|e| format!("cannot read system information: {e:?}"))?;
        // Temperature sensors are optional (containers and VMs often have none).
        let components = sysinfo::Components::new_with_refreshed_list().ok();
        Ok(Self { system, components })
    }
}

impl ResourceSource for SystemSource {
    fn sample(&mut self) -> ResourceSnapshot {
        self.system.refresh_memory();
        self.system.refresh_cpu_usage();
        let temperature_celsius = self.components.as_mut().and_then(|c| {
            c.refresh(false);
            c.iter().filter_map(|c| c.temperature()).filter(|t| t.is_finite()).reduce(f32::max)
        });
        let (battery_percent, battery) = read_power_supply(Path::new("/sys/class/power_supply"));
        ResourceSnapshot {
            at: SystemTime::now(),
            memory_total: self.system.total_memory(),
            memory_available: self.system.available_memory(),
            cpu_usage_percent: self.system.global_cpu_usage(),
            temperature_celsius,
            battery_percent,
            battery,
            gpu_memory_used: None,
        }
    }
}

/// Battery level and state from a Linux `power_supply` class folder (the first
/// supply of type `Battery`); `(None, Unknown)` when there is none.
pub fn read_power_supply(root: &Path) -> (Option<u8>, BatteryState) {
    let Ok(entries) = std::fs::read_dir(root) else { return (None, BatteryState::Unknown) };
    let mut supplies: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    supplies.sort();
    let read = |dir: &Path, file: &str| std::fs::read_to_string(dir.join(file)).map(|s| s.trim().to_owned()).ok();
    for dir in supplies {
        if read(&dir, "type").as_deref() != Some("Battery") {
            continue;
        }
        let level = read(&dir, "capacity").and_then(|c| c.parse::<u8>().ok()).map(|c| c.min(100));
        let state = match read(&dir, "status").as_deref() {
            Some("Charging") => BatteryState::Charging,
            Some("Discharging") => BatteryState::Discharging,
            Some("Full") => BatteryState::Full,
            // "Not charging" means on external power, holding its level.
            Some("Not charging") => BatteryState::Full,
            _ => BatteryState::Unknown,
        };
        return (level, state);
    }
    (None, BatteryState::Unknown)
}

/// Takes snapshots from a source and keeps the last few.
pub struct ResourceMonitor {
    source: Mutex<Box<dyn ResourceSource>>,
    history: Mutex<VecDeque<ResourceSnapshot>>,
    capacity: usize,
}

impl std::fmt::Debug for ResourceMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceMonitor").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl ResourceMonitor {
    /// A monitor over `source` keeping `capacity` snapshots.
    pub fn new(source: Box<dyn ResourceSource>, capacity: usize) -> Self {
        Self { source: Mutex::new(source), history: Mutex::default(), capacity: capacity.max(1) }
    }

    /// Take a snapshot now and remember it.
    pub fn sample(&self) -> ResourceSnapshot {
        let snapshot = self.source.lock().unwrap_or_else(|p| p.into_inner()).sample();
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if history.len() == self.capacity {
            history.pop_front();
        }
        history.push_back(snapshot.clone());
        snapshot
    }

    /// The latest snapshot, taking one if there is none yet.
    pub fn current(&self) -> ResourceSnapshot {
        let last = self.history.lock().unwrap_or_else(|p| p.into_inner()).back().cloned();
        last.unwrap_or_else(|| self.sample())
    }

    /// The remembered snapshots, oldest first.
    pub fn history(&self) -> Vec<ResourceSnapshot> {
        self.history.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(available_pct: u64, temp: Option<f32>) -> ResourceSnapshot {
        ResourceSnapshot {
            at: SystemTime::now(),
            memory_total: 1000,
            memory_available: available_pct * 10,
            cpu_usage_percent: 0.0,
            temperature_celsius: temp,
            battery_percent: None,
            battery: BatteryState::Unknown,
            gpu_memory_used: None,
        }
    }

    #[test]
    fn pressure_and_thermal_levels() {
        assert_eq!(snap(50, None).memory_pressure(), MemoryPressure::Normal);
        assert_eq!(snap(15, None).memory_pressure(), MemoryPressure::Warning);
        assert_eq!(snap(5, None).memory_pressure(), MemoryPressure::Critical);
        assert_eq!(snap(50, None).thermal_state(), ThermalState::Nominal);
        assert_eq!(snap(50, Some(80.0)).thermal_state(), ThermalState::Fair);
        assert_eq!(snap(50, Some(90.0)).thermal_state(), ThermalState::Serious);
        assert_eq!(snap(50, Some(99.0)).thermal_state(), ThermalState::Critical);
    }

    struct Scripted(Vec<ResourceSnapshot>);

    impl ResourceSource for Scripted {
        fn sample(&mut self) -> ResourceSnapshot {
            self.0.remove(0)
        }
    }

    #[test]
    fn history_keeps_the_last_snapshots() {
        let monitor = ResourceMonitor::new(Box::new(Scripted((0..5).map(|i| snap(10 * i, None)).collect())), 3);
        for _ in 0..5 {
            monitor.sample();
        }
        let kept: Vec<u64> = monitor.history().iter().map(|s| s.memory_available).collect();
        assert_eq!(kept, [200, 300, 400]);
        assert_eq!(monitor.current().memory_available, 400);
        assert_eq!(monitor.current().device_state().memory, MemoryPressure::Normal);
    }

    #[test]
    fn battery_from_a_power_supply_folder() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(read_power_supply(root.path()), (None, BatteryState::Unknown));
        let ac = root.path().join("AC");
        std::fs::create_dir(&ac).unwrap();
        std::fs::write(ac.join("type"), "Mains\n").unwrap();
        let bat = root.path().join("BAT0");
        std::fs::create_dir(&bat).unwrap();
        std::fs::write(bat.join("type"), "Battery\n").unwrap();
        std::fs::write(bat.join("capacity"), "17\n").unwrap();
        std::fs::write(bat.join("status"), "Discharging\n").unwrap();
        assert_eq!(read_power_supply(root.path()), (Some(17), BatteryState::Discharging));
        std::fs::write(bat.join("status"), "Charging\n").unwrap();
        assert_eq!(read_power_supply(root.path()), (Some(17), BatteryState::Charging));
    }

    #[test]
    fn the_real_machine_can_be_sampled() {
        let mut source = SystemSource::new().expect("sysinfo supports Linux");
        let s = source.sample();
        assert!(s.memory_total > 0 && s.memory_available <= s.memory_total, "{s:?}");
    }
}
