//! The token list whisper.cpp reads from its model files, from a Hugging Face
//! `tokenizer.json`.
//!
//! Whisper uses GPT-2's byte-level BPE: each token is a byte string, written in
//! `tokenizer.json` with every byte replaced by a printable character (GPT-2's
//! `bytes_to_unicode`: the printable Latin-1 bytes `!`..`~`, `¡`..`¬`, `®`..`ÿ`
//! stand for themselves, the 68 others become U+0100.. in byte order). The
//! ggml file holds the raw bytes, so each character is mapped back. Only the
//! BPE vocabulary (`model.vocab`, ids 0..n in order) is written; whisper.cpp
//! derives the special tokens after it from the header's `n_vocab`.

use crate::{Error, Result};

/// Whether GPT-2's byte-to-character table maps byte `b` to itself.
const fn is_printable(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff)
}

/// The 68 other bytes, in order: GPT-2 spells the n-th as U+0100 + n.
const SHIFTED: [u8; 68] = {
    let mut out = [0u8; 68];
    let (mut b, mut n) = (0usize, 0usize);
    while b < 256 {
        if !is_printable(b as u8) {
            out[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    out
};

/// GPT-2's table inverted: the byte that character `c` stands for.
pub fn unicode_to_byte(c: char) -> Option<u8> {
    match u32::from(c) {
        c @ 0..=255 => is_printable(c as u8).then_some(c as u8),
        c => SHIFTED.get(usize::try_from(c - 256).ok()?).copied(),
    }
}

/// The raw bytes of one token as `tokenizer.json` spells it.
pub fn token_bytes(token: &str) -> Option<Vec<u8>> {
    token.chars().map(unicode_to_byte).collect()
}

/// The BPE vocabulary of `tokenizer.json` (its text), as byte strings in id order.
pub fn vocab_from_tokenizer_json(json: &str) -> Result<Vec<Vec<u8>>> {
    let bad = |m: String| Error::Tokenizer(m);
    let root: serde_json::Value = serde_json::from_str(json).map_err(|e| bad(format!("not JSON: {e}")))?;
    let vocab = root
        .get("model")
        .and_then(|m| m.get("vocab"))
        .and_then(|v| v.as_object())
        .ok_or_else(|| bad("no `model.vocab` object (is it a BPE tokenizer?)".into()))?;
    let mut tokens: Vec<Option<Vec<u8>>> = vec![None; vocab.len()];
    for (text, id) in vocab {
        let id = id.as_u64().ok_or_else(|| bad(format!("token {text:?} has id {id}, not a number")))?;
        let slot = usize::try_from(id)
            .ok()
            .and_then(|i| tokens.get_mut(i))
            .ok_or_else(|| bad(format!("token {text:?} has id {id}, outside 0..{}", vocab.len())))?;
        if slot.is_some() {
            return Err(bad(format!("two tokens have id {id}")));
        }
        *slot = Some(token_bytes(text).ok_or_else(|| bad(format!("token {text:?} is not GPT-2 byte-level text")))?);
    }
    // Ids are unique and all below len, so every slot is filled.
    Ok(tokens.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_gpt2_byte_level_text() {
        assert_eq!(token_bytes("Ġthe").unwrap(), b" the");
        assert_eq!(token_bytes("Ċ").unwrap(), b"\n");
        assert_eq!(token_bytes("<|endoftext|>").unwrap(), b"<|endoftext|>");
        // "é" in UTF-8 is c3 a9, spelled "Ã©" by GPT-2.
        assert_eq!(token_bytes("Ã©").unwrap(), "é".as_bytes());
        assert_eq!(token_bytes("Ā").unwrap(), [0u8]);
        assert_eq!(token_bytes("ŃĠĢ").unwrap(), [0xad, 0x20, 0x80]);
        assert_eq!(token_bytes("Ń").unwrap(), [0xad]);
        assert_eq!(token_bytes("Ġ\u{7f}"), None);
        assert_eq!(token_bytes("Ņ"), None);
        // Every byte round-trips through the table.
        let mut seen = [false; 256];
        for c in (33u32..=126).chain(161..=172).chain(174..=255).chain(256..324) {
            let b = unicode_to_byte(char::from_u32(c).unwrap()).unwrap();
            assert!(!seen[usize::from(b)]);
            seen[usize::from(b)] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn reads_vocab_in_id_order() {
        let json = r#"{"model": {"type": "BPE", "vocab": {"b": 1, "Ġa": 0, "<|endoftext|>": 2}}}"#;
        let v = vocab_from_tokenizer_json(json).unwrap();
        assert_eq!(v, vec![b" a".to_vec(), b"b".to_vec(), b"<|endoftext|>".to_vec()]);
        for bad in [
            r#"{"model": {"vocab": {"a": 0, "b": 2}}}"#,
            r#"{"model": {"vocab": {"a": 0, "b": 0}}}"#,
            r#"{"model": {"vocab": {"a": -1}}}"#,
            r#"{"model": {"vocab": {" a": 0}}}"#,
            r#"{"model": {}}"#,
            "not json",
        ] {
            assert!(matches!(vocab_from_tokenizer_json(bad), Err(Error::Tokenizer(_))), "{bad}");
        }
    }
}
