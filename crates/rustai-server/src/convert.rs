//! Converting API parameters to core types: Ollama `options` and
//! `keep_alive`, OpenAI sampling fields, timestamps, sizes.

use std::time::{Duration, SystemTime};

use rustai_core::{
    abi::{ROption, RString, SamplingParams},
    KeepAlive, LoadOptions, ModelEntry,
};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// Ollama's `options` (the subset that maps onto the engine).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Options {
    num_ctx: Option<u32>,
    num_predict: Option<i64>,
    temperature: Option<f32>,
    top_k: Option<i32>,
    top_p: Option<f32>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    repeat_last_n: Option<i32>,
    seed: Option<i64>,
    stop: Option<Vec<String>>,
    num_thread: Option<u32>,
    num_gpu: Option<i32>,
}

/// Sampling with Ollama's defaults, then the request's options.
pub(crate) fn ollama_sampling(o: &Options) -> SamplingParams {
    SamplingParams {
        temperature: o.temperature.unwrap_or(0.8),
        top_k: o.top_k.unwrap_or(40),
        top_p: o.top_p.unwrap_or(0.9),
        min_p: o.min_p.unwrap_or(0.0),
        repeat_penalty: o.repeat_penalty.unwrap_or(1.1),
        repeat_last_n: o.repeat_last_n.unwrap_or(64),
        // Ollama: negative = until the model stops or the context fills.
        max_tokens: o.num_predict.filter(|n| *n > 0).map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        seed: o.seed.filter(|s| *s >= 0).map(|s| s as u64).into(),
        stop: o.stop.iter().flatten().map(|s| RString::from(s.as_str())).collect(),
        ..SamplingParams::default()
    }
}

/// Load options from Ollama's `options` and `keep_alive`.
pub(crate) fn ollama_load(o: &Options, keep_alive: Option<&Value>) -> ApiResult<LoadOptions> {
    Ok(LoadOptions {
        context_length: o.num_ctx.unwrap_or(0),
        threads: o.num_thread.unwrap_or(0),
        gpu_layers: o.num_gpu.unwrap_or(0),
        keep_alive: keep_alive.filter(|v| !v.is_null()).map(parse_keep_alive).transpose()?,
        plugin: None,
    })
}

/// `keep_alive`: seconds as a number, or a duration string (`"5m"`, `"1h30m"`, `"0"`, `"-1"`).
pub(crate) fn parse_keep_alive(v: &Value) -> ApiResult<KeepAlive> {
    let bad = || ApiError::bad_request(format!("invalid keep_alive {v}: use seconds or a duration like \"5m\""));
    let secs = |x: f64| if x.is_finite() { Ok(KeepAlive::from_secs_f64(x)) } else { Err(bad()) };
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(bad).and_then(secs),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(x) = s.parse::<f64>() {
                return secs(x);
            }
            if s.starts_with('-') {
                return Ok(KeepAlive::Forever);
            }
            humantime::parse_duration(s).map(|d| KeepAlive::from_secs_f64(d.as_secs_f64())).map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

/// `format`: `"json"` or a JSON schema object.
pub(crate) fn json_format(format: Option<&Value>, sampling: &mut SamplingParams) -> ApiResult<()> {
    match format {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) if s == "json" => sampling.json_schema = ROption::RSome(RString::from(r#"{"type":"object"}"#)),
        Some(schema @ Value::Object(_)) => sampling.json_schema = ROption::RSome(RString::from(schema.to_string())),
        Some(other) => return Err(ApiError::bad_request(format!("invalid format {other}: use \"json\" or a JSON schema"))),
    }
    Ok(())
}

/// RFC 3339 time, as Ollama writes it.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// Seconds since the epoch.
pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Nanoseconds, as Ollama reports durations.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Ollama's `details` object for a model.
pub(crate) fn details(m: &ModelEntry) -> Value {
    let family = m.meta.architecture.clone().unwrap_or_default();
    serde_json::json!({
        "parent_model": "",
        "format": m.format.as_str(),
        "family": family,
        "families": [family],
        "parameter_size": m.meta.parameters.map(parameter_size).unwrap_or_default(),
        "quantization_level": m.meta.quantization.clone().unwrap_or_default(),
    })
}

fn parameter_size(n: u64) -> String {
    match n {
        0..1_000_000_000 => format!("{:.0}M", n as f64 / 1e6),
        _ => format!("{:.1}B", n as f64 / 1e9),
    }
}
