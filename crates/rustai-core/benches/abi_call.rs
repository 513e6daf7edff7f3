//! Cost of a call through the plugin ABI.
//!
//! Loads the real gguf plugin from `plugins-dist/` (run scripts/build-plugins.sh
//! first) and times `health()` (a call that does no work in the plugin: a
//! panic-guard check and a cached backend lookup) through the abi_stable trait
//! object, next to the same kind of call on an in-process `dyn` trait object.
//!
//! ```text
//! cargo bench -p rustai-core --bench abi_call
//! ```

use std::{hint::black_box, path::Path};

use criterion::{criterion_group, criterion_main, Criterion};
use rustai_core::{
    abi::{Health, HealthStatus},
    PluginManager,
};

trait LocalHealth {
    fn health(&self) -> Health;
}

struct Local;

impl LocalHealth for Local {
    fn health(&self) -> Health {
        Health::healthy()
    }
}

fn abi_call(c: &mut Criterion) {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins-dist");
    let manager = PluginManager::from_dirs([&dist]).expect("plugin manager");
    let Some(plugin) = manager.get("gguf") else {
        eprintln!("no gguf plugin in {}: run scripts/build-plugins.sh first", dist.display());
        return;
    };
    assert_eq!(plugin.health().status, HealthStatus::Healthy);

    let mut group = c.benchmark_group("call");
    group.bench_function("abi: plugin.health()", |b| b.iter(|| black_box(plugin.health())));
    let local: Box<dyn LocalHealth> = Box::new(Local);
    group.bench_function("in-process dyn: health()", |b| b.iter(|| black_box(black_box(&local).health())));
    group.finish();
}

criterion_group!(benches, abi_call);
criterion_main!(benches);
