//! OpenAI's audio endpoints: `/v1/audio/transcriptions` (multipart WAV upload,
//! json / text / verbose_json / srt / vtt) and `/v1/audio/speech` (WAV or raw
//! 16-bit PCM). OpenAI's own model names (`whisper-1`, `tts-1`) and voice
//! names (`alloy`, ...) map to the installed model's defaults.
//!
//! Both go through the model's admission lane like text generation, and both
//! are bounded before any work: seconds of audio (from the WAV header) and
//! characters of text. Speech stops when the client goes away (the handler is
//! dropped, which cancels the synthesis between chunks).

use axum::{
    body::Bytes,
    extract::{Multipart, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use rustai_core::{
    abi::{ROption, RString, SpeakRequest, TranscribeRequest, Transcription},
    CancelToken, LoadOptions, Task, TtsModel,
};
use serde::Deserialize;
use serde_json::json;

use crate::{
    error::{ApiError, ApiResult},
    extract::Body,
    state::AppState,
};

/// Longest text `/v1/audio/speech` accepts, in characters (OpenAI's limit too).
pub(crate) const MAX_SPEECH_CHARS: usize = 4096;
/// The response formats each endpoint can produce.
const TRANSCRIPTION_FORMATS: &[&str] = &["json", "text", "verbose_json", "srt", "vtt"];
/// OpenAI's voice names, which mean "the model's default voice" here.
const OPENAI_VOICES: &[&str] = &["alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"];

/// Cancels a synthesis when the request is dropped (the client went away).
struct CancelOnDrop(CancelToken);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("worker failed: {e}")).openai()
}

/// The model named, or the installed default for `task` when the name is OpenAI's or absent.
fn model_for(state: &AppState, name: Option<&str>, task: Task) -> ApiResult<String> {
    if let Some(n) = name.filter(|n| !n.is_empty()) {
        match state.engine.resolve(n, task) {
            Ok(e) => return Ok(e.id),
            Err(rustai_core::Error::UnknownModel { .. }) => {} // e.g. "whisper-1": use the default
            Err(e) => return Err(ApiError::from(e).openai()),
        }
    }
    state.engine.default_model(task).map(|e| e.id).ok_or_else(|| {
        let what = if task == Task::Stt { "speech to text (an SttPlugin such as whisper, and a whisper model)" } else { "text to speech (a TtsPlugin such as piper, and a voice)" };
        ApiError::missing_family(what).openai()
    })
}

fn timestamp(ms: u64, comma: bool) -> String {
    let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if comma { format!("{h:02}:{m:02}:{s:02},{milli:03}") } else { format!("{h:02}:{m:02}:{s:02}.{milli:03}") }
}

fn render(t: &Transcription, format: &str, duration: f64) -> ApiResult<Response> {
    let text = t.text.trim().to_owned();
    Ok(match format {
        "json" => Json(json!({ "text": text })).into_response(),
        "text" => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        "verbose_json" => Json(json!({
            "task": "transcribe", "language": t.language.as_str(), "duration": duration, "text": text,
            "segments": t.segments.iter().enumerate().map(|(i, s)| json!({
                "id": i, "start": s.start_ms as f64 / 1e3, "end": s.end_ms as f64 / 1e3, "text": s.text.as_str(),
            })).collect::<Vec<_>>(),
        }))
        .into_response(),
        "srt" | "vtt" => {
            let srt = format == "srt";
            let mut out = if srt { String::new() } else { "WEBVTT\n\n".to_owned() };
            for (i, s) in t.segments.iter().enumerate() {
                if srt {
                    out += &format!("{}\n", i + 1);
                }
                out += &format!("{} --> {}\n{}\n\n", timestamp(s.start_ms, srt), timestamp(s.end_ms, srt), s.text.trim());
            }
            ([(header::CONTENT_TYPE, if srt { "application/x-subrip" } else { "text/vtt" })], out).into_response()
        }
        other => return Err(ApiError::bad_request(format!("response_format `{other}`: use json, text, verbose_json, srt or vtt")).openai()),
    })
}

pub(crate) async fn transcriptions(State(state): State<AppState>, mut form: Multipart) -> ApiResult<Response> {
    let bad = |m: String| ApiError::bad_request(m).openai();
    let (mut file, mut model, mut language, mut prompt, mut format, mut temperature) = (None, None, None, None, "json".to_owned(), 0.0f32);
    while let Some(field) = form.next_field().await.map_err(|e| bad(format!("malformed multipart body: {e}")))? {
        let name = field.name().unwrap_or_default().to_owned();
        let data: Bytes = field.bytes().await.map_err(|e| bad(format!("reading field `{name}`: {e}")))?;
        let text = || String::from_utf8_lossy(&data).trim().to_owned();
        match name.as_str() {
            "file" => file = Some(data),
            "model" => model = Some(text()),
            "language" => language = Some(text()).filter(|l| !l.is_empty()),
            "prompt" => prompt = Some(text()).filter(|p| !p.is_empty()),
            "response_format" => format = text(),
            "temperature" => temperature = text().parse().map_err(|_| bad("temperature must be a number".into()))?,
            _ => {}
        }
    }
    let file = file.ok_or_else(|| bad("the `file` field (a WAV file) is required".into()))?;
    // Everything the request asks for is checked before any audio is decoded.
    if !TRANSCRIPTION_FORMATS.contains(&format.as_str()) {
        return Err(bad(format!("response_format `{format}`: use json, text, verbose_json, srt or vtt")));
    }
    if !temperature.is_finite() || !(0.0..=1.0).contains(&temperature) {
        return Err(bad(format!("invalid `temperature`: {temperature} is outside 0..=1")));
    }
    let id = model_for(&state, model.as_deref(), Task::Stt)?;
    let _ticket = state.admission.enter(&id).await.map_err(ApiError::openai)?;
    let engine = state.engine.clone();
    let max_secs = state.config.max_audio_secs;
    let (t, duration) = tokio::task::spawn_blocking(move || -> rustai_core::Result<(Transcription, f64)> {
        let pcm = rustai_core::audio::decode_wav_max(&file, max_secs)?;
        drop(file);
        let request = TranscribeRequest {
            pcm: pcm.samples.clone().into(),
            sample_rate: pcm.sample_rate,
            language: language.map(RString::from).into(),
            translate: false,
            threads: 0,
            initial_prompt: prompt.map(RString::from).into(),
            temperature,
        };
        Ok((engine.transcribe(&id, &request)?.output, pcm.duration_secs()))
    })
    .await
    .map_err(internal)?
    .map_err(|e| ApiError::from(e).openai())?;
    render(&t, &format, duration)
}

#[derive(Debug, Deserialize)]
pub(crate) struct SpeechBody {
    #[serde(default)]
    model: Option<String>,
    input: String,
    #[serde(default)]
    voice: Option<String>,
    #[serde(default)]
    response_format: Option<String>,
    #[serde(default)]
    speed: Option<f32>,
}

pub(crate) async fn speech(State(state): State<AppState>, Body(body): Body<SpeechBody>) -> ApiResult<Response> {
    let bad = |m: String| ApiError::bad_request(m).openai();
    let format = body.response_format.clone().unwrap_or_else(|| "wav".into());
    if format != "wav" && format != "pcm" {
        return Err(bad(format!("response_format `{format}` is not supported: use wav or pcm")));
    }
    let chars = body.input.chars().count();
    if chars > MAX_SPEECH_CHARS {
        return Err(bad(format!("`input` has {chars} characters; at most {MAX_SPEECH_CHARS} are accepted")));
    }
    if !body.input.chars().any(char::is_alphanumeric) {
        return Err(bad("`input` has nothing to speak (no letters or digits)".into()));
    }
    let speed = body.speed.unwrap_or(1.0);
    if !speed.is_finite() || !(0.25..=4.0).contains(&speed) {
        return Err(bad(format!("invalid `speed`: {speed} is outside 0.25..=4")));
    }
    let id = model_for(&state, body.model.as_deref(), Task::Tts)?;
    let _ticket = state.admission.enter(&id).await.map_err(ApiError::openai)?;
    let engine = state.engine.clone();
    let cancel = CancelToken::new();
    let _cancel_on_drop = CancelOnDrop(cancel.clone());
    let (rate, pcm) = tokio::task::spawn_blocking(move || -> rustai_core::Result<(u32, Vec<f32>)> {
        let served = engine.with_model(&id, Task::Tts, &LoadOptions::default(), |m: &TtsModel| {
            let voices = m.voices()?;
            let voice = match body.voice.as_deref() {
                None | Some("") => None,
                Some(v) if voices.iter().any(|x| x.id.as_str() == v) => Some(v.to_owned()),
                // OpenAI's voice names do not exist here: they mean the model's default voice.
                Some(v) if OPENAI_VOICES.contains(&v) => None,
                Some(v) => {
                    let known: Vec<&str> = voices.iter().map(|x| x.id.as_str()).collect();
                    return Err(rustai_core::Error::InvalidParameter(rustai_core::abi::InvalidParam {
                        field: "voice",
                        message: format!("unknown voice `{v}` (this model has: {})", known.join(", ")),
                    }));
                }
            };
            let request = SpeakRequest { text: body.input.into(), voice: voice.map(RString::from).into(), speed, noise_scale: ROption::RNone };
            m.synthesize_until(&request, &cancel)
        })?;
        let (info, pcm) = served.output;
        Ok((info.sample_rate, pcm))
    })
    .await
    .map_err(internal)?
    .map_err(|e| ApiError::from(e).openai())?;
    let rate_header = rate.to_string();
    if format == "pcm" {
        let bytes: Vec<u8> = pcm.iter().flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes()).collect();
        return Ok(([(header::CONTENT_TYPE, "audio/pcm".to_owned()), (header::HeaderName::from_static("x-sample-rate"), rate_header)], bytes).into_response());
    }
    let wav = rustai_core::audio::encode_wav(&pcm, rate).map_err(|e| ApiError::from(e).openai())?;
    Ok(([(header::CONTENT_TYPE, "audio/wav".to_owned()), (header::HeaderName::from_static("x-sample-rate"), rate_header)], wav).into_response())
}

/// OpenAI's `/v1/audio/*` routes.
pub(crate) fn routes() -> axum::Router<AppState> {
    use axum::routing::post;
    axum::Router::new().route("/v1/audio/transcriptions", post(transcriptions)).route("/v1/audio/speech", post(speech))
}
