//! Text-to-speech benchmark (prints a table; not a test): the piper plugin with
//! the real en_US-joe-medium voice, loaded with dlopen from plugins-dist/.
//!
//! Real-time factor = seconds of compute per second of speech (lower is
//! better; below 1 is faster than real time), for one short sentence and a
//! longer paragraph, median of several runs after a warm-up; plus the time to
//! the first audio chunk (one sentence), which is what a listener waits for.
//!
//! ```text
//! bash scripts/fetch-models.sh   # the voice and models/.runtime/libonnxruntime.so.1.31.1
//! cargo bench -p tests --bench tts
//! ```

use std::time::Instant;

use rustai_core::abi::{LoadModelParams, ROption, RString, SpeakRequest};
use test_support::{manager_with, model_path, repo_root};

const SENTENCE: &str = "The quick brown fox jumps over the lazy dog.";
const PARAGRAPH: &str = "The old lighthouse stood at the edge of the cliff, its white paint peeling in the salt wind. \
    For nearly a century it had guided fishing boats safely into the harbour below. \
    Every evening the keeper climbed the narrow spiral stairs, trimmed the wick, and polished the great lens until it shone. \
    When the storms came in from the west, he stayed awake all night, watching the beam sweep across the black water. \
    Nobody in the village could remember a single ship lost on those rocks while he kept the light.";

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let lib = repo_root().join("models/.runtime/libonnxruntime.so.1.31.1");
    assert!(lib.is_file(), "{} is missing: run scripts/fetch-models.sh", lib.display());
    std::env::set_var("ORT_DYLIB_PATH", &lib);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;

    let (_dir, manager) = manager_with(&["rustai_piper"]);
    let tts = manager.tts("piper").expect("the piper plugin");
    let started = Instant::now();
    let params = LoadModelParams { threads, ..LoadModelParams::new(model_path("en_US-joe-medium.onnx").to_string_lossy()) };
    let model = tts.load(&params).expect("the voice loads");
    let load_s = started.elapsed().as_secs_f64();

    println!("piper plugin, en_US-joe-medium (22050 Hz), {threads} threads; voice load (incl. ONNX Runtime start) {load_s:.2} s");
    println!();
    println!("| text | chars | sentences | audio (s) | compute (s) | RTF | first chunk (s) | runs |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, text, runs) in [("sentence", SENTENCE, 7), ("paragraph", PARAGRAPH, 3)] {
        let request = SpeakRequest { text: RString::from(text), voice: ROption::RNone, speed: 1.0, noise_scale: ROption::RNone };
        model.synthesize(&request).expect("warm-up");
        let (mut compute, mut first, mut rtf, mut audio, mut chunks) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0);
        for _ in 0..runs {
            let started = Instant::now();
            let mut first_at = None;
            let mut n = 0;
            let info = model
                .synthesize_with(&request, |_| {
                    first_at.get_or_insert_with(|| started.elapsed().as_secs_f64());
                    n += 1;
                    true
                })
                .expect("synthesis");
            let secs = started.elapsed().as_secs_f64();
            let audio_s = info.samples as f64 / f64::from(info.sample_rate);
            compute.push(secs);
            first.push(first_at.unwrap_or(secs));
            rtf.push(secs / audio_s);
            audio.push(audio_s);
            chunks = n;
        }
        println!(
            "| {name} | {} | {chunks} | {:.2} | {:.3} | {:.3} | {:.3} | {runs} |",
            text.chars().count(),
            median(audio),
            median(compute),
            median(rtf),
            median(first)
        );
    }
}
