//! Slots: the sequences of a model's one llama.cpp context, each with the record of the
//! tokens its part of the KV cache holds, so a new prompt can reuse the longest cached
//! prefix instead of evaluating everything again.
//!
//! Pure bookkeeping, no llama.cpp calls: the scheduler ([`crate::scheduler`]) asks which
//! slot to take and what to remove, then does the removal on the context itself.
//!
//! **Invariant:** `Slot::cached` is exactly what the KV cache holds for that sequence, at
//! positions `0..cached.len()`; whoever changes the cache changes the record in step.

use llama_cpp_2::token::LlamaToken;

/// One sequence of the context.
#[derive(Debug, Default, Clone)]
pub(crate) struct Slot {
    /// Tokens in this sequence's KV cache, position by position.
    pub(crate) cached: Vec<LlamaToken>,
    /// A request is using it.
    pub(crate) busy: bool,
    /// When it was last handed out or released (a logical clock), for LRU choices.
    pub(crate) last_used: u64,
}

/// Where a prompt should go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pick {
    /// The slot.
    pub(crate) slot: usize,
    /// Leading prompt tokens already in its cache (always less than the prompt, so at least
    /// one token is evaluated and yields logits).
    pub(crate) reuse: usize,
}

/// Length of the common prefix of `a` and `b`.
pub(crate) fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The free slot for `prompt`: the longest reusable prefix wins, the least recently used
/// among equals (so an unrelated prompt evicts the coldest cache). `None` when all are busy.
/// With `reuse` off, nothing is reused and the least recently used free slot is taken.
pub(crate) fn pick(slots: &[Slot], prompt: &[LlamaToken], reuse: bool) -> Option<Pick> {
    let limit = prompt.len().saturating_sub(1);
    slots
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.busy)
        .map(|(i, s)| Pick { slot: i, reuse: if reuse { common_prefix(&s.cached, prompt).min(limit) } else { 0 } })
        .max_by(|a, b| a.reuse.cmp(&b.reuse).then(slots[b.slot].last_used.cmp(&slots[a.slot].last_used)))
}

/// Tokens held in the cache by all slots together.
pub(crate) fn used(slots: &[Slot]) -> usize {
    slots.iter().map(|s| s.cached.len()).sum()
}

/// Free slots other than `except` whose caches could be dropped to make room, coldest first.
pub(crate) fn evictable(slots: &[Slot], except: Option<usize>) -> Vec<usize> {
    let mut idle: Vec<usize> =
        (0..slots.len()).filter(|&i| Some(i) != except && !slots[i].busy && !slots[i].cached.is_empty()).collect();
    idle.sort_by_key(|&i| slots[i].last_used);
    idle
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(v: &[i32]) -> Vec<LlamaToken> {
        v.iter().map(|&t| LlamaToken(t)).collect()
    }

    fn slot(cached: &[i32], busy: bool, last_used: u64) -> Slot {
        Slot { cached: toks(cached), busy, last_used }
    }

    #[test]
    fn longest_prefix_wins_and_one_token_is_always_evaluated() {
        let slots = [slot(&[1, 2, 3], false, 5), slot(&[1, 2, 3, 4, 5], false, 1), slot(&[9], false, 0)];
        assert_eq!(pick(&slots, &toks(&[1, 2, 3, 4, 5, 6]), true), Some(Pick { slot: 1, reuse: 5 }));
        // The same prompt again: everything but the last token is reused.
        assert_eq!(pick(&slots, &toks(&[1, 2, 3, 4, 5]), true), Some(Pick { slot: 1, reuse: 4 }));
    }

    #[test]
    fn ties_go_to_the_least_recently_used_and_busy_slots_are_skipped() {
        let slots = [slot(&[7], false, 9), slot(&[8], false, 2), slot(&[1, 2], true, 0)];
        assert_eq!(pick(&slots, &toks(&[1, 2, 3]), true), Some(Pick { slot: 1, reuse: 0 }));
        assert_eq!(pick(&[slot(&[], true, 0)], &toks(&[1]), true), None);
    }

    #[test]
    fn reuse_off_takes_the_coldest_slot_and_reuses_nothing() {
        let slots = [slot(&[1, 2], false, 3), slot(&[5], false, 1)];
        assert_eq!(pick(&slots, &toks(&[1, 2, 3]), false), Some(Pick { slot: 1, reuse: 0 }));
    }

    #[test]
    fn eviction_order_is_coldest_first_and_spares_busy_and_chosen_slots() {
        let slots = [slot(&[1], false, 4), slot(&[2], true, 0), slot(&[3], false, 1), slot(&[], false, 0), slot(&[5], false, 2)];
        assert_eq!(evictable(&slots, Some(4)), vec![2, 0]);
        assert_eq!(used(&slots), 4);
    }
}
