//! Every header reader (`rustai-formats`) and the WAV decoder (`rustai_core::audio`) on
//! arbitrary bytes: an error or a value, never a panic, and never an allocation out of
//! proportion to the input (a corrupt count, length or rate must not become a
//! multi-gigabyte buffer). A counting allocator records the largest single allocation
//! while each reader runs.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicUsize, Ordering},
};

use proptest::prelude::*;
use rustai_core::{
    audio::{decode_wav, decode_wav_max},
    formats::{ct2::Ct2Model, gguf::GgufHeader, onnx::OnnxHeader, safetensors::SafetensorsHeader, whisper::WhisperHeader},
};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout, same contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same pointer and layout the system allocator gave out.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The most any reader may allocate at once for a file of at most 64 KiB.
const BOUND: usize = 16 << 20;

/// Bytes that start like one of the formats, then anything.
fn file_bytes() -> impl Strategy<Value = Vec<u8>> {
    let prefixes: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"GGUF\x03\x00\x00\x00".to_vec(),
        b"GGUF\x02\x00\x00\x00".to_vec(),
        0x6767_6d6cu32.to_le_bytes().to_vec(),
        // safetensors: an 8-byte little-endian JSON length, then JSON.
        [&20u64.to_le_bytes()[..], b"{\"a\":{\"dtype\":\"F32\",".as_slice()].concat(),
        // CTranslate2: binary version 6, then a spec name.
        [&6u32.to_le_bytes()[..], &7u16.to_le_bytes()[..], b"whisper".as_slice()].concat(),
        // ONNX: field 1 (ir_version), a varint.
        vec![0x08, 0x07, 0x12],
    ];
    (prop::sample::select(prefixes), prop::collection::vec(any::<u8>(), 0..4096)).prop_map(|(mut p, tail)| {
        p.extend(tail);
        p
    })
}

fn with_file(bytes: &[u8], name: &str, read: impl FnOnce(&std::path::Path)) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    LARGEST.store(0, Ordering::Relaxed);
    read(&path);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest <= BOUND, "{name}: one allocation of {largest} bytes for a {}-byte file", bytes.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn gguf(bytes in file_bytes()) {
        with_file(&bytes, "m.gguf", |p| { let _ = GgufHeader::read(p); });
    }

    #[test]
    fn safetensors(bytes in file_bytes()) {
        with_file(&bytes, "m.safetensors", |p| { let _ = SafetensorsHeader::read(p); });
        LARGEST.store(0, Ordering::Relaxed);
        let _ = SafetensorsHeader::parse(&bytes);
        prop_assert!(LARGEST.load(Ordering::Relaxed) <= BOUND);
    }

    #[test]
    fn onnx(bytes in file_bytes()) {
        with_file(&bytes, "m.onnx", |p| { let _ = OnnxHeader::read(p); });
    }

    #[test]
    fn whisper(bytes in file_bytes()) {
        let _ = rustai_core::formats::whisper::is_whisper_ggml(&bytes);
        with_file(&bytes, "ggml-m.bin", |p| { let _ = WhisperHeader::read(p); });
    }

    #[test]
    fn ct2(bytes in file_bytes()) {
        LARGEST.store(0, Ordering::Relaxed);
        let _ = Ct2Model::from_bytes(&bytes);
        prop_assert!(LARGEST.load(Ordering::Relaxed) <= BOUND);
    }
}

/// A RIFF/WAVE header with the given fields, then `data`.
fn wav(format: u16, channels: u16, rate: u32, bits: u16, data_len: u32, data: &[u8]) -> Vec<u8> {
    let block = channels.wrapping_mul(bits / 8);
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&format.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&rate.wrapping_mul(u32::from(block)).to_le_bytes());
    v.extend_from_slice(&block.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    v.extend_from_slice(data);
    v
}

/// Output of at most 16 kHz for at most the seconds the input can hold, plus slack.
fn audio_bound(input: usize) -> usize {
    (64 << 20).max(input * 64)
}

fn check_wav(bytes: &[u8]) {
    LARGEST.store(0, Ordering::Relaxed);
    let _ = decode_wav_max(bytes, 600.0);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest <= audio_bound(bytes.len()), "one allocation of {largest} bytes for {} input bytes", bytes.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check_wav(&bytes);
        let _ = decode_wav(&bytes);
    }

    #[test]
    fn arbitrary_headers(
        format in prop::sample::select(vec![1u16, 3, 2, 0xfffe, 0]),
        channels in 0u16..70,
        rate in prop::sample::select(vec![0u32, 1, 1000, 8000, 16000, 44100, 96000, 384000, 1_000_000, u32::MAX]),
        bits in prop::sample::select(vec![0u16, 4, 8, 16, 24, 32, 64]),
        data_len in any::<u32>(),
        data in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        check_wav(&wav(format, channels, rate, bits, data_len, &data));
    }
}
