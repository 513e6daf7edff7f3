//! Pooling: token vectors of one input → one sentence vector.
//!
//! Follows sentence-transformers' `1_Pooling/config.json`: each
//! `pooling_mode_*` flag that is true adds one block of `hidden` values, and
//! the blocks are concatenated in sentence-transformers' order (cls, max, mean,
//! mean_sqrt_len, weightedmean, lasttoken). Without a pooling config the
//! default is mean pooling. Only tokens whose attention-mask entry is non-zero
//! take part, so padding never changes a vector.

use rustai_plugin::serde_json;
use serde_json::Value;

/// One pooling strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The first token (`[CLS]`).
    Cls,
    /// Element-wise maximum over the real tokens.
    Max,
    /// Mean over the real tokens.
    Mean,
    /// Sum over the real tokens divided by the square root of their count.
    MeanSqrtLen,
    /// Mean weighted by position (1, 2, 3, ...).
    WeightedMean,
    /// The last real token.
    LastToken,
}

impl Mode {
    /// The config key that enables this mode, in concatenation order.
    const KEYS: [(&'static str, Mode); 6] = [
        ("pooling_mode_cls_token", Mode::Cls),
        ("pooling_mode_max_tokens", Mode::Max),
        ("pooling_mode_mean_tokens", Mode::Mean),
        ("pooling_mode_mean_sqrt_len_tokens", Mode::MeanSqrtLen),
        ("pooling_mode_weightedmean_tokens", Mode::WeightedMean),
        ("pooling_mode_lasttoken", Mode::LastToken),
    ];
}

/// The pooling of a model: one or more modes, concatenated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pooling {
    modes: Vec<Mode>,
}

impl Default for Pooling {
    /// Mean pooling (what sentence-transformers uses when nothing is said).
    fn default() -> Self {
        Self { modes: vec![Mode::Mean] }
    }
}

impl Pooling {
    /// Pooling with exactly these modes (in this order).
    pub fn new(modes: Vec<Mode>) -> Self {
        Self { modes }
    }

    /// The modes, in output order.
    pub fn modes(&self) -> &[Mode] {
        &self.modes
    }

    /// Parse a sentence-transformers pooling config. `hidden` is the model's
    /// hidden size, checked against `word_embedding_dimension` when present.
    pub fn from_json(text: &str, hidden: usize) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let map = value.as_object().ok_or("not a JSON object")?;
        if let Some(dim) = map.get("word_embedding_dimension").and_then(Value::as_u64) {
            if dim != hidden as u64 {
                return Err(format!("word_embedding_dimension is {dim} but the model's hidden_size is {hidden}"));
            }
        }
        let modes: Vec<Mode> = Mode::KEYS
            .iter()
            .filter(|(key, _)| map.get(*key).and_then(Value::as_bool).unwrap_or(false))
            .map(|&(_, mode)| mode)
            .collect();
        if modes.is_empty() {
            return Err("no pooling_mode_* flag is true".into());
        }
        Ok(Self { modes })
    }

    /// Width of a pooled vector for a model of hidden size `hidden`.
    pub fn width(&self, hidden: usize) -> usize {
        hidden * self.modes.len()
    }

    /// Pool one sequence. `tokens` holds `mask.len()` rows of `hidden` values;
    /// rows whose mask is 0 are padding. Appends `width(hidden)` values to `out`.
    pub fn pool_into(&self, tokens: &[f32], mask: &[u32], hidden: usize, out: &mut Vec<f32>) {
        debug_assert_eq!(tokens.len(), mask.len() * hidden);
        let rows = || tokens.chunks_exact(hidden).zip(mask).enumerate().filter(|(_, (_, &m))| m != 0);
        let count = mask.iter().filter(|&&m| m != 0).count();
        for mode in &self.modes {
            let start = out.len();
            match mode {
                Mode::Cls => out.extend_from_slice(tokens.get(..hidden).unwrap_or(&[])),
                Mode::Max => {
                    // sentence-transformers fills padding with -1e9 before the max.
                    out.resize(start + hidden, -1e9);
                    for (_, (row, _)) in rows() {
                        for (o, &v) in out[start..].iter_mut().zip(row) {
                            *o = o.max(v);
                        }
                    }
                }
                Mode::Mean | Mode::MeanSqrtLen | Mode::WeightedMean => {
                    out.resize(start + hidden, 0.0);
                    let mut total = 0.0f32;
                    for (i, (row, _)) in rows() {
                        let w = if *mode == Mode::WeightedMean { (i + 1) as f32 } else { 1.0 };
                        total += w;
                        for (o, &v) in out[start..].iter_mut().zip(row) {
                            *o += w * v;
                        }
                    }
                    let div = match mode {
                        Mode::MeanSqrtLen => (count as f32).sqrt(),
                        _ => total,
                    }
                    .max(1e-9);
                    out[start..].iter_mut().for_each(|o| *o /= div);
                }
                Mode::LastToken => match rows().next_back() {
                    Some((_, (row, _))) => out.extend_from_slice(row),
                    None => out.resize(start + hidden, 0.0),
                },
            }
            // Keep the width fixed whatever happened above (e.g. an empty sequence).
            out.resize(start + hidden, 0.0);
        }
    }
}

/// Scale `v` to unit L2 norm (a zero vector stays zero).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Three tokens of width 2; the third is padding.
    const TOKENS: [f32; 6] = [1.0, -2.0, 3.0, 4.0, 100.0, 100.0];
    const MASK: [u32; 3] = [1, 1, 0];

    fn pool(modes: Vec<Mode>) -> Vec<f32> {
        let mut out = Vec::new();
        Pooling::new(modes).pool_into(&TOKENS, &MASK, 2, &mut out);
        out
    }

    #[test]
    fn each_mode_ignores_padding() {
        assert_eq!(pool(vec![Mode::Cls]), [1.0, -2.0]);
        assert_eq!(pool(vec![Mode::Mean]), [2.0, 1.0]);
        assert_eq!(pool(vec![Mode::Max]), [3.0, 4.0]);
        let s = 2f32.sqrt();
        assert_eq!(pool(vec![Mode::MeanSqrtLen]), [4.0 / s, 2.0 / s]);
        assert_eq!(pool(vec![Mode::WeightedMean]), [(1.0 + 6.0) / 3.0, (-2.0 + 8.0) / 3.0]);
        assert_eq!(pool(vec![Mode::LastToken]), [3.0, 4.0]);
    }

    #[test]
    fn modes_concatenate_in_order() {
        assert_eq!(pool(vec![Mode::Cls, Mode::Max, Mode::Mean]), [1.0, -2.0, 3.0, 4.0, 2.0, 1.0]);
        assert_eq!(Pooling::new(vec![Mode::Cls, Mode::Mean]).width(384), 768);
    }

    #[test]
    fn all_padding_gives_a_finite_vector_of_the_right_width() {
        let mut out = Vec::new();
        Pooling::new(vec![Mode::Mean, Mode::LastToken]).pool_into(&[1.0, 2.0], &[0], 2, &mut out);
        assert_eq!(out, [0.0; 4]);
        out.clear();
        Pooling::new(vec![Mode::Cls]).pool_into(&[], &[], 2, &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn parses_sentence_transformers_config() {
        let text = r#"{"word_embedding_dimension": 384, "pooling_mode_cls_token": false,
            "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false,
            "pooling_mode_mean_sqrt_len_tokens": false}"#;
        assert_eq!(Pooling::from_json(text, 384).map(|p| p.modes().to_vec()), Ok(vec![Mode::Mean]));
        let cls = r#"{"pooling_mode_cls_token": true, "pooling_mode_max_tokens": true}"#;
        assert_eq!(Pooling::from_json(cls, 8).map(|p| p.modes().to_vec()), Ok(vec![Mode::Cls, Mode::Max]));
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(Pooling::from_json("{", 4).is_err());
        assert!(Pooling::from_json("[]", 4).is_err());
        assert!(Pooling::from_json(r#"{"pooling_mode_mean_tokens": false}"#, 4).is_err());
        let wrong_dim = r#"{"word_embedding_dimension": 768, "pooling_mode_mean_tokens": true}"#;
        assert!(Pooling::from_json(wrong_dim, 384).unwrap_err().contains("768"));
    }

    #[test]
    fn normalizes_to_unit_length() {
        let mut v = [3.0, 4.0];
        l2_normalize(&mut v);
        assert_eq!(v, [0.6, 0.8]);
        let mut zero = [0.0, 0.0];
        l2_normalize(&mut zero);
        assert_eq!(zero, [0.0, 0.0]);
    }
}
