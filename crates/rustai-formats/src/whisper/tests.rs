//! Tests of the whisper.cpp header reader, on a small file built here in the
//! layout whisper.cpp reads (the converter's own tests, in `rustai-convert`,
//! read its output back with this reader as well).

use std::path::Path;

use super::*;

/// Width, mel bins, encoder/decoder positions, vocabulary of the fake model.
const S: u32 = 8;
const MELS: u32 = 4;
const AUDIO_CTX: u32 = 6;
const TEXT_CTX: u32 = 5;
const VOCAB: u32 = 12;

/// The hyper-parameters of the fake one-layer model (2 heads each side, f16).
fn hparams() -> WhisperHparams {
    WhisperHparams::from_array([VOCAB, AUDIO_CTX, S, 2, 1, TEXT_CTX, S, 2, 1, MELS, 1])
}

/// A structurally valid whisper.cpp file for [`hparams`] at `path`: the
/// filterbank, a 3-token vocabulary (`" a"` first), then the 50 tensors a
/// one-layer model has, alternately f16 `[S, S]` and f32 `[S]`, the last one
/// the f32 `decoder.ln.bias`.
fn write_ggml(path: &Path) {
    let h = hparams();
    let mut out = MAGIC.to_le_bytes().to_vec();
    let i32s = |out: &mut Vec<u8>, v: &[u32]| v.iter().for_each(|&x| out.extend_from_slice(&(x as i32).to_le_bytes()));
    i32s(&mut out, &h.to_array());
    i32s(&mut out, &[MELS, 201]);
    out.extend((0..MELS * 201).flat_map(|i| (i as f32 / 1000.0).to_le_bytes()));
    let vocab: [&[u8]; 3] = [b" a", b"b", b"<|endoftext|>"];
    i32s(&mut out, &[vocab.len() as u32]);
    for token in vocab {
        i32s(&mut out, &[token.len() as u32]);
        out.extend_from_slice(token);
    }
    let count = h.tensor_count();
    for i in 0..count {
        let name = if i + 1 == count { "decoder.ln.bias".to_owned() } else { format!("tensor.{i}") };
        let (dims, ggml_type, bytes): (&[u32], u32, usize) =
            if i % 2 == 0 && i + 1 != count { (&[S, S], 1, (S * S * 2) as usize) } else { (&[S], 0, (S * 4) as usize) };
        i32s(&mut out, &[dims.len() as u32, name.len() as u32, ggml_type]);
        i32s(&mut out, dims);
        out.extend_from_slice(name.as_bytes());
        out.extend((0..bytes).map(|b| b as u8));
    }
    std::fs::write(path, out).unwrap();
}

fn find<'h>(h: &'h WhisperHeader, name: &str) -> &'h WhisperTensor {
    h.tensors.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no tensor {name}"))
}

#[test]
fn header_reader_rejects_damaged_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ggml.bin");
    write_ggml(&out);
    let good = std::fs::read(&out).unwrap();
    // The intact file reads, and is recognised from its first bytes.
    let h = WhisperHeader::read(&out).unwrap();
    assert_eq!(h.hparams, hparams());
    assert_eq!((h.mel_bins, h.vocab_len, h.tensors.len(), h.file_size), (201, 3, 50, good.len() as u64));
    assert_eq!((h.tensors[0].dims.as_slice(), h.tensors[0].ggml_type, h.tensors[0].size), (&[8, 8][..], 1, 128));
    assert!(is_whisper_ggml(&good[..DETECT_LEN]));
    let cut = dir.path().join("cut.bin");
    // Every cut, including those on a tensor boundary, is caught.
    for len in (0..good.len()).step_by(7).chain([good.len() - 1, 3, 4, DETECT_LEN]) {
        std::fs::write(&cut, &good[..len]).unwrap();
        let r = WhisperHeader::read(&cut);
        assert!(r.is_err(), "cut at {len}");
    }
    let boundary = find(&h, "decoder.ln.bias").offset as usize - 12 - 4 - 15;
    std::fs::write(&cut, &good[..boundary]).unwrap();
    assert!(matches!(WhisperHeader::read(&cut), Err(Error::Corrupt(_))));
    // Garbage and other ggml-magic files.
    std::fs::write(&cut, b"GGUF\x03\0\0\0").unwrap();
    assert!(matches!(WhisperHeader::read(&cut), Err(Error::NotWhisperGgml { .. })));
    let mut llama = good[..DETECT_LEN].to_vec();
    llama[4 * 12..4 * 12 + 4].copy_from_slice(&7i32.to_le_bytes());
    assert!(!is_whisper_ggml(&llama));
    assert!(!is_whisper_ggml(&good[..DETECT_LEN - 1]));
    // A huge token length or count is an error, not an allocation.
    let mut bad = good.clone();
    let vocab_at = DETECT_LEN + (MELS * 201 * 4) as usize;
    assert_eq!(&good[vocab_at..vocab_at + 4 + 4 + 2], &[3, 0, 0, 0, 2, 0, 0, 0, b' ', b'a']);
    bad[vocab_at + 4..vocab_at + 8].copy_from_slice(&i32::MAX.to_le_bytes());
    std::fs::write(&cut, &bad).unwrap();
    assert!(matches!(WhisperHeader::read(&cut), Err(Error::Corrupt(_))));
    let mut bad = good;
    bad[vocab_at..vocab_at + 4].copy_from_slice(&(-1i32).to_le_bytes());
    std::fs::write(&cut, &bad).unwrap();
    assert!(matches!(WhisperHeader::read(&cut), Err(Error::Corrupt(_))));
}

#[test]
fn model_types() {
    let mut h = WhisperHparams::from_array([51865, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1]);
    assert_eq!((h.model_type(), h.is_multilingual(), h.tensor_count()), ("tiny", true, 167));
    for (layers, name) in [(6, "base"), (12, "small"), (24, "medium"), (32, "large"), (5, "unknown")] {
        h.n_audio_layer = layers;
        assert_eq!(h.model_type(), name);
    }
}
