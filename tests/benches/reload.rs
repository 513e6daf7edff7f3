//! Hot-reload benchmark (prints a table; not a test).
//!
//! - Time from a plugin file being replaced (rename over it) to the new
//!   version serving, through the real watcher: median of 20, for the default
//!   debounce and a short one.
//! - Process RSS after 1 and after 50 reload cycles (each cycle swaps the
//!   build, loads a model through the new instance and runs a request), since
//!   libraries are never unloaded.
//!
//! ```text
//! cargo build --release --workspace && cargo bench -p tests --bench reload
//! ```

use std::{
    path::Path,
    time::{Duration, Instant},
};

use rustai_core::{
    abi::{GenerateRequest, LoadModelParams, SamplingParams},
    plugins::watcher::DEFAULT_DEBOUNCE,
    ModelFile, ModelFormat, ModelPool, PluginManager,
};
use test_support::{dylib_name, fixture, install};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn swap_latency(debounce: Duration, builds: [&Path; 2]) -> (f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let lib = dylib_name("echo");
    install(builds[0], dir.path(), &lib);
    let manager = PluginManager::from_dirs([dir.path()]).unwrap();
    let _watch = manager.watch_with(debounce).unwrap();
    let mut times = Vec::new();
    for i in 1..=20 {
        let (build, version) = if i % 2 == 1 { (builds[1], "2.0.0") } else { (builds[0], "1.0.0") };
        std::thread::sleep(debounce + Duration::from_millis(50));
        let started = Instant::now();
        install(build, dir.path(), &lib);
        while manager.get("echo").is_none_or(|p| p.version() != version) {
            assert!(started.elapsed() < Duration::from_secs(30), "reload never happened");
            std::thread::sleep(Duration::from_micros(200));
        }
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let max = times.iter().copied().fold(0.0, f64::max);
    (median(times), min, max)
}

fn main() {
    let v1 = fixture("fixture_echo");
    let v2 = fixture("fixture_echo_v2");
    println!("| measure | value |");
    println!("| --- | ---: |");
    for debounce in [DEFAULT_DEBOUNCE, Duration::from_millis(20)] {
        let (med, min, max) = swap_latency(debounce, [&v1, &v2]);
        println!("| replaced → new version serving, debounce {} ms (median of 20; min–max) | {med:.1} ms ({min:.1}–{max:.1}) |", debounce.as_millis());
    }

    let dir = tempfile::tempdir().unwrap();
    let lib = dylib_name("echo");
    install(&v1, dir.path(), &lib);
    let manager = PluginManager::from_dirs([dir.path()]).unwrap();
    let pool = ModelPool::new(manager.clone());
    let model = ModelFile { id: "m".into(), path: dir.path().join("m.echo"), format: ModelFormat::Gguf, size: 10 };
    std::fs::write(&model.path, "echo model").unwrap();
    let mut rss_after_1 = 0;
    for cycle in 1..=50 {
        let build = if cycle % 2 == 1 { &v2 } else { &v1 };
        let path = install(build, dir.path(), &lib);
        manager.sync_path(&path);
        let m = pool.llm(&model, &LoadModelParams::new(""), Some("echo")).unwrap();
        m.generate(&GenerateRequest::new("a b", SamplingParams::greedy()), |_| true).unwrap();
        if cycle == 1 {
            rss_after_1 = rss_kib();
        }
    }
    let rss_after_50 = rss_kib();
    let lib_kib = std::fs::metadata(&v1).map(|m| m.len() / 1024).unwrap_or(0);
    println!("| RSS after 1 reload cycle | {:.1} MiB |", rss_after_1 as f64 / 1024.0);
    println!("| RSS after 50 reload cycles | {:.1} MiB |", rss_after_50 as f64 / 1024.0);
    println!(
        "| growth per cycle (libraries are never unloaded; plugin file is {lib_kib} KiB) | {:.0} KiB |",
        (rss_after_50.saturating_sub(rss_after_1)) as f64 / 49.0
    );
}
