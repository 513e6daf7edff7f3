//! The entry points of the families other than text: [`Engine::with_model`] resolves a
//! model once, leases it from the pool (within the budget, like every model), runs the
//! caller's work on it and records the request; [`Engine::embed`] and
//! [`Engine::transcribe`] are its typed uses.

use std::time::{Duration, Instant};

use rustai_abi::{Embeddings, LoadModelParams, TranscribeRequest, Transcription};

use super::{metrics::RequestRecord, pool::Lease, prepare::LoadOptions, Engine};
use crate::{
    error::{Error, Result},
    families::{EmbeddingModel, Family, SttModel, TtsModel},
    models::{ModelEntry, Task},
    plugins::FamilyKind,
};

/// What a request on a model of any family gave, with where it ran.
#[derive(Debug)]
pub struct Served<R> {
    /// The model that served it.
    pub entry: ModelEntry,
    /// The plugin that ran it.
    pub plugin: String,
    /// The work's result.
    pub output: R,
    /// Time spent looking up and (if needed) loading the model.
    pub load_duration: Duration,
}

impl Engine {
    /// Resolve `model` for `task`, lease it as family `M` (loading it within the budget),
    /// run `work` on it, and record the request in the metrics (failed or not).
    pub fn with_model<M: Family, R>(&self, model: &str, task: Task, options: &LoadOptions, work: impl FnOnce(&M) -> Result<R>) -> Result<Served<R>> {
        self.run_on(model, task, options, work, |_| 0)
    }

    /// Lease `entry` as family `M` from the pool, loading it within the budget if needed.
    fn lease<M: Family>(&self, entry: &ModelEntry, options: &LoadOptions) -> Result<Lease<M>> {
        self.lease_entry(entry, &LoadModelParams { threads: options.threads, ..entry.load_params() }, options)
    }

    /// Load `model` into the pool whatever its family, running nothing (a preload, as
    /// `/runtime/load` asks); a language model goes through [`Engine::prepare_llm`], so it is
    /// loaded with the settings its requests will use.
    pub fn preload(&self, model: &str, options: &LoadOptions) -> Result<Served<()>> {
        let started = Instant::now();
        let entry = self.registry().lookup(model)?;
        let plugin = match entry.task.family() {
            None | Some(FamilyKind::Llm | FamilyKind::Tool) => {
                let prepared = self.prepare_llm(&entry.id, options, &mut rustai_abi::SamplingParams::greedy())?;
                prepared.plugin_id().to_owned()
            }
            Some(FamilyKind::Embedding) => self.lease::<EmbeddingModel>(&entry, options)?.plugin().id().to_owned(),
            Some(FamilyKind::Stt) => self.lease::<SttModel>(&entry, options)?.plugin().id().to_owned(),
            Some(FamilyKind::Tts) => self.lease::<TtsModel>(&entry, options)?.plugin().id().to_owned(),
        };
        // A model of unknown task is loaded as a language model: say so.
        let entry = ModelEntry { task: if entry.task == Task::Unknown { Task::Completion } else { entry.task }, ..entry };
        Ok(Served { entry, plugin, output: (), load_duration: started.elapsed() })
    }

    fn run_on<M: Family, R>(&self, model: &str, task: Task, options: &LoadOptions, work: impl FnOnce(&M) -> Result<R>, tokens_in: impl Fn(&R) -> u64) -> Result<Served<R>> {
        let started = Instant::now();
        let entry = self.resolve(model, task)?;
        let lease = self.lease::<M>(&entry, options)?;
        let load_duration = started.elapsed();
        let plugin = lease.plugin().id().to_owned();
        let output = work(&lease);
        let record = RequestRecord {
            model: entry.id.clone(),
            plugin: plugin.clone(),
            tokens_in: output.as_ref().map_or(0, &tokens_in),
            tokens_out: 0,
            latency: started.elapsed(),
            // Time spent computing, not generating tokens: no tokens/s for these families.
            generation: Duration::ZERO,
            // The client going away or asking for something invalid is not the model failing.
            failed: matches!(&output, Err(e) if !matches!(e, Error::Cancelled | Error::InvalidParameter(_))),
        };
        self.inner.metrics.record(&record);
        Ok(Served { entry, plugin, output: output?, load_duration })
    }

    /// Embed `inputs` with embedding model `model` (one vector each, in order;
    /// `normalize` = L2-normalised).
    pub fn embed<S: AsRef<str>>(&self, model: &str, inputs: &[S], normalize: bool) -> Result<Served<Embeddings>> {
        self.run_on(model, Task::Embedding, &LoadOptions::default(), |m: &EmbeddingModel| m.embed(inputs, normalize), |e| u64::from(e.tokens_in))
    }

    /// Transcribe `request` (16 kHz mono PCM) with speech-to-text model `model`.
    pub fn transcribe(&self, model: &str, request: &TranscribeRequest) -> Result<Served<Transcription>> {
        self.run_on(model, Task::Stt, &LoadOptions::default(), |m: &SttModel| m.transcribe(request), |_| 0)
    }
}
