//! The piper TTS plugin, loaded with dlopen from plugins-dist/, speaking with the
//! real en_US-joe-medium voice through ONNX Runtime (models/.runtime/) and
//! espeak-ng: audio length and loudness, speed, sentence streaming and early
//! stop, voices, bad input and a corrupt model.

use std::{sync::OnceLock, time::Instant};

use rustai_core::{
    abi::{Category, ErrorKind, LoadModelParams, ROption, RString, SpeakRequest},
    Error, PluginManager, TtsModel,
};
use test_support::{manager_with, model_path, repo_root};

const VOICE: &str = "en_US-joe-medium.onnx";
const FOX: &str = "The quick brown fox jumps over the lazy dog.";
const THREE: &str = "The sun was setting over the hills. A cold wind came down from the north. \
                     We walked home quickly and lit the fire.";

/// Point the plugin at the ONNX Runtime that scripts/fetch-models.sh fetched.
fn use_fetched_onnxruntime() {
    let lib = repo_root().join("models/.runtime/libonnxruntime.so.1.31.1");
    assert!(lib.is_file(), "{} is missing: run scripts/fetch-models.sh", lib.display());
    std::env::set_var("ORT_DYLIB_PATH", &lib);
    std::env::set_var("RUSTAI_ORT_LIB", &lib);
}

/// One plugin manager and one loaded voice for the whole test binary.
fn shared() -> &'static (tempfile::TempDir, PluginManager, TtsModel) {
    static SHARED: OnceLock<(tempfile::TempDir, PluginManager, TtsModel)> = OnceLock::new();
    SHARED.get_or_init(|| {
        use_fetched_onnxruntime();
        let (dir, manager) = manager_with(&["rustai_piper"]);
        let tts = manager.tts("piper").expect("the piper plugin reads piper voices");
        let params = LoadModelParams { threads: 2, ..LoadModelParams::new(model_path(VOICE).to_string_lossy()) };
        let model = tts.load(&params).expect("the joe voice loads");
        (dir, manager, model)
    })
}

fn model() -> &'static TtsModel {
    &shared().2
}

fn speak(text: &str) -> SpeakRequest {
    SpeakRequest { text: RString::from(text), voice: ROption::RNone, speed: 1.0, noise_scale: ROption::RNone }
}

fn kind(err: &Error) -> Option<ErrorKind> {
    match err {
        Error::Plugin { source, .. } => Some(source.kind),
        _ => None,
    }
}

fn rms(pcm: &[f32]) -> f32 {
    (pcm.iter().map(|x| x * x).sum::<f32>() / pcm.len().max(1) as f32).sqrt()
}

#[test]
fn plugin_announces_tts_for_piper_voices() {
    let plugin = shared().1.get("piper").expect("the piper plugin is loaded");
    let info = plugin.info();
    assert_eq!(info.category, Category::Tts);
    assert!(info.capabilities.formats.iter().any(|f| f == "piper"));
}

#[test]
fn the_fox_sentence_is_plausible_speech() {
    let started = Instant::now();
    let (info, pcm) = model().synthesize(&speak(FOX)).expect("synthesis");
    let seconds = pcm.len() as f64 / f64::from(info.sample_rate);
    eprintln!("{seconds:.2} s of audio in {:.2} s, rms {:.3}", started.elapsed().as_secs_f64(), rms(&pcm));
    assert_eq!((info.sample_rate, info.channels), (22050, 1));
    assert_eq!(info.samples, pcm.len() as u64);
    assert!((1.5..=5.0).contains(&seconds), "{seconds:.2} s of audio for one short sentence");
    assert!(pcm.iter().all(|x| x.is_finite() && x.abs() <= 1.0), "samples are finite and in [-1, 1]");
    assert!(rms(&pcm) > 0.02, "not silent: rms {}", rms(&pcm));

    let wav = rustai_core::audio::encode_wav(&pcm, info.sample_rate).expect("WAV");
    assert!(wav.starts_with(b"RIFF") && wav.len() == 44 + 2 * pcm.len(), "{} bytes", wav.len());
    let out = std::env::temp_dir().join("rustai-piper-fox.wav");
    std::fs::write(&out, wav).expect("write WAV");
    eprintln!("wrote {}", out.display());
}

#[test]
fn speed_two_is_clearly_shorter() {
    let normal = model().synthesize(&speak(FOX)).expect("synthesis").1.len();
    let fast = model().synthesize(&SpeakRequest { speed: 2.0, ..speak(FOX) }).expect("synthesis").1.len();
    eprintln!("speed 1.0: {normal} samples, speed 2.0: {fast} samples");
    assert!((fast as f64) < 0.7 * normal as f64, "speed 2.0 gave {fast} samples vs {normal}");
    assert!((fast as f64) > 0.3 * normal as f64, "speed 2.0 gave {fast} samples vs {normal}");
}

#[test]
fn noise_scale_override_is_accepted() {
    let req = SpeakRequest { noise_scale: ROption::RSome(0.0), ..speak("Hello there.") };
    let (_, pcm) = model().synthesize(&req).expect("synthesis");
    assert!(rms(&pcm) > 0.02);
    let bad = SpeakRequest { noise_scale: ROption::RSome(-1.0), ..speak("Hello there.") };
    assert_eq!(kind(&model().synthesize(&bad).unwrap_err()), Some(ErrorKind::InvalidInput));
}

#[test]
fn three_sentences_stream_in_chunks_and_stop_early() {
    let mut chunks = Vec::new();
    let started = Instant::now();
    let info = model()
        .synthesize_with(&speak(THREE), |chunk| {
            chunks.push(chunk.len());
            true
        })
        .expect("synthesis");
    let full_time = started.elapsed();
    assert!(chunks.len() >= 3, "one chunk per sentence at least: {chunks:?}");
    assert_eq!(info.samples, chunks.iter().sum::<usize>() as u64);

    let mut calls = 0;
    let started = Instant::now();
    let stopped = model()
        .synthesize_with(&speak(THREE), |_| {
            calls += 1;
            false
        })
        .expect("stopping is not an error");
    let stop_time = started.elapsed();
    eprintln!("chunks {chunks:?}; full {full_time:?}, stopped after the first chunk {stop_time:?}");
    assert_eq!(calls, 1, "no audio after the sink said stop");
    assert!(stopped.samples > 0 && stopped.samples < info.samples, "{} of {}", stopped.samples, info.samples);
}

#[test]
fn one_voice_is_listed_and_usable() {
    let voices = model().voices().expect("voices");
    assert_eq!(voices.len(), 1, "{voices:?}");
    assert_eq!(voices[0].language.as_str(), "en-US");
    let req = SpeakRequest { voice: ROption::RSome(voices[0].id.clone()), ..speak("Yes.") };
    assert!(!model().synthesize(&req).expect("synthesis").1.is_empty());
    let unknown = SpeakRequest { voice: ROption::RSome(RString::from("nobody")), ..speak("Yes.") };
    assert_eq!(kind(&model().synthesize(&unknown).unwrap_err()), Some(ErrorKind::NotFound));
}

#[test]
fn empty_text_and_bad_speed_are_invalid_input() {
    for text in ["", "   \n"] {
        let err = model().synthesize(&speak(text)).unwrap_err();
        assert_eq!(kind(&err), Some(ErrorKind::InvalidInput), "{err}");
    }
    for speed in [-1.0, f32::NAN, 100.0] {
        let err = model().synthesize(&SpeakRequest { speed, ..speak(FOX) }).unwrap_err();
        assert_eq!(kind(&err), Some(ErrorKind::InvalidInput), "speed {speed}: {err}");
    }
}

#[test]
fn corrupt_model_is_invalid_and_the_plugin_keeps_working() {
    let tts = shared().1.tts("piper").expect("tts");
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("broken.onnx");
    let garbage: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&bad, garbage).expect("write");
    let json = model_path("en_US-joe-medium.onnx.json");
    std::fs::copy(&json, dir.path().join("broken.onnx.json")).expect("copy json");
    let err = tts.load(&LoadModelParams::new(bad.to_string_lossy())).unwrap_err();
    assert_eq!(kind(&err), Some(ErrorKind::InvalidModel), "{err}");

    let lonely = dir.path().join("lonely.onnx");
    std::fs::copy(model_path(VOICE), &lonely).expect("copy voice");
    let err = tts.load(&LoadModelParams::new(lonely.to_string_lossy())).unwrap_err();
    assert_eq!(kind(&err), Some(ErrorKind::NotFound), "a voice without its .onnx.json: {err}");

    let (_, pcm) = model().synthesize(&speak("Still working.")).expect("the plugin still works");
    assert!(rms(&pcm) > 0.02);
}

/// Whisper hears what Piper says (needs the whisper plugin and ggml-tiny.en.bin:
/// `cargo test --release -p tests --test piper_plugin -- --ignored`).
#[test]
#[ignore = "needs the whisper plugin and models/ggml-tiny.en.bin"]
fn whisper_understands_the_fox() {
    use rustai_core::abi::TranscribeRequest;
    let (info, pcm) = model().synthesize(&speak(FOX)).expect("synthesis");
    let (_dir, manager) = manager_with(&["rustai_whisper"]);
    let stt = manager.stt("whisper").expect("the whisper plugin");
    let whisper = stt.load(&LoadModelParams::new(model_path("ggml-tiny.en.bin").to_string_lossy())).expect("whisper loads");
    let pcm16 = rustai_core::audio::resample(&pcm, info.sample_rate, 16_000).expect("resample");
    let request = TranscribeRequest {
        pcm: pcm16.into(),
        sample_rate: 16_000,
        language: ROption::RNone,
        translate: false,
        threads: 2,
        initial_prompt: ROption::RNone,
        temperature: 0.0,
    };
    let text = whisper.transcribe(&request).expect("transcription").text.to_lowercase();
    eprintln!("whisper heard: {text:?}");
    for word in ["quick", "brown", "fox", "lazy", "dog"] {
        assert!(text.contains(word), "{word:?} missing from {text:?}");
    }
}

#[test]
fn concurrent_requests_all_succeed() {
    let texts = ["First voice here.", "Second, a little longer, voice here.", "Third."];
    let lengths: Vec<usize> = std::thread::scope(|s| {
        let handles: Vec<_> =
            texts.iter().map(|t| s.spawn(move || model().synthesize(&speak(t)).expect("synthesis").1.len())).collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert!(lengths.iter().all(|&n| n > 22050 / 4), "{lengths:?}");
}
