//! Turning a [`Generation`] into an HTTP body stream. The body owns the
//! generation: when the client disconnects, hyper drops the body, which drops
//! the generation, which cancels it in the plugin.

use std::convert::Infallible;

use futures_util::{Stream, StreamExt};
use rustai_core::StreamEvent;

use crate::generate::Generation;

/// Each event becomes zero or more chunks of text (NDJSON lines, SSE events);
/// `tail` is sent once after the last event.
pub(crate) fn lines<F>(gen: Generation, render: F) -> impl Stream<Item = Result<String, Infallible>> + Send
where
    F: FnMut(&Generation, StreamEvent) -> Vec<String> + Send + 'static,
{
    with_tail(gen, render, Vec::new())
}

/// [`lines`] with chunks sent after the end (e.g. `data: [DONE]`).
pub(crate) fn with_tail<F>(gen: Generation, render: F, tail: Vec<String>) -> impl Stream<Item = Result<String, Infallible>> + Send
where
    F: FnMut(&Generation, StreamEvent) -> Vec<String> + Send + 'static,
{
    let state = (Some(gen), render, Some(tail));
    futures_util::stream::unfold(state, |(mut gen, mut render, mut tail)| async move {
        let Some(g) = gen.as_mut() else {
            let rest = tail.take()?;
            return Some((rest, (None, render, None)));
        };
        match g.next().await {
            Some(event) => {
                let end = !matches!(event, StreamEvent::Piece(_));
                let chunks = render(g, event);
                if end {
                    gen = None; // finished: release the model now
                }
                Some((chunks, (gen, render, tail)))
            }
            None => Some((Vec::new(), (None, render, tail))),
        }
    })
    .flat_map(|chunks| futures_util::stream::iter(chunks.into_iter().map(Ok)))
}
