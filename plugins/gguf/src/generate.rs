//! One request on the caller's thread: [`run`] checks the prompt, hands a [`Job`] to the
//! model's [`Scheduler`], then relays [`Event`]s to the host's sink and turns the host's
//! cancellation into the job's cancel flag. This keeps the ABI call blocking with a sink,
//! as before, while the decoding happens on the scheduler thread (the job's state there is
//! [`crate::job::Generation`]).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc::{self, RecvTimeoutError},
        Arc,
    },
    time::Duration,
};

use llama_cpp_2::token::LlamaToken;
use rustai_plugin::{Completion, FinishReason, GenerateOptions, PluginError, RString, SamplingExtras, SamplingParams, TokenSinkMut};

use crate::{
    job::{Event, Job},
    model::LoadedModel,
    scheduler::Scheduler,
};

/// How often the caller polls the host's cancellation while no event arrives.
const POLL: Duration = Duration::from_millis(20);

/// Evaluate `prompt` and generate on `scheduler`'s model, streaming to `sink`.
pub(crate) fn run(
    model: &LoadedModel,
    scheduler: &Scheduler,
    prompt: Vec<LlamaToken>,
    params: &SamplingParams,
    extras: &SamplingExtras,
    options: &GenerateOptions,
    mut sink: TokenSinkMut<'_>,
) -> Result<Completion, PluginError> {
    options.validate()?;
    if prompt.is_empty() {
        return Err(PluginError::invalid_input("the prompt is empty"));
    }
    let n_ctx = model.info.context_length as usize;
    if prompt.len() >= n_ctx {
        return Err(PluginError::context_length_exceeded(prompt.len(), model.info.context_length));
    }
    let (events, rx) = mpsc::channel();
    let cancel = Arc::new(AtomicBool::new(false));
    scheduler.submit(Job {
        prompt,
        params: params.clone(),
        extras: extras.clone(),
        triggers: options.grammar_triggers.iter().map(|t| t.to_string()).collect(),
        logprobs: options.logprobs.then_some(options.top_logprobs),
        events,
        cancel: Arc::clone(&cancel),
    })?;
    // What the host was given: after a cancel, the scheduler may produce a token or two before
    // it sees the flag; those were never delivered and are not part of the completion.
    let mut delivered = String::new();
    loop {
        match rx.recv_timeout(POLL) {
            Ok(Event::Prompt { tokens, cached }) => sink.on_prompt(tokens, cached),
            Ok(Event::Logprobs(chosen, top)) => {
                if !cancel.load(Ordering::Relaxed) {
                    sink.on_logprobs(chosen, top.as_slice().into());
                }
            }
            Ok(Event::Piece(text, id)) => {
                if !cancel.load(Ordering::Relaxed) {
                    delivered.push_str(&text);
                    if !sink.on_token(text.as_str().into(), id) {
                        cancel.store(true, Ordering::Relaxed);
                    }
                }
            }
            Ok(Event::Done(Ok(mut done))) if cancel.load(Ordering::Relaxed) => {
                // Cancelled here, whatever the scheduler reached before it saw the flag (an end
                // token, a stop sequence) with pieces the host never got.
                done.text = RString::from(delivered);
                done.finish_reason = FinishReason::Cancelled;
                return Ok(done);
            }
            Ok(Event::Done(result)) => return result,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(PluginError::internal("the model's scheduler stopped during the request"))
            }
        }
        if sink.is_cancelled() {
            cancel.store(true, Ordering::Relaxed);
        }
    }
}
