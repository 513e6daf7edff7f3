//! Tests of the CTranslate2 → whisper.cpp converter, on a small synthetic model
//! and (required in CI) the real tiny.en model; the output is read back with
//! `rustai-formats`' header reader.

use std::path::{Path, PathBuf};

use rustai_formats::whisper::{is_whisper_ggml, WhisperHeader, WhisperHparams, WhisperTensor, DETECT_LEN};

use super::*;

use rustai_formats::ct2::testing::Ct2Builder;

/// Width, heads, mel bins, encoder/decoder positions, vocabulary of the fake model.
const S: u32 = 8;
const MELS: u32 = 4;
const AUDIO_CTX: u32 = 6;
const TEXT_CTX: u32 = 5;
const VOCAB: u32 = 12;
const TOKENIZER: &str = r#"{"model": {"type": "BPE", "vocab": {"Ġa": 0, "b": 1, "<|endoftext|>": 2}}}"#;

fn layer(b: &mut Ct2Builder, l: &str, cross: bool) {
    let ramp = |i: usize| i as f32;
    let lin = |b: &mut Ct2Builder, name: &str, rows: u32, cols: u32| {
        b.f16(&format!("{name}/weight"), &[rows, cols], ramp).f16(&format!("{name}/bias"), &[rows], ramp);
    };
    let norm = |b: &mut Ct2Builder, name: &str| {
        b.f16(&format!("{name}/gamma"), &[S], |_| 1.0).f16(&format!("{name}/beta"), &[S], |_| 0.5);
    };
    lin(b, &format!("{l}/self_attention/linear_0"), 3 * S, S);
    lin(b, &format!("{l}/self_attention/linear_1"), S, S);
    norm(b, &format!("{l}/self_attention/layer_norm"));
    if cross {
        lin(b, &format!("{l}/attention/linear_0"), S, S);
        lin(b, &format!("{l}/attention/linear_1"), 2 * S, S);
        lin(b, &format!("{l}/attention/linear_2"), S, S);
        norm(b, &format!("{l}/attention/layer_norm"));
    }
    lin(b, &format!("{l}/ffn/linear_0"), 4 * S, S);
    lin(b, &format!("{l}/ffn/linear_1"), S, 4 * S);
    norm(b, &format!("{l}/ffn/layer_norm"));
}

/// A fake one-layer Whisper in `dir`; `skip` leaves out variables whose name contains it.
fn fake_model(dir: &Path, spec: &str, skip: Option<&str>, weights_dtype: u8) {
    let mut b = Ct2Builder::default();
    b.f16("encoder/conv1/weight", &[S, MELS, 3], |i| i as f32)
        .f16("encoder/conv1/bias", &[S], |i| i as f32)
        .f16("encoder/conv2/weight", &[S, S, 3], |i| i as f32)
        .f16("encoder/conv2/bias", &[S], |i| -(i as f32))
        .f16("encoder/position_encodings/encodings", &[AUDIO_CTX, S], |i| i as f32 / 64.0)
        .i16("encoder/num_heads", 2);
    layer(&mut b, "encoder/layer_0", false);
    b.f16("encoder/layer_norm/gamma", &[S], |_| 1.0).f16("encoder/layer_norm/beta", &[S], |_| 0.0);
    if weights_dtype == 4 {
        b.f16("decoder/embeddings/weight", &[VOCAB, S], |i| i as f32);
    } else {
        b.raw("decoder/embeddings/weight", &[VOCAB, S], weights_dtype, VOCAB * S, &vec![0; (VOCAB * S) as usize]);
    }
    b.f16("decoder/position_encodings/encodings", &[TEXT_CTX, S], |i| i as f32 / 16.0).i16("decoder/num_heads", 2);
    layer(&mut b, "decoder/layer_0", true);
    b.f16("decoder/layer_norm/gamma", &[S], |_| 1.0).f16("decoder/layer_norm/beta", &[S], |_| 0.0);
    b.alias("decoder/projection/weight", "decoder/embeddings/weight");
    let mut bytes = b.build(spec);
    if let Some(skip) = skip {
        // Rebuild without the skipped variables by renaming them out of reach.
        let needle = skip.as_bytes();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            bytes[at] = b'X';
        }
    }
    std::fs::write(dir.join("model.bin"), bytes).unwrap();
    std::fs::write(dir.join("tokenizer.json"), TOKENIZER).unwrap();
}

fn tensor_bytes(path: &Path, t: &WhisperTensor) -> Vec<u8> {
    let all = std::fs::read(path).unwrap();
    all[t.offset as usize..(t.offset + t.size) as usize].to_vec()
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

fn f16s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
}

fn find<'h>(h: &'h WhisperHeader, name: &str) -> &'h WhisperTensor {
    h.tensors.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no tensor {name}"))
}

#[test]
fn converts_a_synthetic_model() {
    let dir = tempfile::tempdir().unwrap();
    fake_model(dir.path(), "WhisperSpec", None, 4);
    let out = dir.path().join("ggml.bin");
    let report = convert_ct2(dir.path(), &out).unwrap();
    let expected = WhisperHparams {
        n_vocab: VOCAB,
        n_audio_ctx: AUDIO_CTX,
        n_audio_state: S,
        n_audio_head: 2,
        n_audio_layer: 1,
        n_text_ctx: TEXT_CTX,
        n_text_state: S,
        n_text_head: 2,
        n_text_layer: 1,
        n_mels: MELS,
        ftype: 1,
    };
    assert_eq!(report.hparams, expected);
    assert_eq!((report.tensors, report.vocab_tokens, report.computed_encoder_positions), (50, 3, false));
    assert!(!dir.path().join("ggml.bin.partial").exists());

    let h = WhisperHeader::read(&out).unwrap();
    assert_eq!(h.hparams, expected);
    assert_eq!((h.mel_bins, h.vocab_len, h.tensors.len(), h.file_size), (201, 3, 50, report.bytes));
    assert_eq!(h.model_type(), "unknown");
    assert!(!h.is_multilingual());
    let head = std::fs::read(&out).unwrap();
    assert!(is_whisper_ggml(&head[..DETECT_LEN]));
    // The vocabulary right after the filterbank, GPT-2 bytes decoded.
    let vocab_at = DETECT_LEN + (MELS * 201 * 4) as usize;
    assert_eq!(&head[vocab_at..vocab_at + 4 + 4 + 2], &[3, 0, 0, 0, 2, 0, 0, 0, b' ', b'a']);

    // Order, names, types and ggml (reversed) dimensions.
    let t = &h.tensors;
    assert_eq!(t[0].name, "encoder.positional_embedding");
    assert_eq!((t[0].dims.as_slice(), t[0].ggml_type), (&[8, 6][..], 0));
    assert_eq!((t[1].name.as_str(), t[1].dims.as_slice(), t[1].ggml_type), ("encoder.conv1.weight", &[3, 4, 8][..], 1));
    assert_eq!((t[2].name.as_str(), t[2].dims.as_slice(), t[2].ggml_type), ("encoder.conv1.bias", &[1, 8][..], 0));
    assert_eq!(t[5].name, "encoder.blocks.0.attn.query.weight");
    assert_eq!(t[49].name, "decoder.ln.bias");
    // Fused projections are split by rows; key biases dropped.
    let get = |name: &str| tensor_bytes(&out, find(&h, name));
    assert_eq!(f16s(&get("encoder.blocks.0.attn.key.weight")), (64..128).map(|i| i as f32).collect::<Vec<_>>());
    assert_eq!(f32s(&get("encoder.blocks.0.attn.value.bias")), (16..24).map(|i| i as f32).collect::<Vec<_>>());
    assert_eq!(f16s(&get("decoder.blocks.0.cross_attn.value.weight")), (64..128).map(|i| i as f32).collect::<Vec<_>>());
    assert_eq!(f32s(&get("decoder.blocks.0.cross_attn.value.bias")), (8..16).map(|i| i as f32).collect::<Vec<_>>());
    assert_eq!(f32s(&get("encoder.conv2.bias"))[3], -3.0);
    assert_eq!(f32s(&get("decoder.positional_embedding"))[3], 3.0 / 16.0);
    assert_eq!(f32s(&get("decoder.blocks.0.mlp_ln.bias")), vec![0.5; 8]);
    assert!(h.tensors.iter().all(|t| !t.name.contains("key.bias")));
}

#[test]
fn computes_missing_encoder_positions() {
    let dir = tempfile::tempdir().unwrap();
    fake_model(dir.path(), "WhisperSpec", Some("encoder/position_encodings"), 4);
    let out = dir.path().join("ggml.bin");
    let report = convert_ct2(dir.path(), &out).unwrap();
    assert!(report.computed_encoder_positions);
    let h = WhisperHeader::read(&out).unwrap();
    assert_eq!(h.hparams.n_audio_ctx, 1500);
    let pos = f32s(&tensor_bytes(&out, &h.tensors[0]));
    assert_eq!(pos.len(), 1500 * 8);
    // Position 0: sin 0 = 0, then cos 0 = 1; position 1, channel 0: sin 1.
    assert_eq!(&pos[..8], &[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
    assert_eq!(pos[8], half::f16::from_f32(1f32.sin()).to_f32());
}

#[test]
fn conversion_errors_leave_nothing_behind() {
    type Case = (&'static str, Option<&'static str>, u8, fn(&Error) -> bool);
    let cases: [Case; 3] = [
        ("WhisperSpec", Some("decoder/layer_0/attention/linear_2/weight"), 4, |e| matches!(e, Error::Missing(_))),
        ("WhisperSpec", None, 1, |e| matches!(e, Error::UnsupportedDtype { .. })),
        ("TransformerSpec", None, 4, |e| matches!(e, Error::NotWhisper(_))),
    ];
    for (spec, skip, dtype, check) in cases {
        let dir = tempfile::tempdir().unwrap();
        fake_model(dir.path(), spec, skip, dtype);
        let out = dir.path().join("ggml.bin");
        let err = convert_ct2(dir.path(), &out).unwrap_err();
        assert!(check(&err), "{spec} {skip:?}: {err}");
        assert!(!out.exists() && !dir.path().join("ggml.bin.partial").exists());
    }
    // No tokenizer.json.
    let dir = tempfile::tempdir().unwrap();
    fake_model(dir.path(), "WhisperSpec", None, 4);
    std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
    let err = convert_ct2(dir.path(), &dir.path().join("o.bin")).unwrap_err();
    assert!(matches!(&err, Error::Missing(m) if m.ends_with("tokenizer.json")), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// The real tiny.en model (`scripts/fetch-models.sh` puts it there).
fn tiny_en_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/.sources/whisper-tiny.en-ct2")
}

#[test]
fn converts_tiny_en_exactly() {
    let src = tiny_en_dir();
    assert!(
        src.join("model.bin").is_file(),
        "{} is missing: fetch the CTranslate2 whisper-tiny.en model first (CI does this before testing)",
        src.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ggml-tiny.en.bin");
    let report = convert_ct2(&src, &out).unwrap();
    let size = std::fs::metadata(&out).unwrap().len();
    assert_eq!((size, report.bytes), (77_704_715, 77_704_715), "the official ggml-tiny.en.bin has 77,704,715 bytes");
    let h = WhisperHeader::read(&out).unwrap();
    assert_eq!(h.hparams, WhisperHparams::from_array([51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1]));
    assert_eq!((h.model_type(), h.is_multilingual(), h.vocab_len, h.tensors.len()), ("tiny", false, 50257, 167));
    assert!(!report.computed_encoder_positions);
    // The stored encoder positions are Whisper's sinusoids, within one f16 step
    // (98.6% bit-identical; the rest differ in how f32 sin/cos round).
    let stored = f32s(&tensor_bytes(&out, &h.tensors[0]));
    let computed = sinusoids(1500, 384);
    let worst = stored.iter().zip(&computed).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst <= 1.0 / 2048.0, "sinusoids differ by up to {worst}");
    // Byte for byte the file scripts/convert-whisper.sh pins.
    use sha2::Digest;
    let digest = sha2::Sha256::digest(std::fs::read(&out).unwrap());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "25d0eb8164c94f6277b8d12c7a54e0315fc9761b294162662d6d5ad6c656eff6");
}
