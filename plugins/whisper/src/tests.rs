//! In-process tests of the plugin (no dlopen) with the real `ggml-tiny.en.bin`.

use std::{path::PathBuf, sync::OnceLock};

use rustai_plugin::{ErrorKind, LoadModelParams, ModelHandle, PluginInstance, ROption, RString, TranscribeRequest};

use crate::WhisperPlugin;

fn model_file() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/ggml-tiny.en.bin");
    assert!(p.is_file(), "{} is missing: run scripts/fetch-models.sh and scripts/convert-whisper.sh", p.display());
    p
}

fn instance() -> PluginInstance {
    rustai_plugin::export::instantiate::<WhisperPlugin>().into_result().expect("the plugin starts")
}

/// One plugin instance with the tiny English model loaded, shared by the tests.
fn loaded() -> &'static (PluginInstance, ModelHandle) {
    static LOADED: OnceLock<(PluginInstance, ModelHandle)> = OnceLock::new();
    LOADED.get_or_init(|| {
        let inst = instance();
        let stt = inst.stt.as_ref().into_option().expect("stt family");
        let params = LoadModelParams { threads: 2, ..LoadModelParams::new(model_file().to_string_lossy()) };
        let handle = stt.load_model(&params).into_result().expect("ggml-tiny.en.bin loads");
        (inst, handle)
    })
}

fn request(pcm: Vec<f32>) -> TranscribeRequest {
    TranscribeRequest {
        pcm: pcm.into(),
        sample_rate: 16_000,
        language: ROption::RNone,
        translate: false,
        threads: 0,
        initial_prompt: ROption::RNone,
        temperature: 0.0,
    }
}

fn transcribe_err(req: &TranscribeRequest) -> rustai_plugin::PluginError {
    let (inst, handle) = loaded();
    let stt = inst.stt.as_ref().into_option().expect("stt family");
    stt.transcribe(*handle, req).into_result().expect_err("the request is refused")
}

#[test]
fn info_names_the_family_and_format() {
    let inst = instance();
    let info = inst.plugin.info();
    assert_eq!(info.id.as_str(), "whisper");
    assert_eq!(info.category, rustai_plugin::Category::Stt);
    assert!(info.capabilities.formats.iter().any(|f| f.as_str() == crate::FORMAT));
    assert!(inst.stt.is_some() && inst.llm.is_none());
}

#[test]
#[cfg(target_arch = "x86_64")]
fn build_is_portable() {
    // whisper-rs-sys builds with -march=native unless GGML_NATIVE=OFF: on a machine with
    // AVX-512 that shows here (see Cargo.toml for the build environment to use).
    let info = crate::system_info();
    eprintln!("whisper.cpp system info: {info}");
    assert!(info.contains("AVX2 = 1"), "whisper.cpp was built without AVX2: {info}");
    assert!(
        !info.contains("AVX512 = 1"),
        "whisper.cpp was built with AVX-512 (-march=native?): the GGML_* flags in .cargo/config.toml were not in force when whisper-rs-sys was built: `cargo clean -p whisper-rs-sys` and rebuild: {info}"
    );
}

#[test]
fn missing_file_is_not_found() {
    let inst = instance();
    let stt = inst.stt.as_ref().into_option().expect("stt family");
    let e = stt.load_model(&LoadModelParams::new("/nonexistent/ggml-tiny.bin")).into_result().unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
}

#[test]
fn truncated_and_garbage_models_are_invalid_and_the_plugin_keeps_working() {
    let bytes = std::fs::read(model_file()).expect("read model");
    let dir = std::env::temp_dir().join(format!("rustai-whisper-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cases: [(&str, &[u8]); 4] = [
        ("truncated-half.bin", &bytes[..bytes.len() / 2]),
        ("truncated-end.bin", &bytes[..bytes.len() - 1]),
        ("header-only.bin", &bytes[..200]),
        ("garbage.bin", b"this is not a whisper model at all"),
    ];
    let inst = instance();
    let stt = inst.stt.as_ref().into_option().expect("stt family");
    for (name, data) in cases {
        let path = dir.join(name);
        std::fs::write(&path, data).expect("write");
        let e = stt.load_model(&LoadModelParams::new(path.to_string_lossy())).into_result().unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidModel, "{name}: {e}");
        assert!(e.message.contains(name), "{name}: the message names the file: {e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    let handle = stt.load_model(&LoadModelParams::new(model_file().to_string_lossy())).into_result().expect("real model loads");
    stt.unload_model(handle).into_result().expect("unload");
    assert_eq!(stt.unload_model(handle).into_result().unwrap_err().kind, ErrorKind::NotFound);
}

#[test]
fn bad_audio_is_invalid_input() {
    let cases = [
        ("empty", request(Vec::new())),
        ("44.1 kHz", TranscribeRequest { sample_rate: 44_100, ..request(vec![0.0; 44_100]) }),
        ("0 Hz", TranscribeRequest { sample_rate: 0, ..request(vec![0.0; 100]) }),
        ("NaN", request([vec![0.0; 1000], vec![f32::NAN], vec![0.0; 1000]].concat())),
        ("infinity", request(vec![f32::INFINITY; 10])),
        // Overflows whisper.cpp's mel spectrogram (NaN), which then decodes "!!!!…" for minutes.
        ("huge", request(vec![1.0e30; 16_000])),
        ("unscaled 16-bit", request(vec![0.0, 12_000.0, -3.0])),
    ];
    for (what, req) in cases {
        let e = transcribe_err(&req);
        assert_eq!(e.kind, ErrorKind::InvalidInput, "{what}: {e}");
    }
    assert!(transcribe_err(&request([vec![0.0; 16_000], vec![f32::NAN]].concat())).message.contains("sample 16000"));
}

#[test]
fn bad_options_are_invalid_input() {
    let pcm = vec![0.0; 16_000];
    let de = TranscribeRequest { language: ROption::RSome(RString::from("de")), ..request(pcm.clone()) };
    let e = transcribe_err(&de);
    assert_eq!(e.kind, ErrorKind::InvalidInput);
    assert!(e.message.contains("English-only"), "{e}");
    for t in [-0.1, 1.5, f32::NAN] {
        let e = transcribe_err(&TranscribeRequest { temperature: t, ..request(pcm.clone()) });
        assert_eq!(e.kind, ErrorKind::InvalidInput, "temperature {t}: {e}");
    }
    let nul = TranscribeRequest { initial_prompt: ROption::RSome(RString::from("a\0b")), ..request(pcm.clone()) };
    assert_eq!(transcribe_err(&nul).kind, ErrorKind::InvalidInput);
    let nul = TranscribeRequest { language: ROption::RSome(RString::from("e\0n")), ..request(pcm.clone()) };
    assert_eq!(transcribe_err(&nul).kind, ErrorKind::InvalidInput);
    assert_eq!(transcribe_err(&TranscribeRequest { threads: 100_000, ..request(pcm) }).kind, ErrorKind::InvalidInput);
}

#[test]
fn unknown_handle_is_not_found() {
    let (inst, _) = loaded();
    let stt = inst.stt.as_ref().into_option().expect("stt family");
    let e = stt.transcribe(ModelHandle(9_999), &request(vec![0.0; 16_000])).into_result().unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
}

#[test]
fn silence_and_tiny_clips_do_not_crash_and_english_options_are_accepted() {
    let (inst, handle) = loaded();
    let stt = inst.stt.as_ref().into_option().expect("stt family");
    let options = [
        request(vec![0.0; 16_000 * 2]),
        request(vec![0.0; 10]),
        TranscribeRequest {
            language: ROption::RSome(RString::from("EN")),
            translate: true,
            threads: 1,
            initial_prompt: ROption::RSome(RString::from("Quiet.")),
            temperature: 0.4,
            ..request(vec![0.0; 16_000])
        },
        TranscribeRequest { language: ROption::RSome(RString::from("auto")), ..request(vec![0.0; 8_000]) },
        request((0..16_000).map(|i| if i % 7 < 3 { 1.0 } else { -1.0 }).collect()),
        request((0..16_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 16) as f32 / 32_768.0 - 1.0).collect()),
    ];
    for req in options {
        let t = stt.transcribe(*handle, &req).into_result().expect("transcribes");
        assert_eq!(t.language.as_str(), "en");
        for s in t.segments.iter() {
            assert!(s.start_ms <= s.end_ms, "{s:?}");
        }
    }
}

#[test]
fn concurrent_requests_on_one_model() {
    let (inst, handle) = loaded();
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| {
                let stt = inst.stt.as_ref().into_option().expect("stt family");
                let req = TranscribeRequest { threads: 1, ..request(vec![0.0; 16_000]) };
                stt.transcribe(*handle, &req).into_result().expect("transcribes");
            });
        }
    });
}
