//! One embedding request: tokenize, batch by length, run BERT, pool, normalise.

use rustai_plugin::{Embeddings, PluginError, RString, RVec};

use crate::{
    batch::{pad, plan},
    model::EmbedModel,
    pooling::l2_normalize,
};

/// Tokens of one input, and whether it was cut to the model's limit.
struct Tokens {
    ids: Vec<u32>,
    truncated: bool,
}

fn tokenize(model: &EmbedModel, index: usize, text: &str) -> Result<Tokens, PluginError> {
    let encoding = model
        .tokenizer
        .encode_fast(text, true)
        .map_err(|e| PluginError::invalid_input(format!("input {index} cannot be tokenized: {e}")))?;
    let ids = encoding.get_ids().to_vec();
    if ids.is_empty() {
        return Err(PluginError::invalid_input(format!("input {index} gives no tokens")));
    }
    if let Some(bad) = ids.iter().find(|&&id| id as usize >= model.vocab) {
        return Err(PluginError::invalid_model(format!(
            "the tokenizer produced token id {bad}, outside the model's vocabulary of {}",
            model.vocab
        )));
    }
    if ids.len() > model.max_len {
        return Err(PluginError::internal(format!("input {index}: {} tokens after truncation to {}", ids.len(), model.max_len)));
    }
    // The tokenizer truncates to `max_len` and keeps the rest as overflow.
    let truncated = !encoding.get_overflowing().is_empty();
    Ok(Tokens { ids, truncated })
}

/// Embed `inputs` with `model`, one vector per input in input order.
pub fn embed(model: &EmbedModel, inputs: &[RString], normalize: bool) -> Result<Embeddings, PluginError> {
    if inputs.is_empty() {
        return Err(PluginError::invalid_input("an embedding request needs at least one input"));
    }
    model.on_threads(|| run(model, inputs, normalize))
}

fn run(model: &EmbedModel, inputs: &[RString], normalize: bool) -> Result<Embeddings, PluginError> {
    let tokens = inputs.iter().enumerate().map(|(i, text)| tokenize(model, i, text.as_str())).collect::<Result<Vec<_>, _>>()?;
    let hidden = model.hidden;
    let width = model.dimensions();
    let mut vectors: Vec<RVec<f32>> = vec![RVec::new(); inputs.len()];
    let lengths: Vec<usize> = tokens.iter().map(|t| t.ids.len()).collect();
    for chunk in plan(&lengths, model.chunk) {
        let seqs: Vec<&[u32]> = chunk.iter().map(|&i| tokens[i].ids.as_slice()).collect();
        let batch = pad(&seqs, model.pad_id);
        let states = model
            .forward(&batch)
            .map_err(|e| PluginError::internal(format!("the model failed on a batch of {} inputs: {e}", batch.rows)))?;
        let per_row = batch.width * hidden;
        if states.len() != batch.rows * per_row {
            return Err(PluginError::internal(format!(
                "the model returned {} values for a {}×{}×{hidden} batch",
                states.len(),
                batch.rows,
                batch.width
            )));
        }
        for (row, &input) in chunk.iter().enumerate() {
            let mut v = Vec::with_capacity(width);
            let mask = &batch.mask[row * batch.width..(row + 1) * batch.width];
            model.pooling.pool_into(&states[row * per_row..(row + 1) * per_row], mask, hidden, &mut v);
            if normalize {
                l2_normalize(&mut v);
            }
            vectors[input] = RVec::from(v);
        }
    }
    let tokens_in = lengths.iter().sum::<usize>();
    let truncated = tokens.iter().enumerate().filter(|(_, t)| t.truncated).map(|(i, _)| i as u32).collect();
    Ok(Embeddings {
        vectors: vectors.into_iter().collect(),
        dimensions: width as u32,
        tokens_in: u32::try_from(tokens_in).unwrap_or(u32::MAX),
        truncated,
    })
}
