//! One conversation step, run to the end on the caller's thread (the CLI's path; the
//! server streams the same [`plan`] through its async generation): plan, generate,
//! show the user's text as it comes, read the tool calls at the end.

use rustai_abi::{Completion, GenerateOptions, SamplingExtras, SamplingParams};

use super::{plan, Conversation, Reply};
use crate::{error::{Error, Result}, families::LlmModel};

/// Run `conv` on `model` (id `model_id`); `on_text` gets the text meant for the user
/// (tool-call markup held back) and returns `false` to stop. Returns the completion and,
/// when tools were offered, the reply read from it.
pub fn complete(
    model: &LlmModel,
    model_id: &str,
    conv: &Conversation,
    params: SamplingParams,
    extras: &SamplingExtras,
    mut on_text: impl FnMut(&str) -> bool,
) -> Result<(Completion, Option<Reply>)> {
    let planned = plan(model, model_id, conv, params, GenerateOptions::default())?;
    let mut reader = planned.reader;
    let done = model.run_full(
        &planned.request,
        extras,
        None,
        |piece| match reader.as_mut() {
            None => on_text(piece),
            Some(r) => {
                let shown = r.push(piece);
                shown.is_empty() || on_text(&shown)
            }
        },
        &mut |_, _| {},
        None,
    )?;
    let Some(reader) = reader else { return Ok((done, None)) };
    let truncated = done.finish_reason != rustai_abi::FinishReason::Eos;
    let reply = reader.finish(done.text.as_str(), truncated).map_err(Error::BadToolCall)?;
    if !reader.unshown().is_empty() {
        on_text(reader.unshown());
    }
    Ok((done, Some(reply)))
}
