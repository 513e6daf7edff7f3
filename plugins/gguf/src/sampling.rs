//! Token sampling that cannot take the process down.
//!
//! llama.cpp's `llama_sampler_sample` applies the chain and then *accepts* the
//! token into every sampler; a grammar sampler throws a C++ exception (or
//! `GGML_ABORT`s on an end-of-generation token) when handed a token it forbids,
//! and no Rust code can catch either. A forbidden token gets picked when the
//! distribution is NaN, for example when a tiny temperature turns the logits
//! into infinities. So this module never calls it:
//!
//! 1. the logits are copied and sanitised (NaN → −∞, +∞ → the largest finite);
//! 2. the constraint samplers (grammar, penalties, top-k, top-p, min-p) are
//!    applied to that array;
//! 3. temperature is applied here, in `f64`, relative to the best allowed logit,
//!    so every value stays finite whatever the temperature;
//! 4. `dist` (or the arg-max, for greedy) picks a token, which is checked against
//!    what the grammar allowed (a token at −∞ is never returned);
//! 5. the token is accepted through llama-cpp-2's exception-catching shim
//!    (`try_accept`), so a grammar error is an error, not an abort.
//!
//! **Invariant:** every llama.cpp call reached from here either cannot throw or
//! goes through a shim that catches.

use llama_cpp_2::{
    context::LlamaContext,
    sampling::LlamaSampler,
    token::{data::LlamaTokenData, data_array::LlamaTokenDataArray, logit_bias::LlamaLogitBias, LlamaToken},
};
use rustai_plugin::{ErrorKind, PluginError, ROption, SamplingExtras, SamplingParams};

use crate::{grammar_bounds, model::LoadedModel};

/// llama.cpp's "pick a random seed" value.
const RANDOM_SEED: u32 = u32::MAX;

/// The per-request sampler.
pub(crate) struct Sampler {
    /// The grammar, once active (a lazy one from its trigger word on).
    grammar: Option<LlamaSampler>,
    /// A lazy grammar still waiting for its trigger word.
    waiting: Option<Waiting>,
    /// Penalties and truncation (everything else before temperature); `None` if there is nothing to apply.
    constraints: Option<LlamaSampler>,
    /// `None` = greedy.
    temperature: Option<f64>,
    /// The final draw: `dist`, or Mirostat; `None` = greedy.
    dist: Option<LlamaSampler>,
    /// The candidate buffer, reused between tokens.
    buffer: Vec<LlamaTokenData>,
    /// Report log-probabilities with this many alternatives.
    logprobs: Option<u32>,
    /// The last sampled token's log-probability and the best alternatives.
    last_logprobs: Option<(f32, Vec<(i32, f32)>)>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler").field("temperature", &self.temperature).finish_non_exhaustive()
    }
}

/// A lazy grammar before its trigger: the grammar's text and the words that start it, and
/// the end of the output so far (just long enough to hold a trigger split across tokens).
///
/// Written here rather than llama.cpp's lazy grammar, which matches a regular expression
/// against the whole output at every token (quadratic, and `std::regex` recurses once per
/// character: a long answer can overflow the thread's stack).
struct Waiting {
    grammar: String,
    triggers: Vec<String>,
    tail: String,
}

/// The grammar for `p`: its GBNF, or its JSON schema converted, both within bounds.
fn grammar(p: &SamplingParams) -> Result<Option<String>, PluginError> {
    match (&p.grammar, &p.json_schema) {
        (ROption::RSome(g), _) => {
            grammar_bounds::check_gbnf(g.as_str())?;
            Ok(Some(g.to_string()))
        }
        (ROption::RNone, ROption::RSome(schema)) => {
            grammar_bounds::check_schema(schema.as_str())?;
            let g = llama_cpp_2::json_schema_to_grammar(schema.as_str()).map_err(|_| {
                PluginError::invalid_input(
                    "the JSON schema uses a construct the grammar converter does not support \
                     (supported: type, properties, required, items, prefixItems, enum, const, anyOf/oneOf/allOf, \
                     $ref within the schema, string formats and simple patterns, min/max lengths and items)",
                )
            })?;
            // The converter's output must obey the same structural bounds as a grammar given directly.
            grammar_bounds::check_gbnf_structure(&g)?;
            Ok(Some(g))
        }
        _ => Ok(None),
    }
}

/// Fold a 64-bit seed into llama.cpp's 32 bits, avoiding its "random" marker.
fn seed(p: &SamplingParams) -> u32 {
    match p.seed {
        ROption::RSome(s) => match (s ^ (s >> 32)) as u32 {
            RANDOM_SEED => RANDOM_SEED - 1,
            v => v,
        },
        ROption::RNone => RANDOM_SEED,
    }
}

impl Sampler {
    /// A sampler for `p` and `x` (validated first: a plugin cannot trust its host).
    ///
    /// Order, as llama.cpp's own samplers: grammar, logit bias, penalties, then (unless
    /// greedy) either Mirostat or top-k / typical / top-p / min-p; temperature and the
    /// final draw come last, in [`Self::sample`].
    /// With `triggers`, the grammar applies lazily, from the first trigger word on.
    pub(crate) fn new(
        model: &LoadedModel,
        p: &SamplingParams,
        x: &SamplingExtras,
        triggers: &[String],
        logprobs: Option<u32>,
    ) -> Result<Self, PluginError> {
        p.validate()?;
        x.validate()?;
        let n_vocab = model.model.n_vocab();
        let mut chain = Vec::new();
        let grammar_text = grammar(p)?;
        if !triggers.is_empty() && grammar_text.is_none() {
            return Err(PluginError::invalid_input("grammar trigger words were given without a grammar"));
        }
        let (mut grammar_sampler, mut waiting) = (None, None);
        if let Some(g) = grammar_text {
            // Parsed now even when lazy, so a bad grammar is refused before any work.
            let parsed = compile_grammar(model, &g, p.grammar.is_none())?;
            if triggers.is_empty() {
                grammar_sampler = Some(parsed);
            } else {
                waiting = Some(Waiting { grammar: g, triggers: triggers.to_vec(), tail: String::new() });
            }
        }
        if !x.logit_bias.is_empty() {
            let mut biases = Vec::with_capacity(x.logit_bias.len());
            for b in x.logit_bias.iter() {
                if b.token >= n_vocab {
                    return Err(PluginError::invalid_input(format!(
                        "invalid `logit_bias`: token id {} is outside the vocabulary (0..{n_vocab})",
                        b.token
                    )));
                }
                biases.push(LlamaLogitBias::new(LlamaToken(b.token), b.bias));
            }
            chain.push(LlamaSampler::logit_bias(n_vocab, &biases));
        }
        let repeat = p.repeat_penalty > 0.0 && (p.repeat_penalty - 1.0).abs() > f32::EPSILON;
        let penalised = repeat || x.frequency_penalty != 0.0 || x.presence_penalty != 0.0;
        if penalised && p.repeat_last_n != 0 {
            // -1 = the whole context; the window never exceeds the context, so its buffer is bounded.
            let ctx = model.info.context_length as i32;
            let window = if p.repeat_last_n < 0 { ctx } else { p.repeat_last_n.min(ctx) };
            let repeat_penalty = if repeat { p.repeat_penalty } else { 1.0 };
            chain.push(LlamaSampler::penalties(n_vocab, window, repeat_penalty, x.frequency_penalty, x.presence_penalty));
        }
        let greedy = p.temperature <= 0.0;
        if !greedy && x.mirostat == 0 {
            if p.top_k > 0 {
                chain.push(LlamaSampler::top_k(p.top_k));
            }
            if x.typical_p > 0.0 && x.typical_p < 1.0 {
                chain.push(LlamaSampler::typical(x.typical_p, 1));
            }
            if p.top_p > 0.0 && p.top_p < 1.0 {
                chain.push(LlamaSampler::top_p(p.top_p, 1));
            }
            if p.min_p > 0.0 {
                chain.push(LlamaSampler::min_p(p.min_p, 1));
            }
        }
        let dist = match (greedy, x.mirostat) {
            (true, _) => None,
            (false, 1) => Some(LlamaSampler::mirostat(n_vocab, seed(p), x.mirostat_tau, x.mirostat_eta, 100)),
            (false, 2) => Some(LlamaSampler::mirostat_v2(seed(p), x.mirostat_tau, x.mirostat_eta)),
            (false, _) => Some(LlamaSampler::dist(seed(p))),
        };
        Ok(Self {
            grammar: grammar_sampler,
            waiting,
            constraints: (!chain.is_empty()).then(|| LlamaSampler::chain_simple(chain)),
            temperature: (!greedy).then_some(f64::from(p.temperature)),
            dist,
            buffer: Vec::new(),
            logprobs,
            last_logprobs: None,
        })
    }

    /// Pick the next token from the logits of batch position `idx`, and accept it
    /// into the stateful samplers unless it ends generation (`accept == false`).
    pub(crate) fn sample(&mut self, ctx: &LlamaContext<'_>, idx: i32, eog: impl Fn(LlamaToken) -> bool) -> Result<LlamaToken, PluginError> {
        let logits = ctx.get_logits_ith(idx);
        let mut data = std::mem::take(&mut self.buffer);
        data.clear();
        data.extend((0_i32..).zip(logits).map(|(id, &l)| LlamaTokenData::new(LlamaToken(id), sanitise(l), 0.0)));
        // Log-probabilities under the model, before any constraint (as the APIs define them).
        let distribution = self.logprobs.map(|top| log_softmax_top(&data, top as usize));
        let mut array = LlamaTokenDataArray::new(data, false);
        if let Some(g) = self.grammar.as_mut() {
            array.apply_sampler(g);
            array.selected = None;
        }
        if let Some(c) = self.constraints.as_mut() {
            array.apply_sampler(c);
            array.selected = None;
        }
        let token = self.pick(&mut array)?;
        self.last_logprobs = distribution.map(|(log_norm, top)| {
            let raw = ctx.get_logits_ith(idx).get(token.0 as usize).copied().map_or(f32::NEG_INFINITY, sanitise);
            ((f64::from(raw) - log_norm) as f32, top)
        });
        self.buffer = array.data;
        if !eog(token) {
            for c in [self.grammar.as_mut(), self.constraints.as_mut()].into_iter().flatten() {
                c.try_accept(token).map_err(|e| {
                    PluginError::new(ErrorKind::InvalidInput, format!("the grammar cannot continue with the sampled token ({e})"))
                })?;
            }
        }
        Ok(token)
    }

    /// After a sampled token (not an end token): a lazy grammar looks for its trigger in the
    /// output's end; once found, the grammar starts there, fed the text from the trigger on.
    pub(crate) fn observe(&mut self, model: &LoadedModel, token: LlamaToken) -> Result<(), PluginError> {
        let Some(w) = self.waiting.as_mut() else { return Ok(()) };
        let vocab = model.model.vocab();
        w.tail.push_str(&String::from_utf8_lossy(&vocab.token_to_piece(token, true, None)));
        let found = w.triggers.iter().filter_map(|t| w.tail.find(t.as_str())).min();
        let Some(at) = found else {
            // Keep only what could be the start of a trigger split across tokens.
            let keep = w.triggers.iter().map(String::len).max().unwrap_or(0);
            if w.tail.len() > keep {
                let mut cut = w.tail.len() - keep;
                while !w.tail.is_char_boundary(cut) {
                    cut += 1;
                }
                w.tail.drain(..cut);
            }
            return Ok(());
        };
        let w = self.waiting.take().expect("checked");
        let mut grammar = compile_grammar(model, &w.grammar, false)?;
        for t in vocab.tokenize(&w.tail.as_bytes()[at..], false, true) {
            if grammar.try_accept(t).is_err() {
                // The text after the trigger already left the grammar: generation goes on
                // unconstrained (the host checks what comes out), never fails here.
                return Ok(());
            }
        }
        self.grammar = Some(grammar);
        Ok(())
    }

    /// Temperature and the final choice, on an array the constraints have been applied to.
    fn pick(&mut self, array: &mut LlamaTokenDataArray) -> Result<LlamaToken, PluginError> {
        let best = best_allowed(array).ok_or_else(|| {
            PluginError::invalid_input("no token is allowed at this point (the grammar or constraints exclude every token)")
        })?;
        let (Some(t), Some(dist)) = (self.temperature, self.dist.as_mut()) else {
            return Ok(array.data[best].id());
        };
        let max = f64::from(array.data[best].logit());
        for d in &mut array.data {
            let l = d.logit();
            if l.is_finite() {
                // (l - max) <= 0, so the result is in [-inf, 0]; clamp keeps it finite.
                d.set_logit((((f64::from(l) - max) / t).max(-1e30)) as f32);
            }
        }
        array.selected = None;
        array.sorted = false;
        array.apply_sampler(dist);
        match array.selected {
            Some(i) if array.data[i].logit().is_finite() => Ok(array.data[i].id()),
            // dist picked a token the constraints removed (cannot happen with finite logits, but
            // never hand one on): take the best allowed one instead.
            _ => Ok(array.data[best].id()),
        }
    }
}

impl Sampler {
    /// The last sampled token's log-probability and the best alternatives (once), when asked for.
    pub(crate) fn take_logprobs(&mut self) -> Option<(f32, Vec<(i32, f32)>)> {
        self.last_logprobs.take()
    }
}

/// The log of the softmax normaliser of `data`'s logits, and the `top` most likely tokens
/// with their log-probabilities, best first.
fn log_softmax_top(data: &[LlamaTokenData], top: usize) -> (f64, Vec<(i32, f32)>) {
    let max = data.iter().map(|d| d.logit()).filter(|l| l.is_finite()).fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return (0.0, Vec::new());
    }
    let sum: f64 = data.iter().map(|d| f64::from(d.logit() - max).exp()).sum();
    let log_norm = f64::from(max) + sum.ln();
    let mut best: Vec<(i32, f32)> = Vec::with_capacity(top + 1);
    if top > 0 {
        for d in data {
            let l = d.logit();
            if best.len() < top || l > best[best.len() - 1].1 {
                let at = best.partition_point(|&(_, b)| b >= l);
                best.insert(at, (d.id().0, l));
                best.truncate(top);
            }
        }
    }
    (log_norm, best.into_iter().map(|(t, l)| (t, (f64::from(l) - log_norm) as f32)).collect())
}

/// A grammar sampler for `g` (from a JSON schema when `from_schema`, for the message).
fn compile_grammar(model: &LoadedModel, g: &str, from_schema: bool) -> Result<LlamaSampler, PluginError> {
    LlamaSampler::grammar(&model.model, g, "root").map_err(|_| {
        PluginError::invalid_input(if from_schema {
            "the JSON schema cannot become a usable grammar (a `$ref` cycle that never reaches a value, \
             or constraints nothing can satisfy)"
        } else {
            "invalid grammar: llama.cpp could not parse it (check rule names, quotes and brackets, \
             and that no rule refers to itself before consuming input)"
        })
    })
}

/// NaN becomes "never", +inf the largest finite value.
fn sanitise(l: f32) -> f32 {
    if l.is_nan() {
        f32::NEG_INFINITY
    } else {
        l.min(f32::MAX)
    }
}

/// Index of the highest finite logit.
fn best_allowed(array: &LlamaTokenDataArray) -> Option<usize> {
    array
        .data
        .iter()
        .enumerate()
        .filter(|(_, d)| d.logit().is_finite())
        .max_by(|a, b| a.1.logit().total_cmp(&b.1.logit()))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitise_removes_nan_and_infinity() {
        assert_eq!(sanitise(f32::NAN), f32::NEG_INFINITY);
        assert_eq!(sanitise(f32::INFINITY), f32::MAX);
        assert_eq!(sanitise(f32::NEG_INFINITY), f32::NEG_INFINITY);
        assert_eq!(sanitise(1.5), 1.5);
    }

    #[test]
    fn best_allowed_skips_forbidden_tokens() {
        let d = |id, l| LlamaTokenData::new(LlamaToken(id), l, 0.0);
        let a = LlamaTokenDataArray::new(vec![d(0, f32::NEG_INFINITY), d(1, 2.0), d(2, 3.0), d(3, f32::NEG_INFINITY)], false);
        assert_eq!(best_allowed(&a), Some(2));
        let none = LlamaTokenDataArray::new(vec![d(0, f32::NEG_INFINITY)], false);
        assert_eq!(best_allowed(&none), None);
    }
}
