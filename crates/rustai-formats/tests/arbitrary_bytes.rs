//! Every header reader on arbitrary bytes: an error or a value, never a panic,
//! and never an allocation out of proportion to the file (a corrupt count or
//! length must not become a multi-gigabyte `Vec`). A counting allocator records
//! the largest single allocation while each reader runs.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicUsize, Ordering},
};

use proptest::prelude::*;
use rustai_formats::{ct2::Ct2Model, gguf::GgufHeader, onnx::OnnxHeader, safetensors::SafetensorsHeader, whisper::WhisperHeader};

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
        let _ = rustai_formats::whisper::is_whisper_ggml(&bytes);
        with_file(&bytes, "ggml-m.bin", |p| { let _ = WhisperHeader::read(p); });
    }

    #[test]
    fn ct2(bytes in file_bytes()) {
        LARGEST.store(0, Ordering::Relaxed);
        let _ = Ct2Model::from_bytes(&bytes);
        prop_assert!(LARGEST.load(Ordering::Relaxed) <= BOUND);
    }
}
