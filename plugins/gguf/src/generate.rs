//! The generation loop: prompt evaluation, sampling, stop handling, streaming.

use std::time::Instant;

use llama_cpp_2::{llama_batch::LlamaBatch, token::LlamaToken};
use rustai_abi::{Completion, ErrorKind, FinishReason, PluginError, RString, SamplingExtras, SamplingParams, Timings, TokenSinkMut};

use crate::{
    model::LoadedModel,
    sampling::Sampler,
    stop::{StopMatcher, Utf8Stream},
};

/// Evaluate `prompt` and generate, streaming to `sink`.
pub(crate) fn run(
    model: &LoadedModel,
    prompt: &[LlamaToken],
    params: &SamplingParams,
    extras: &SamplingExtras,
    mut sink: TokenSinkMut<'_>,
) -> Result<Completion, PluginError> {
    let n_ctx_max = model.info.context_length;
    // Before any work: every value in range, the grammar parsed (errors are the client's to fix).
    let mut sampler = Sampler::new(model, params, extras)?;
    if prompt.is_empty() {
        return Err(PluginError::invalid_input("the prompt is empty"));
    }
    if prompt.len() >= n_ctx_max as usize {
        return Err(PluginError::invalid_input(format!(
            "the prompt has {} tokens but the context holds {n_ctx_max}",
            prompt.len()
        )));
    }
    let prompt_len = prompt.len() as u32;
    let wanted = match params.max_tokens {
        0 => n_ctx_max,
        n => prompt_len.saturating_add(n).saturating_add(1),
    };
    let mut ctx = model.new_context(wanted, extras.threads)?;
    // The context may be rounded up; never run past the configured length.
    let n_ctx = ctx.n_ctx().min(n_ctx_max);
    let vocab = model.model.vocab();

    // Prompt, in batches; only the last token needs logits.
    let started = Instant::now();
    let batch_size = model.batch_size as usize;
    let mut batch = LlamaBatch::new(batch_size.min(prompt.len()).max(1), 1);
    let decode_err = |e| PluginError::new(ErrorKind::Internal, format!("llama.cpp decode failed: {e}"));
    for (chunk_index, chunk) in prompt.chunks(batch_size).enumerate() {
        if sink.is_cancelled() {
            return Ok(cancelled(prompt_len, started));
        }
        batch.clear();
        for (i, &token) in chunk.iter().enumerate() {
            let pos = (chunk_index * batch_size + i) as i32;
            let last = pos as usize == prompt.len() - 1;
            batch.add(token, pos, &[0], last).map_err(|e| PluginError::internal(e.to_string()))?;
        }
        ctx.decode(&mut batch).map_err(decode_err)?;
    }
    let prompt_eval = started.elapsed();

    let gen_started = Instant::now();
    let mut utf8 = Utf8Stream::default();
    let mut stops = StopMatcher::new(params.stop.iter().map(|s| s.to_string()));
    let mut pos = prompt_len;
    let mut tokens_out = 0u32;
    let mut piece = Vec::with_capacity(32);
    let finish = loop {
        if sink.is_cancelled() {
            break FinishReason::Cancelled;
        }
        let ends = |t: LlamaToken| vocab.is_eog(t) && !params.ignore_eos;
        let token = sampler.sample(&ctx, batch.n_tokens() - 1, ends)?;
        if ends(token) {
            break FinishReason::Eos;
        }
        tokens_out += 1;
        piece.clear();
        vocab.token_to_piece_into(token, &mut piece, false, None);
        let text = utf8.push(&piece);
        let step = stops.push(&text);
        let keep_going = sink.on_token(step.release.into(), token.0);
        if step.stopped {
            break FinishReason::Stop;
        }
        if !keep_going {
            break FinishReason::Cancelled;
        }
        if params.max_tokens > 0 && tokens_out >= params.max_tokens {
            break FinishReason::Length;
        }
        if pos >= n_ctx {
            break FinishReason::Length;
        }
        batch.clear();
        batch.add(token, pos as i32, &[0], true).map_err(|e| PluginError::internal(e.to_string()))?;
        pos += 1;
        ctx.decode(&mut batch).map_err(decode_err)?;
    };
    let mut finish = finish;
    if finish != FinishReason::Stop {
        // Release what was held back: an incomplete character or a partial stop sequence.
        let rest = utf8.finish();
        let step = stops.push(&rest);
        let (mut tail, stopped) = (step.release.to_owned(), step.stopped);
        if stopped {
            finish = FinishReason::Stop;
        } else {
            tail.push_str(stops.flush());
        }
        if !tail.is_empty() && finish != FinishReason::Cancelled {
            sink.on_token(tail.as_str().into(), -1);
        }
    }
    let generation = gen_started.elapsed();
    let per_s = |n: u32, d: std::time::Duration| if d.is_zero() { 0.0 } else { f64::from(n) / d.as_secs_f64() };
    Ok(Completion {
        text: RString::from(stops.text()),
        tokens_in: prompt_len,
        tokens_out,
        finish_reason: finish,
        timings: Timings {
            prompt_eval_ms: prompt_eval.as_secs_f64() * 1e3,
            generation_ms: generation.as_secs_f64() * 1e3,
            prompt_tokens_per_s: per_s(prompt_len, prompt_eval),
            tokens_per_s: per_s(tokens_out, generation),
        },
    })
}

fn cancelled(prompt_len: u32, started: Instant) -> Completion {
    Completion {
        text: RString::new(),
        tokens_in: prompt_len,
        tokens_out: 0,
        finish_reason: FinishReason::Cancelled,
        timings: Timings { prompt_eval_ms: started.elapsed().as_secs_f64() * 1e3, ..Timings::default() },
    }
}
