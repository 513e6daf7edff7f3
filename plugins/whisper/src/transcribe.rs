//! One transcription: request checks, whisper.cpp parameters, and the result.
//!
//! Every check that can be made before calling whisper.cpp is made here, so a
//! bad request is an [`ErrorKind::InvalidInput`](rustai_plugin::ErrorKind) error
//! naming the problem rather than a native failure: the audio (16 kHz, mono,
//! not empty, finite samples within ±[`MAX_AMPLITUDE`]), the language (known to
//! whisper, and English for an English-only model), the temperature, and NUL
//! bytes in strings.

use std::ffi::c_int;

use rustai_plugin::{PluginError, ROption, RString, RVec, Segment, TranscribeRequest, Transcription};
use whisper_rs::{FullParams, SamplingStrategy, WhisperState};

use crate::model::LoadedModel;

/// The only sample rate whisper.cpp accepts.
pub const SAMPLE_RATE: u32 = 16_000;

/// Largest sample magnitude accepted. PCM is nominally in [-1, 1]; a little
/// overshoot is fine, but far larger values are unscaled integers or garbage (and
/// overflow whisper.cpp's mel spectrogram into NaN, which then decodes for minutes).
pub const MAX_AMPLITUDE: f32 = 4.0;

/// Highest sampling temperature accepted (whisper's fallback schedule ends there).
pub const MAX_TEMPERATURE: f32 = 1.0;

/// Most threads one request may ask for.
const MAX_THREADS: u32 = 256;

/// Most prompt tokens passed on (whisper.cpp itself uses at most half its text context, 224).
const MAX_PROMPT_TOKENS: usize = 1024;

/// Candidates sampled per fallback step when the temperature is above 0 (whisper.cpp's default).
const BEST_OF: c_int = 5;

/// The language to decode in, after checking the request against the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Language {
    /// A known language code, e.g. `en`.
    Fixed(&'static str),
    /// Let whisper detect it (multilingual models only).
    Detect,
}

/// Check `request` against `model`; return the language to use.
pub(crate) fn check(model: &LoadedModel, request: &TranscribeRequest) -> Result<Language, PluginError> {
    check_audio(request.pcm.as_slice(), request.sample_rate)?;
    let t = request.temperature;
    if !t.is_finite() || !(0.0..=MAX_TEMPERATURE).contains(&t) {
        return Err(PluginError::invalid_input(format!(
            "temperature must be between 0 (greedy) and {MAX_TEMPERATURE}, not {t}"
        )));
    }
    if request.threads > MAX_THREADS {
        return Err(PluginError::invalid_input(format!("threads is {}; at most {MAX_THREADS}", request.threads)));
    }
    if let ROption::RSome(prompt) = &request.initial_prompt {
        if prompt.contains('\0') {
            return Err(PluginError::invalid_input("the initial prompt contains a NUL character"));
        }
    }
    language(model, &request.language)
}

/// Check PCM: not empty, 16 kHz, finite, and short enough for whisper.cpp's `int` count.
pub(crate) fn check_audio(pcm: &[f32], sample_rate: u32) -> Result<(), PluginError> {
    if sample_rate != SAMPLE_RATE {
        return Err(PluginError::invalid_input(format!(
            "audio is {sample_rate} Hz; whisper needs {SAMPLE_RATE} Hz mono (resample first, e.g. with rustai_core::audio::decode_wav)"
        )));
    }
    if pcm.is_empty() {
        return Err(PluginError::invalid_input("no audio: the PCM buffer is empty"));
    }
    if c_int::try_from(pcm.len()).is_err() {
        return Err(PluginError::invalid_input(format!(
            "{} samples is more than whisper.cpp can take at once ({}); split the audio",
            pcm.len(),
            c_int::MAX
        )));
    }
    if let Some(i) = pcm.iter().position(|s| !s.is_finite() || s.abs() > MAX_AMPLITUDE) {
        let hint = if pcm[i].is_finite() { " (integer PCM must be scaled, e.g. 16-bit divided by 32768)" } else { "" };
        return Err(PluginError::invalid_input(format!(
            "sample {i} (at {:.3} s) is {}: PCM must be finite numbers in [-1, 1]{hint}",
            i as f64 / f64::from(SAMPLE_RATE),
            pcm[i]
        )));
    }
    Ok(())
}

/// Resolve the requested language for `model`.
fn language(model: &LoadedModel, requested: &ROption<RString>) -> Result<Language, PluginError> {
    let wanted = match requested {
        ROption::RSome(l) => l.trim().to_ascii_lowercase(),
        ROption::RNone => String::new(),
    };
    if wanted.contains('\0') {
        return Err(PluginError::invalid_input("the language contains a NUL character"));
    }
    let detect = wanted.is_empty() || wanted == "auto";
    if !model.multilingual {
        return match wanted.as_str() {
            _ if detect => Ok(Language::Fixed("en")),
            "en" | "english" => Ok(Language::Fixed("en")),
            other => Err(PluginError::invalid_input(format!(
                "{} is an English-only whisper {} model: it cannot transcribe language `{other}` (use a multilingual model, one without `.en`)",
                model.path, model.model_type
            ))),
        };
    }
    if detect {
        return Ok(Language::Detect);
    }
    whisper_rs::get_lang_id(&wanted)
        .and_then(whisper_rs::get_lang_str)
        .map(Language::Fixed)
        .ok_or_else(|| {
            PluginError::invalid_input(format!("unknown language `{wanted}`: give an ISO 639-1 code such as `en`, `de` or `fr`"))
        })
}

/// Run whisper on the checked request.
pub(crate) fn run(model: &LoadedModel, request: &TranscribeRequest, language: &Language) -> Result<Transcription, PluginError> {
    let mut state = model.take_state()?;
    let result = decode(model, &mut state, request, language);
    // A state that failed may hold half-written buffers: only reuse good ones.
    if result.is_ok() {
        model.put_state(state);
    }
    result
}

fn decode(
    model: &LoadedModel,
    state: &mut WhisperState,
    request: &TranscribeRequest,
    language: &Language,
) -> Result<Transcription, PluginError> {
    // whisper-rs leaks the C strings it makes for `set_initial_prompt` and `set_language`:
    // pass the prompt as tokens (borrowed), and a language only where the default won't do.
    let mut prompt = match &request.initial_prompt {
        ROption::RSome(p) if !p.is_empty() => model.tokenize(p.as_str())?,
        _ => Vec::new(),
    };
    if prompt.len() > MAX_PROMPT_TOKENS {
        prompt.drain(..prompt.len() - MAX_PROMPT_TOKENS);
    }
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: BEST_OF });
    let threads = match request.threads {
        0 => model.default_threads,
        n => n,
    };
    params.set_n_threads(c_int::try_from(threads.max(1)).unwrap_or(1));
    match language {
        // whisper.cpp's default language is a static "en".
        Language::Fixed("en") => {}
        Language::Fixed(code) => params.set_language(Some(code)),
        Language::Detect => params.set_language(None),
    }
    // An English-only model always writes English: translating is a no-op there.
    params.set_translate(request.translate && model.multilingual);
    params.set_temperature(request.temperature);
    if !prompt.is_empty() {
        params.set_tokens(&prompt);
    }
    // Reused states must not carry one request's text into the next.
    params.set_no_context(true);
    params.set_print_special(false);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_timestamps(false);

    state.full(params, request.pcm.as_slice()).map_err(|e| {
        PluginError::internal(format!(
            "whisper.cpp failed on {} s of audio ({e:?}); set {}=1 to see its log",
            request.pcm.len() / SAMPLE_RATE as usize,
            crate::model::LOG_ENV
        ))
    })?;

    let mut segments = RVec::new();
    let mut text = String::new();
    for segment in state.as_iter() {
        let piece = segment.to_str_lossy().map_err(|e| PluginError::internal(format!("whisper.cpp segment text: {e:?}")))?;
        let piece = piece.trim();
        // Timestamps are in centiseconds.
        let start_ms = u64::try_from(segment.start_timestamp()).unwrap_or(0).saturating_mul(10);
        let end_ms = u64::try_from(segment.end_timestamp()).unwrap_or(0).saturating_mul(10).max(start_ms);
        if piece.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(piece);
        segments.push(Segment { start_ms, end_ms, text: RString::from(piece) });
    }
    let language = match language {
        Language::Fixed(code) => *code,
        Language::Detect => whisper_rs::get_lang_str(state.full_lang_id_from_state()).unwrap_or("unknown"),
    };
    Ok(Transcription { text: RString::from(text), language: RString::from(language), segments })
}
