//! Every power profile and every rule of the adaptive engine, on synthetic device states.

use super::*;

fn run(profile: PowerProfile, state: DeviceState) -> (InferenceParams, Vec<(&'static str, String, String)>) {
    let (p, changes) = adapt(InferenceParams::default(), profile, &AdaptiveConfig::default(), &state);
    (p, changes.into_iter().map(|c| (c.field, c.to, c.reason)).collect())
}

fn rule_changes(profile: PowerProfile, state: DeviceState) -> Vec<(&'static str, String, String)> {
    run(profile, state).1.into_iter().filter(|(_, _, why)| !why.starts_with("power profile")).collect()
}

fn c(field: &'static str, to: &str, why: &str) -> (&'static str, String, String) {
    (field, to.to_owned(), why.to_owned())
}

#[test]
fn every_profile_caps_to_its_limits() {
    for profile in [PowerProfile::Performance, PowerProfile::Balanced, PowerProfile::PowerSaver, PowerProfile::UltraSaver] {
        let limits = profile.limits();
        let (p, changes) = run(profile, DeviceState::default());
        assert_eq!(p.threads, limits.max_threads, "{profile:?}");
        assert_eq!(p.max_tokens, limits.max_local_tokens, "{profile:?}");
        assert_eq!(p.batch_size, limits.batch_size, "{profile:?}");
        assert_eq!(p.context_length, limits.context_length, "{profile:?}");
        assert_eq!(p.use_gpu, limits.use_gpu, "{profile:?}");
        assert_eq!(p.prefer_cloud, limits.prefer_cloud, "{profile:?}");
        assert_eq!(p.cache_enabled, limits.caching, "{profile:?}");
        let why = format!("power profile {}", profile.name());
        assert!(changes.iter().all(|(_, _, r)| *r == why), "{profile:?}: {changes:?}");
    }
    let (p, changes) = run(PowerProfile::UltraSaver, DeviceState::default());
    assert!(p.prefer_cloud && !p.use_gpu && !p.cache_enabled);
    assert!(changes.contains(&c("prefer_cloud", "true", "power profile ultra-saver")));
    let (p, _) = run(PowerProfile::Performance, DeviceState::default());
    assert!(p.use_gpu && !p.prefer_cloud && p.cache_enabled);
}

#[test]
fn a_request_already_within_the_profile_is_left_alone() {
    let modest = InferenceParams { max_tokens: 64, threads: 2, batch_size: 1, context_length: 512, ..InferenceParams::default() };
    let (p, changes) = adapt(modest, PowerProfile::Balanced, &AdaptiveConfig::default(), &DeviceState::default());
    assert_eq!(p, modest);
    assert!(changes.is_empty(), "{changes:?}");
}

#[test]
fn custom_profile() {
    let limits = ProfileLimits { max_threads: 3, max_local_tokens: 100, batch_size: 2, context_length: 300, ..PowerProfile::Balanced.limits() };
    let (p, _) = run(PowerProfile::Custom(limits), DeviceState::default());
    assert_eq!((p.threads, p.max_tokens, p.batch_size, p.context_length), (3, 100, 2, 300));
}

#[test]
fn thermal_rules() {
    let at = |thermal| DeviceState { thermal, ..DeviceState::default() };
    let perf = PowerProfile::Performance;
    assert_eq!(
        rule_changes(perf, at(ThermalState::Critical)),
        [c("max_tokens", "50", "thermal state critical"), c("batch_size", "1", "thermal state critical"), c("use_gpu", "false", "thermal state critical")]
    );
    assert_eq!(
        rule_changes(perf, at(ThermalState::Serious)),
        [c("max_tokens", "200", "thermal state serious"), c("batch_size", "2", "thermal state serious")]
    );
    assert_eq!(rule_changes(perf, at(ThermalState::Fair)), [c("batch_size", "4", "thermal state fair")]);
    assert!(rule_changes(perf, at(ThermalState::Nominal)).is_empty());
    // A profile already below a rule's cap is not raised by it.
    let (p, _) = run(PowerProfile::UltraSaver, at(ThermalState::Serious));
    assert_eq!((p.max_tokens, p.batch_size), (128, 1));
}

#[test]
fn battery_rule() {
    let battery = |battery_percent, battery| DeviceState { battery_percent, battery, ..DeviceState::default() };
    let perf = PowerProfile::Performance;
    let why = "battery at 10% and discharging (threshold 20%)";
    assert_eq!(
        rule_changes(perf, battery(Some(10), BatteryState::Discharging)),
        [c("prefer_cloud", "true", why), c("threads", "2", why)]
    );
    assert!(rule_changes(perf, battery(Some(10), BatteryState::Charging)).is_empty());
    assert!(rule_changes(perf, battery(Some(50), BatteryState::Discharging)).is_empty());
    assert!(rule_changes(perf, battery(None, BatteryState::Discharging)).is_empty());
    let off = AdaptiveConfig { battery_aware: false, ..AdaptiveConfig::default() };
    let (_, changes) = adapt(InferenceParams::default(), perf, &off, &battery(Some(5), BatteryState::Discharging));
    assert!(changes.iter().all(|c| c.reason.starts_with("power profile")));
}

#[test]
fn memory_rules() {
    let at = |memory| DeviceState { memory, ..DeviceState::default() };
    let perf = PowerProfile::Performance;
    assert_eq!(
        rule_changes(perf, at(MemoryPressure::Critical)),
        [c("context_length", "1024", "memory pressure critical"), c("cache_enabled", "false", "memory pressure critical")]
    );
    assert_eq!(rule_changes(perf, at(MemoryPressure::Warning)), [c("context_length", "2048", "memory pressure warning")]);
    assert!(rule_changes(perf, at(MemoryPressure::Normal)).is_empty());
}

#[test]
fn rules_combine_and_can_be_switched_off() {
    let worst = DeviceState {
        thermal: ThermalState::Critical,
        memory: MemoryPressure::Critical,
        battery_percent: Some(3),
        battery: BatteryState::Discharging,
    };
    let (p, changes) = run(PowerProfile::Balanced, worst);
    assert_eq!((p.max_tokens, p.batch_size, p.threads, p.context_length), (50, 1, 2, 1024));
    assert!(!p.use_gpu && p.prefer_cloud && !p.cache_enabled);
    assert!(changes.iter().all(|(_, _, r)| !r.is_empty()));
    let off = AdaptiveConfig { battery_aware: false, thermal_aware: false, memory_aware: false, ..AdaptiveConfig::default() };
    let (p, changes) = adapt(InferenceParams::default(), PowerProfile::Balanced, &off, &worst);
    assert_eq!(p, adapt(InferenceParams::default(), PowerProfile::Balanced, &off, &DeviceState::default()).0);
    assert!(changes.iter().all(|c| c.reason == "power profile balanced"));
    assert_eq!(changes[0].to_string(), "threads: default -> 4 (power profile balanced)");
}
