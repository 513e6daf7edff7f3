//! Turning a [`Generation`] into an HTTP body stream.
//!
//! A pump task owns the generation and hands rendered chunks to the body over
//! a small channel. The body side is what hyper polls: when the client
//! disconnects hyper drops it, the pump's next send fails, and dropping the
//! generation cancels it in the plugin. When the client stays connected but
//! stops reading (its receive window full), hyper stops polling, the channel
//! fills, and after `stall_timeout` without progress the pump gives up the same
//! way, so a stalled reader can never hold a model's queue place or lease.

use std::{convert::Infallible, sync::atomic::Ordering, time::Duration};

use futures_util::Stream;
use rustai_core::StreamEvent;
use tokio::sync::mpsc::{self, error::SendTimeoutError};

use crate::generate::Generation;

/// Chunks buffered between the pump and hyper.
const CHANNEL: usize = 16;

/// Each event becomes zero or more chunks of text (NDJSON lines, SSE events).
pub(crate) fn lines<F>(gen: Generation, render: F) -> impl Stream<Item = Result<String, Infallible>> + Send
where
    F: FnMut(&Generation, StreamEvent) -> Vec<String> + Send + 'static,
{
    with_tail(gen, render, Vec::new())
}

/// [`lines`] with chunks sent after the end (e.g. `data: [DONE]`).
pub(crate) fn with_tail<F>(gen: Generation, mut render: F, tail: Vec<String>) -> impl Stream<Item = Result<String, Infallible>> + Send
where
    F: FnMut(&Generation, StreamEvent) -> Vec<String> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<String>(CHANNEL);
    let stall = gen.state().config.stall_timeout;
    tokio::spawn(async move {
        let mut gen = Some(gen);
        while let Some(g) = gen.as_mut() {
            let Some(event) = g.next().await else { break };
            let end = !matches!(event, StreamEvent::Piece(_) | StreamEvent::Prompt { .. } | StreamEvent::Logprobs(_));
            let chunks = render(g, event);
            if end {
                gen = None; // finished: release the model now, before the last bytes go out
            }
            for chunk in chunks {
                if !send(&tx, chunk, stall, gen.as_ref()).await {
                    // Dropping the generation cancels it (and counts it) in its Drop.
                    return;
                }
            }
        }
        for chunk in tail {
            if !send(&tx, chunk, stall, None).await {
                return;
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (Ok(c), rx)) })
}

/// Hand `chunk` to the body; `false` when the client is gone or has not read for `stall`.
async fn send(tx: &mpsc::Sender<String>, chunk: String, stall: Duration, gen: Option<&Generation>) -> bool {
    match tx.send_timeout(chunk, stall).await {
        Ok(()) => true,
        Err(SendTimeoutError::Closed(_)) => false,
        Err(SendTimeoutError::Timeout(_)) => {
            if let Some(g) = gen {
                g.state().counters.stalled.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(model = %g.prepared.entry.id, "client stopped reading for {stall:?}; generation cancelled");
            }
            false
        }
    }
}
