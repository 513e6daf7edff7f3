//! Speech benchmark (prints a table; not a test): the whisper plugin's real-time
//! factor (seconds of compute per second of audio; below 1 is faster than real
//! time) with `ggml-tiny.en.bin` on clips spoken by espeak-ng, for 1 and 2
//! threads; the median of 3 runs after a warm-up. Also the time
//! `rustai_core::audio::decode_wav` takes to decode and resample each clip.
//!
//! ```text
//! cargo build --release -p whisper   # and install it into plugins-dist/
//! cargo bench -p tests --bench speech
//! ```

use std::{process::Command, time::Instant};

use rustai_core::{
    abi::{LoadModelParams, ROption, TranscribeRequest},
    audio::decode_wav,
};
use test_support::{manager_with, model_path};

const CLIPS: [(&str, &str); 2] = [
    ("fox", "The quick brown fox jumps over the lazy dog."),
    (
        "paragraph",
        "Speech recognition turns spoken words into text. This engine loads its models as plugins, \
         checks every file before a native library reads it, and runs entirely on the local machine. \
         The quick brown fox jumps over the lazy dog.",
    ),
];

const RUNS: usize = 3;

fn espeak_wav(text: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("clip.wav");
    let status = Command::new("espeak-ng").arg("-w").arg(&out).arg(text).status().expect("espeak-ng runs (apt-get install espeak-ng)");
    assert!(status.success(), "espeak-ng failed");
    std::fs::read(&out).expect("read clip")
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

use test_support::word_error_rate as wer;

fn main() {
    let (_dir, manager) = manager_with(&["rustai_whisper"]);
    let stt = manager.stt("whisper").expect("the whisper plugin is loaded");
    let model = stt.load(&LoadModelParams::new(model_path("ggml-tiny.en.bin").to_string_lossy())).expect("model loads");

    println!("whisper ggml-tiny.en.bin, {} cores available", std::thread::available_parallelism().map_or(0, |n| n.get()));
    println!("| clip | audio (s) | decode+resample (ms) | threads | compute (s, median of {RUNS}) | RTF | WER |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut heard = Vec::new();
    for (name, text) in CLIPS {
        let wav = espeak_wav(text);
        let started = Instant::now();
        let pcm = decode_wav(&wav).expect("decodes");
        let decode_ms = started.elapsed().as_secs_f64() * 1e3;
        let audio_s = pcm.duration_secs();
        for threads in [1u32, 2] {
            let request = TranscribeRequest {
                pcm: pcm.samples.clone().into(),
                sample_rate: pcm.sample_rate,
                language: ROption::RNone,
                translate: false,
                threads,
                initial_prompt: ROption::RNone,
                temperature: 0.0,
            };
            let warm = model.transcribe(&request).expect("transcribes");
            let times: Vec<f64> = (0..RUNS)
                .map(|_| {
                    let t = Instant::now();
                    model.transcribe(&request).expect("transcribes");
                    t.elapsed().as_secs_f64()
                })
                .collect();
            let compute = median(times);
            println!(
                "| {name} | {audio_s:.2} | {decode_ms:.1} | {threads} | {compute:.3} | {:.3} | {:.0} % |",
                compute / audio_s,
                wer(text, &warm.text) * 100.0
            );
            if threads == 1 {
                heard.push(format!("{name}: {}", warm.text));
            }
        }
    }
    println!();
    for line in heard {
        println!("{line}");
    }
}
