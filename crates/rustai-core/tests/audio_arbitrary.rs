//! `audio::decode_wav` on arbitrary bytes and on WAV headers with arbitrary
//! fields: an error or PCM, never a panic, and never an allocation out of
//! proportion to the input (a header that lies about its length or rate must
//! not become a huge buffer).

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicUsize, Ordering},
};

use proptest::prelude::*;
use rustai_core::audio::{decode_wav, decode_wav_max};

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
fn bound(input: usize) -> usize {
    (64 << 20).max(input * 64)
}

fn check(bytes: &[u8]) {
    LARGEST.store(0, Ordering::Relaxed);
    let _ = decode_wav_max(bytes, 600.0);
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest <= bound(bytes.len()), "one allocation of {largest} bytes for {} input bytes", bytes.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        check(&bytes);
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
        check(&wav(format, channels, rate, bits, data_len, &data));
    }
}
