//! Batching: which inputs go through the model together, and the padded
//! token-id and attention-mask matrices of one batch.
//!
//! Inputs are sorted by token count (longest first) and cut into chunks, so
//! each forward pass pads to the longest input of its own chunk only and a
//! large request never holds more than one chunk of activations.

/// One padded batch, row-major: `rows × width` ids and mask entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Padded {
    /// Token ids, padding filled with the pad id.
    pub ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub mask: Vec<u32>,
    /// Number of sequences.
    pub rows: usize,
    /// Tokens per row (the longest sequence of the batch).
    pub width: usize,
}

/// Right-pad `seqs` to the longest of them with `pad_id`, building the mask.
pub fn pad(seqs: &[&[u32]], pad_id: u32) -> Padded {
    let width = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(seqs.len() * width);
    let mut mask = Vec::with_capacity(seqs.len() * width);
    for s in seqs {
        ids.extend_from_slice(s);
        ids.resize(ids.len() + width - s.len(), pad_id);
        mask.resize(mask.len() + s.len(), 1);
        mask.resize(mask.len() + width - s.len(), 0);
    }
    Padded { ids, mask, rows: seqs.len(), width }
}

/// Group input indices into chunks of at most `chunk` inputs, longest inputs
/// first (ties keep input order), given each input's token count.
pub fn plan(lengths: &[usize], chunk: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]));
    order.chunks(chunk.max(1)).map(<[usize]>::to_vec).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_the_longest_sequence_with_a_mask() {
        let p = pad(&[&[101, 7, 102], &[101, 102], &[101, 5, 6, 102]], 0);
        assert_eq!((p.rows, p.width), (3, 4));
        assert_eq!(p.ids, [101, 7, 102, 0, 101, 102, 0, 0, 101, 5, 6, 102]);
        assert_eq!(p.mask, [1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1]);
    }

    #[test]
    fn a_single_sequence_needs_no_padding() {
        let p = pad(&[&[1, 2, 3]], 9);
        assert_eq!((p.ids, p.mask, p.width), (vec![1, 2, 3], vec![1, 1, 1], 3));
    }

    #[test]
    fn empty_batches_are_empty() {
        let p = pad(&[], 0);
        assert_eq!((p.rows, p.width, p.ids.len()), (0, 0, 0));
        assert!(plan(&[], 32).is_empty());
    }

    #[test]
    fn plan_sorts_longest_first_and_chunks() {
        let chunks = plan(&[3, 10, 1, 10, 5], 2);
        assert_eq!(chunks, vec![vec![1, 3], vec![4, 0], vec![2]]);
        // Every input appears exactly once.
        let mut all: Vec<usize> = plan(&[4; 70], 32).concat();
        all.sort_unstable();
        assert_eq!(all, (0..70).collect::<Vec<_>>());
        assert_eq!(plan(&[1, 2], 0).len(), 2, "a chunk size of 0 is treated as 1");
    }
}
