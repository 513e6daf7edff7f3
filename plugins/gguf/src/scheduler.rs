//! The scheduler: one thread per loaded model that owns the model's llama.cpp context and
//! decodes every running request together (continuous batching).
//!
//! Each step gathers the next token of every generating slot plus a chunk of any prompt
//! still being read into one batch, calls `decode` once, then samples per slot. A request
//! that arrives meanwhile is placed at the start of the next step, in the free slot whose
//! cache shares the longest prefix with its prompt ([`crate::slots`]); only the rest of
//! its prompt is evaluated.
//!
//! **Invariant:** only this thread touches the context; requests talk to it through
//! channels ([`Job`] in, [`Event`] out), so a slow reader never blocks
//! the others' decoding.
//! **Invariant:** the KV cells in use (all slots' cached tokens) never exceed the
//! context: idle slots' caches are dropped, coldest first, to make room; a request waits
//! when running ones hold the room; a generating slot that cannot grow ends with `length`.

use std::{
    collections::VecDeque,
    panic::{catch_unwind, AssertUnwindSafe},
    sync::{
        atomic::Ordering,
        mpsc::{self, Receiver, Sender},
        Arc, Mutex, PoisonError,
    },
    thread::JoinHandle,
};

use llama_cpp_2::{context::LlamaContext, llama_batch::LlamaBatch, token::LlamaToken, DecodeError};
use rustai_plugin::{ErrorKind, FinishReason, PluginError};

use crate::{
    job::{self, Event, Generation, Job},
    model::LoadedModel,
    slots::{self, Slot},
};

/// The handle the plugin keeps per model; dropping it lets the thread finish its
/// running requests and exit.
pub(crate) struct Scheduler {
    model: Arc<LoadedModel>,
    inbox: Mutex<Option<(Sender<Job>, JoinHandle<()>)>>,
}

impl Scheduler {
    /// A scheduler for `model`; its thread starts with the first request.
    pub(crate) fn new(model: Arc<LoadedModel>) -> Self {
        Self { model, inbox: Mutex::new(None) }
    }

    /// Queue `job`. A scheduler thread that died (a panic) is replaced.
    pub(crate) fn submit(&self, job: Job) -> Result<(), PluginError> {
        let mut inbox = self.inbox.lock().unwrap_or_else(PoisonError::into_inner);
        let job = match inbox.as_ref() {
            Some((tx, _)) => match tx.send(job) {
                Ok(()) => return Ok(()),
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::channel();
        let model = Arc::clone(&self.model);
        let thread = std::thread::Builder::new()
            .name("gguf-scheduler".into())
            .spawn(move || {
                if catch_unwind(AssertUnwindSafe(|| Worker::new(&model).run(&rx))).is_err() {
                    // The waiting requests see their channels close and report an error.
                    eprintln!("gguf: the scheduler thread panicked; it restarts with the next request");
                }
            })
            .map_err(|e| PluginError::new(ErrorKind::ResourceExhausted, format!("cannot start a scheduler thread: {e}")))?;
        tx.send(job).map_err(|_| PluginError::internal("the scheduler thread stopped at once"))?;
        if let Some((old_tx, old)) = inbox.replace((tx, thread)) {
            drop(old_tx);
            let _ = old.join();
        }
        Ok(())
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let inbox = self.inbox.get_mut().unwrap_or_else(PoisonError::into_inner).take();
        if let Some((tx, thread)) = inbox {
            drop(tx);
            let _ = thread.join();
        }
    }
}

/// A request holding a slot.
struct Active {
    job: Job,
    slot: usize,
    generation: Generation,
    /// Prompt tokens already in the slot's cache.
    fed: usize,
    /// The sampled token to decode next.
    pending: Option<LlamaToken>,
    /// This step: tokens of this request in the batch, and where its logits are.
    in_batch: usize,
    logits_at: Option<i32>,
}

/// The scheduler thread's state.
struct Worker<'m> {
    model: &'m LoadedModel,
    ctx: Option<(LlamaContext<'m>, i32)>,
    slots: Vec<Slot>,
    waiting: VecDeque<Job>,
    active: Vec<Active>,
    clock: u64,
    n_ctx: usize,
}

impl<'m> Worker<'m> {
    fn new(model: &'m LoadedModel) -> Self {
        Self {
            model,
            ctx: None,
            slots: vec![Slot::default(); model.slots as usize],
            waiting: VecDeque::new(),
            active: Vec::new(),
            clock: 0,
            n_ctx: model.info.context_length as usize,
        }
    }

    fn run(mut self, inbox: &Receiver<Job>) {
        let mut batch = LlamaBatch::new(self.model.step_tokens() as usize, 1);
        loop {
            if self.active.is_empty() && self.waiting.is_empty() {
                match inbox.recv() {
                    Ok(job) => self.waiting.push_back(job),
                    Err(_) => return,
                }
            }
            while let Ok(job) = inbox.try_recv() {
                self.waiting.push_back(job);
            }
            self.drop_cancelled();
            self.admit();
            if !self.active.is_empty() {
                self.step(&mut batch);
            }
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// End active request `i` and free its slot.
    fn end(&mut self, i: usize, outcome: Result<FinishReason, PluginError>) {
        let a = self.active.swap_remove(i);
        let now = self.tick();
        let slot = &mut self.slots[a.slot];
        slot.busy = false;
        slot.last_used = now;
        match outcome {
            Ok(reason) => a.generation.finish(reason),
            Err(e) => a.generation.fail(e),
        }
    }

    fn drop_cancelled(&mut self) {
        let mut i = 0;
        while i < self.active.len() {
            if self.active[i].job.cancel.load(Ordering::Relaxed) {
                self.end(i, Ok(FinishReason::Cancelled));
            } else {
                i += 1;
            }
        }
        self.waiting.retain(|j| {
            let cancelled = j.cancel.load(Ordering::Relaxed);
            if cancelled {
                let _ = j.events.send(Event::Done(Ok(not_started(j))));
            }
            !cancelled
        });
    }

    /// The context for a request wanting `threads`, created (or re-created with other
    /// threads while nothing runs: the caches are lost, the model is not reloaded).
    /// Returns whether a new context was made (all caches are then empty).
    fn ensure_context(&mut self, threads: i32) -> Result<bool, PluginError> {
        let current = self.ctx.as_ref().map(|(_, t)| *t);
        if current == Some(threads) || (current.is_some() && !self.active.is_empty()) {
            return Ok(false);
        }
        self.ctx = None;
        for s in &mut self.slots {
            s.cached.clear();
        }
        self.ctx = Some((self.model.new_context(threads)?, threads));
        Ok(true)
    }

    /// Cells needed by what is admitted: the caches plus the rest of each prompt and one token.
    fn committed(&self) -> usize {
        slots::used(&self.slots) + self.active.iter().map(|a| a.job.prompt.len() - a.fed + 1).sum::<usize>()
    }

    /// Remove slot `s`'s cache from position `from` on.
    fn truncate(&mut self, s: usize, from: usize) {
        let Some((ctx, _)) = self.ctx.as_mut() else { return };
        let seq = u32::try_from(s).unwrap_or(u32::MAX);
        let start = u32::try_from(from).unwrap_or(u32::MAX);
        let trimmed = matches!(ctx.clear_kv_cache_seq(Some(seq), Some(start), None), Ok(true));
        // A sliding-window cache may have dropped the start of an idle sequence's window while
        // other slots ran: then the kept prefix is not all there, and reusing it would decode
        // against a missing window. Models whose cache cannot drop a tail (recurrent ones)
        // also start again.
        if !trimmed || (from > 0 && ctx.kv_cache_seq_pos_min(seq as i32) > 0) {
            let _ = ctx.clear_kv_cache_seq(Some(seq), None, None);
            self.slots[s].cached.clear();
        }
        self.slots[s].cached.truncate(from);
    }

    /// Drop idle caches, coldest first, until `needed` more cells fit; whether they do.
    fn make_room(&mut self, needed: usize, except: Option<usize>) -> bool {
        for s in slots::evictable(&self.slots, except) {
            if self.committed() + needed <= self.n_ctx {
                break;
            }
            self.truncate(s, 0);
        }
        self.committed() + needed <= self.n_ctx
    }

    /// Place waiting requests in free slots, first come first served.
    fn admit(&mut self) {
        while let Some(job) = self.waiting.pop_front() {
            let fail = |job: Job, e: PluginError| {
                let _ = job.events.send(Event::Done(Err(e)));
            };
            if job.prompt.len() >= self.n_ctx {
                let e = PluginError::context_length_exceeded(job.prompt.len(), self.model.info.context_length);
                fail(job, e);
                continue;
            }
            let Some(mut pick) = slots::pick(&self.slots, &job.prompt, self.model.cache_prompt) else {
                self.waiting.push_front(job);
                return;
            };
            // Reserve the slot's own tail as freed before checking room.
            let freed = self.slots[pick.slot].cached.len() - pick.reuse;
            let needed = (job.prompt.len() - pick.reuse + 1).saturating_sub(freed);
            if !self.make_room(needed, Some(pick.slot)) && !self.active.is_empty() {
                // The running requests hold the room: wait for one to end.
                self.waiting.push_front(job);
                return;
            }
            // The request is placed now. Its parameters before the context: a request refused
            // for them must not cost the caches anything.
            let mut generation = match Generation::new(self.model, &job) {
                Ok(g) => g,
                Err(e) => {
                    fail(job, e);
                    continue;
                }
            };
            match self.ensure_context(self.model.threads_for(job.extras.threads)) {
                Err(e) => {
                    fail(job, e);
                    continue;
                }
                // A new context (other threads) starts with empty caches.
                Ok(true) => pick = slots::Pick { slot: pick.slot, reuse: 0 },
                Ok(false) => {}
            }
            self.truncate(pick.slot, pick.reuse);
            let reuse = self.slots[pick.slot].cached.len();
            let now = self.tick();
            let slot = &mut self.slots[pick.slot];
            slot.busy = true;
            slot.last_used = now;
            generation.placed(reuse);
            self.active.push(Active { job, slot: pick.slot, generation, fed: reuse, pending: None, in_batch: 0, logits_at: None });
        }
    }

    /// One decode for every active request.
    fn step(&mut self, batch: &mut LlamaBatch) {
        // Generation has grown the caches since admission: when what is admitted no longer
        // fits, drop idle caches; if that is not enough, the fullest generating slots end with
        // `length` and give their cells back.
        if self.committed() > self.n_ctx {
            self.make_room(0, None);
        }
        while self.committed() > self.n_ctx {
            let fullest = (0..self.active.len())
                .filter(|&i| self.active[i].pending.is_some())
                .max_by_key(|&i| self.slots[self.active[i].slot].cached.len());
            let Some(i) = fullest else { break };
            let slot = self.active[i].slot;
            self.end(i, Ok(FinishReason::Length));
            self.truncate(slot, 0);
        }
        batch.clear();
        let capacity = self.model.step_tokens() as usize;
        let mut free_cells = self.n_ctx.saturating_sub(slots::used(&self.slots));
        let mut failed = Vec::new();
        for (i, a) in self.active.iter_mut().enumerate() {
            a.in_batch = 0;
            a.logits_at = None;
            if let Some(token) = a.pending {
                let pos = self.slots[a.slot].cached.len() as i32;
                match batch.add(token, pos, &[a.slot as i32], true) {
                    Ok(()) => {
                        a.in_batch = 1;
                        a.logits_at = Some(batch.n_tokens() - 1);
                        free_cells = free_cells.saturating_sub(1);
                    }
                    Err(e) => failed.push((i, PluginError::internal(e.to_string()))),
                }
            }
        }
        for (i, a) in self.active.iter_mut().enumerate() {
            if a.pending.is_some() || a.fed >= a.job.prompt.len() {
                continue;
            }
            let room = capacity.saturating_sub(batch.n_tokens() as usize).min(free_cells);
            let take = room.min(a.job.prompt.len() - a.fed);
            for k in 0..take {
                let pos = a.fed + k;
                let last = pos + 1 == a.job.prompt.len();
                if let Err(e) = batch.add(a.job.prompt[pos], pos as i32, &[a.slot as i32], last) {
                    failed.push((i, PluginError::internal(e.to_string())));
                    break;
                }
                a.in_batch += 1;
                if last {
                    a.logits_at = Some(batch.n_tokens() - 1);
                }
            }
            free_cells -= a.in_batch.min(free_cells);
        }
        if let Some((i, e)) = failed.into_iter().next() {
            // Cannot happen with the capacities above; never leave a half-built batch.
            self.end(i, Err(e));
            return;
        }
        if batch.n_tokens() == 0 {
            return;
        }
        let Some((ctx, _)) = self.ctx.as_mut() else { return };
        let mut result = ctx.decode(batch);
        if matches!(result, Err(DecodeError::NoKvCacheSlot)) {
            // Fragmented or full: drop every idle cache and try once more.
            self.make_room(usize::MAX / 2, None);
            if let Some((ctx, _)) = self.ctx.as_mut() {
                result = ctx.decode(batch);
            }
        }
        if let Err(e) = result {
            let (kind, what) = match e {
                DecodeError::NoKvCacheSlot => (ErrorKind::ResourceExhausted, "the context is full".to_owned()),
                other => (ErrorKind::Internal, format!("llama.cpp decode failed: {other}")),
            };
            let mut i = 0;
            while i < self.active.len() {
                if self.active[i].in_batch > 0 {
                    let (slot, keep) = (self.active[i].slot, self.slots[self.active[i].slot].cached.len());
                    self.truncate(slot, keep);
                    self.end(i, Err(PluginError::new(kind, what.clone())));
                } else {
                    i += 1;
                }
            }
            return;
        }
        self.after_decode();
    }

    /// Record what was decoded and sample where logits were asked for.
    fn after_decode(&mut self) {
        let mut i = 0;
        while i < self.active.len() {
            let a = &mut self.active[i];
            if a.in_batch == 0 {
                i += 1;
                continue;
            }
            let slot = &mut self.slots[a.slot];
            match a.pending.take() {
                Some(token) => slot.cached.push(token),
                None => {
                    slot.cached.extend_from_slice(&a.job.prompt[a.fed..a.fed + a.in_batch]);
                    a.fed += a.in_batch;
                }
            }
            let Some(at) = a.logits_at else {
                i += 1;
                continue;
            };
            a.generation.prompt_evaluated();
            let Some((ctx, _)) = self.ctx.as_ref() else { return };
            let model = self.model;
            let generation = &mut a.generation;
            let ignore_eos = a.job.params.ignore_eos;
            let sampled = generation.sampler.sample(ctx, at, |t| job::ends(model, t, ignore_eos)).and_then(|t| {
                if !job::ends(model, t, ignore_eos) {
                    generation.sampler.observe(model, t)?;
                }
                Ok(t)
            });
            let outcome = match sampled {
                Err(e) => Some(Err(e)),
                // A token needs a position inside the context: prompt and output together
                // never exceed it.
                Ok(_) if slot.cached.len() >= self.n_ctx => Some(Ok(FinishReason::Length)),
                Ok(token) => match a.generation.push(model, token) {
                    Some(reason) => Some(Ok(reason)),
                    None => {
                        a.pending = Some(token);
                        None
                    }
                },
            };
            match outcome {
                Some(end) => self.end(i, end),
                None => i += 1,
            }
        }
    }
}

/// The completion of a request cancelled while it waited for a slot.
fn not_started(job: &Job) -> rustai_plugin::Completion {
    rustai_plugin::Completion {
        text: rustai_plugin::RString::new(),
        tokens_in: u32::try_from(job.prompt.len()).unwrap_or(u32::MAX),
        tokens_out: 0,
        finish_reason: FinishReason::Cancelled,
        timings: rustai_plugin::Timings::default(),
    }
}
