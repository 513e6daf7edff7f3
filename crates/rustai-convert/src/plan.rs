//! Which whisper.cpp tensors to write and where each comes from in a
//! CTranslate2 Whisper model, plus the header derived from its variables.
//!
//! The hyper-parameters come from the variable shapes (and the `num_heads`
//! scalars). Tensors are listed in the order of OpenAI's PyTorch `state_dict`,
//! as whisper.cpp's own converter writes them, under whisper.cpp's names:
//!
//! | CTranslate2                                 | whisper.cpp                              |
//! |---------------------------------------------|------------------------------------------|
//! | `encoder/position_encodings/encodings`      | `encoder.positional_embedding`           |
//! | `encoder/conv{1,2}/{weight,bias}`           | `encoder.conv{1,2}.{weight,bias}`        |
//! | `{enc,dec}oder/layer_N/self_attention/linear_0` (q, k, v by rows) | `….blocks.N.attn.{query,key,value}` |
//! | `…/self_attention/linear_1`                 | `….blocks.N.attn.out`                    |
//! | `…/self_attention/layer_norm/{gamma,beta}`  | `….blocks.N.attn_ln.{weight,bias}`       |
//! | `decoder/layer_N/attention/linear_0`        | `decoder.blocks.N.cross_attn.query`      |
//! | `decoder/layer_N/attention/linear_1` (k, v) | `decoder.blocks.N.cross_attn.{key,value}`|
//! | `decoder/layer_N/attention/linear_2`        | `decoder.blocks.N.cross_attn.out`        |
//! | `decoder/layer_N/attention/layer_norm`      | `decoder.blocks.N.cross_attn_ln`         |
//! | `…/ffn/linear_{0,1}`, `…/ffn/layer_norm`    | `….blocks.N.mlp.{0,2}`, `….mlp_ln`       |
//! | `{encoder,decoder}/layer_norm`              | `encoder.ln_post`, `decoder.ln`          |
//! | `decoder/embeddings/weight`                 | `decoder.token_embedding.weight`         |
//! | `decoder/position_encodings/encodings`      | `decoder.positional_embedding`           |
//!
//! Whisper's keys have no bias; CTranslate2 stores a zero one in the fused
//! projection, which is dropped (a key bias only shifts every attention score of
//! a query by the same amount, so softmax ignores it anyway). Matrices are
//! written as f16; vectors, convolution biases (as `[n, 1]`) and positional
//! embeddings as f32. Without stored encoder positions, the sinusoids Whisper
//! uses are computed ([`crate::sinusoids`]).

use std::{fs::File, io::BufReader};

use rustai_formats::{
    ct2::{Ct2Model, Ct2Variable},
    whisper::WhisperHparams,
};

use crate::{Error, Result};

/// Encoder positions of every Whisper model (30 s of audio).
const DEFAULT_AUDIO_CTX: u64 = 1500;

/// A dimension that fits the file's `i32` fields.
fn dim(v: u64, what: &str) -> Result<u32> {
    u32::try_from(v)
        .ok()
        .filter(|&d| d > 0 && d <= i32::MAX as u32)
        .ok_or_else(|| Error::Corrupt(format!("{what} is {v}")))
}

/// The variable called `name`, or [`Error::Missing`].
fn require<'m>(model: &'m Ct2Model, name: &str) -> Result<&'m Ct2Variable> {
    model.variable(name).ok_or_else(|| Error::Missing(name.to_owned()))
}

/// The shape of `name`, which must have rank `rank`.
fn shape<'m>(model: &'m Ct2Model, name: &str, rank: usize) -> Result<&'m [u64]> {
    let v = require(model, name)?;
    if v.shape.len() != rank {
        return Err(Error::Corrupt(format!("variable `{name}` has shape {:?}, expected rank {rank}", v.shape)));
    }
    Ok(&v.shape)
}

/// Number of `{prefix}layer_N/...` blocks.
fn layers(model: &Ct2Model, prefix: &str) -> Result<u32> {
    let n = model
        .variables
        .iter()
        .filter_map(|v| v.name.strip_prefix(prefix)?.strip_prefix("layer_")?.split('/').next()?.parse::<u64>().ok())
        .max()
        .map_or(0, |m| m + 1);
    dim(n, &format!("{prefix}layer count")).map_err(|_| Error::Missing(format!("{prefix}layer_0")))
}

/// The header, from variable shapes and the `num_heads` scalars.
pub(super) fn hparams(model: &Ct2Model, src: &mut BufReader<File>) -> Result<WhisperHparams> {
    let emb = shape(model, "decoder/embeddings/weight", 2)?;
    let conv1 = shape(model, "encoder/conv1/weight", 3)?;
    let text_pos = shape(model, "decoder/position_encodings/encodings", 2)?;
    let audio_ctx = match model.variable("encoder/position_encodings/encodings") {
        Some(_) => shape(model, "encoder/position_encodings/encodings", 2)?[0],
        None => DEFAULT_AUDIO_CTX,
    };
    let (n_audio_state, n_text_state) = (dim(conv1[0], "encoder width")?, dim(emb[1], "decoder width")?);
    let mut heads = |name: &str, state: u32| -> Result<u32> {
        // Whisper's heads are 64 wide; older conversions may lack the scalar.
        let n = model.read_int(src, name)?.unwrap_or(i64::from(state / 64));
        let n = dim(u64::try_from(n).unwrap_or(0), name)?;
        if state % n != 0 {
            return Err(Error::Corrupt(format!("{name} = {n} does not divide the width {state}")));
        }
        Ok(n)
    };
    Ok(WhisperHparams {
        n_vocab: dim(emb[0], "vocabulary size")?,
        n_audio_ctx: dim(audio_ctx, "encoder positions")?,
        n_audio_state,
        n_audio_head: heads("encoder/num_heads", n_audio_state)?,
        n_audio_layer: layers(model, "encoder/")?,
        n_text_ctx: dim(text_pos[0], "decoder positions")?,
        n_text_state,
        n_text_head: heads("decoder/num_heads", n_text_state)?,
        n_text_layer: layers(model, "decoder/")?,
        n_mels: dim(conv1[1], "mel bins")?,
        ftype: 1,
    })
}

/// Where a tensor's values come from.
pub(super) enum Source<'m> {
    /// Rows `first..first + shape[0]` of a variable (all of it, or one part of a fused projection).
    Rows { var: &'m Ct2Variable, first: u64 },
    /// Computed encoder positions.
    Sinusoids,
}

/// One tensor to write: name, shape (outermost first), f32 or f16, source.
pub(super) struct Planned<'m> {
    pub(super) name: String,
    pub(super) shape: Vec<u64>,
    pub(super) f32: bool,
    pub(super) src: Source<'m>,
}

struct Planner<'m> {
    model: &'m Ct2Model,
    out: Vec<Planned<'m>>,
}

impl<'m> Planner<'m> {
    /// Part `part` of `parts` equal row blocks of `ct2` as `name` with `shape`.
    fn add(&mut self, name: String, ct2: &str, (part, parts): (u64, u64), shape: Vec<u64>, f32: bool) -> Result<()> {
        let var = require(self.model, ct2)?;
        if !var.dtype.is_float() {
            return Err(Error::UnsupportedDtype { name: var.name.clone(), dtype: var.dtype.name().into() });
        }
        // The source has the parts stacked on the first axis and no trailing 1 (conv biases).
        let mut expected = shape.clone();
        expected[0] *= parts;
        while expected.len() > 1 && expected.last() == Some(&1) {
            expected.pop();
        }
        if var.shape != expected {
            return Err(Error::Shape { name: ct2.into(), expected, found: var.shape.clone() });
        }
        let first = part * shape[0];
        self.out.push(Planned { name, shape, f32, src: Source::Rows { var, first } });
        Ok(())
    }

    /// `{name}.weight` `[rows, cols]` (f16) and, if `bias`, `{name}.bias` `[rows]` (f32).
    fn linear(&mut self, name: &str, ct2: &str, part: (u64, u64), (rows, cols): (u64, u64), bias: bool) -> Result<()> {
        self.add(format!("{name}.weight"), &format!("{ct2}/weight"), part, vec![rows, cols], false)?;
        if bias {
            self.add(format!("{name}.bias"), &format!("{ct2}/bias"), part, vec![rows], true)?;
        }
        Ok(())
    }

    /// Layer norm `{name}.weight` / `.bias` (f32) from `gamma` / `beta`.
    fn norm(&mut self, name: &str, ct2: &str, width: u64) -> Result<()> {
        self.add(format!("{name}.weight"), &format!("{ct2}/gamma"), (0, 1), vec![width], true)?;
        self.add(format!("{name}.bias"), &format!("{ct2}/beta"), (0, 1), vec![width], true)
    }

    /// Self-attention of a block: fused q, k, v, then the output projection and norm.
    fn self_attention(&mut self, block: &str, layer: &str, s: u64) -> Result<()> {
        let qkv = format!("{layer}/self_attention/linear_0");
        self.linear(&format!("{block}.attn.query"), &qkv, (0, 3), (s, s), true)?;
        self.linear(&format!("{block}.attn.key"), &qkv, (1, 3), (s, s), false)?;
        self.linear(&format!("{block}.attn.value"), &qkv, (2, 3), (s, s), true)?;
        self.linear(&format!("{block}.attn.out"), &format!("{layer}/self_attention/linear_1"), (0, 1), (s, s), true)?;
        self.norm(&format!("{block}.attn_ln"), &format!("{layer}/self_attention/layer_norm"), s)
    }

    /// MLP of a block (4× wide) and its norm.
    fn mlp(&mut self, block: &str, layer: &str, s: u64) -> Result<()> {
        self.linear(&format!("{block}.mlp.0"), &format!("{layer}/ffn/linear_0"), (0, 1), (4 * s, s), true)?;
        self.linear(&format!("{block}.mlp.2"), &format!("{layer}/ffn/linear_1"), (0, 1), (s, 4 * s), true)?;
        self.norm(&format!("{block}.mlp_ln"), &format!("{layer}/ffn/layer_norm"), s)
    }
}

/// The tensors whisper.cpp loads, in `state_dict` order, each mapped to its source.
pub(super) fn plan<'m>(model: &'m Ct2Model, h: &WhisperHparams) -> Result<Vec<Planned<'m>>> {
    let mut p = Planner { model, out: Vec::with_capacity(h.tensor_count()) };
    let (s, ctx) = (u64::from(h.n_audio_state), u64::from(h.n_audio_ctx));
    let pos = "encoder/position_encodings/encodings";
    if model.variable(pos).is_some() {
        p.add("encoder.positional_embedding".into(), pos, (0, 1), vec![ctx, s], true)?;
    } else {
        p.out.push(Planned {
            name: "encoder.positional_embedding".into(),
            shape: vec![ctx, s],
            f32: true,
            src: Source::Sinusoids,
        });
    }
    p.add("encoder.conv1.weight".into(), "encoder/conv1/weight", (0, 1), vec![s, u64::from(h.n_mels), 3], false)?;
    p.add("encoder.conv1.bias".into(), "encoder/conv1/bias", (0, 1), vec![s, 1], true)?;
    p.add("encoder.conv2.weight".into(), "encoder/conv2/weight", (0, 1), vec![s, s, 3], false)?;
    p.add("encoder.conv2.bias".into(), "encoder/conv2/bias", (0, 1), vec![s, 1], true)?;
    for l in 0..h.n_audio_layer {
        let (block, layer) = (format!("encoder.blocks.{l}"), format!("encoder/layer_{l}"));
        p.self_attention(&block, &layer, s)?;
        p.mlp(&block, &layer, s)?;
    }
    p.norm("encoder.ln_post", "encoder/layer_norm", s)?;

    let (s, ctx) = (u64::from(h.n_text_state), u64::from(h.n_text_ctx));
    p.add("decoder.positional_embedding".into(), "decoder/position_encodings/encodings", (0, 1), vec![ctx, s], true)?;
    p.add(
        "decoder.token_embedding.weight".into(),
        "decoder/embeddings/weight",
        (0, 1),
        vec![u64::from(h.n_vocab), s],
        false,
    )?;
    for l in 0..h.n_text_layer {
        let (block, layer) = (format!("decoder.blocks.{l}"), format!("decoder/layer_{l}"));
        p.self_attention(&block, &layer, s)?;
        let cross = format!("{layer}/attention");
        p.linear(&format!("{block}.cross_attn.query"), &format!("{cross}/linear_0"), (0, 1), (s, s), true)?;
        p.linear(&format!("{block}.cross_attn.key"), &format!("{cross}/linear_1"), (0, 2), (s, s), false)?;
        p.linear(&format!("{block}.cross_attn.value"), &format!("{cross}/linear_1"), (1, 2), (s, s), true)?;
        p.linear(&format!("{block}.cross_attn.out"), &format!("{cross}/linear_2"), (0, 1), (s, s), true)?;
        p.norm(&format!("{block}.cross_attn_ln"), &format!("{cross}/layer_norm"), s)?;
        p.mlp(&block, &layer, s)?;
    }
    p.norm("decoder.ln", "decoder/layer_norm", s)?;
    debug_assert_eq!(p.out.len(), h.tensor_count());
    Ok(p.out)
}
