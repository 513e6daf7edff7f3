//! Plugin-side helper: loaded models behind [`ModelHandle`]s, shared between
//! threads. Not part of the ABI (nothing here crosses it); every plugin needs
//! the same handle table, so it lives in the SDK.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
};

use rustai_abi::{ModelHandle, PluginError};

/// Models by handle. Calls may come from many threads at once; a model in use
/// stays alive (it is an `Arc`) even if it is unloaded meanwhile.
#[derive(Debug)]
pub struct ModelStore<T> {
    models: Mutex<HashMap<u64, Arc<T>>>,
    next: AtomicU64,
}

impl<T> Default for ModelStore<T> {
    fn default() -> Self {
        Self { models: Mutex::new(HashMap::new()), next: AtomicU64::new(1) }
    }
}

impl<T> ModelStore<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<T>>> {
        self.models.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keep `model`; returns its handle.
    pub fn insert(&self, model: T) -> ModelHandle {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, Arc::new(model));
        ModelHandle(id)
    }

    /// The model behind `handle`.
    pub fn get(&self, handle: ModelHandle) -> Result<Arc<T>, PluginError> {
        self.lock().get(&handle.0).cloned().ok_or_else(|| unknown(handle))
    }

    /// Forget the model behind `handle`.
    pub fn remove(&self, handle: ModelHandle) -> Result<(), PluginError> {
        self.lock().remove(&handle.0).map(drop).ok_or_else(|| unknown(handle))
    }

    /// Forget every model.
    pub fn clear(&self) {
        let all: Vec<_> = self.lock().drain().collect();
        // Dropped outside the lock: dropping a client joins its thread.
        drop(all);
    }
}

fn unknown(handle: ModelHandle) -> PluginError {
    PluginError::not_found(format!("no model is loaded with handle {}", handle.0))
}
