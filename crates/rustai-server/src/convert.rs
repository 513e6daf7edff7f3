//! Converting API parameters to core types: Ollama `options` and
//! `keep_alive`, OpenAI sampling fields, timestamps, sizes.

use std::time::{Duration, SystemTime};

use rustai_core::{
    abi::{ROption, RString, SamplingExtras, SamplingParams},
    KeepAlive, LoadOptions, ModelEntry,
};
use serde::Deserialize;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// Ollama's `options`: every option Ollama documents, and nothing else (an unknown
/// option is a 400 naming it, never silently dropped).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Options {
    num_ctx: Option<u32>,
    num_predict: Option<i64>,
    temperature: Option<f32>,
    top_k: Option<i32>,
    top_p: Option<f32>,
    min_p: Option<f32>,
    typical_p: Option<f32>,
    repeat_penalty: Option<f32>,
    repeat_last_n: Option<i32>,
    frequency_penalty: Option<f32>,
    presence_penalty: Option<f32>,
    mirostat: Option<u8>,
    mirostat_tau: Option<f32>,
    mirostat_eta: Option<f32>,
    seed: Option<i64>,
    stop: Option<Vec<String>>,
    num_thread: Option<u32>,
    num_gpu: Option<i32>,
    /// Tokens kept when the context shifts; this engine never shifts (it stops at a full
    /// context), so any value is honoured trivially.
    #[serde(rename = "num_keep")]
    _num_keep: Option<i32>,
    /// Deprecated in Ollama and removed from llama.cpp; accepted and without effect there too.
    #[serde(rename = "penalize_newline")]
    _penalize_newline: Option<bool>,
    // Options this engine cannot honour: accepted only at their neutral values.
    tfs_z: Option<f32>,
    num_batch: Option<u32>,
    main_gpu: Option<i32>,
    low_vram: Option<bool>,
    f16_kv: Option<bool>,
    logits_all: Option<bool>,
    vocab_only: Option<bool>,
    use_mmap: Option<bool>,
    use_mlock: Option<bool>,
    numa: Option<bool>,
}

impl Options {
    /// A 400 for an option set to something this engine cannot do.
    fn check_unsupported(&self) -> ApiResult<()> {
        let refuse = |name: &str, why: &str| Err(ApiError::bad_request(format!("option `{name}` is not supported: {why}")));
        if self.tfs_z.is_some_and(|v| v != 1.0) {
            return refuse("tfs_z", "tail-free sampling was removed from llama.cpp (use min_p)");
        }
        if self.num_batch.is_some() {
            return refuse("num_batch", "the batch size is set per model in models.toml (`batch_size`)");
        }
        if self.main_gpu.is_some_and(|v| v != 0) {
            return refuse("main_gpu", "GPU selection is not configurable per request");
        }
        for (name, v, neutral) in [
            ("low_vram", self.low_vram, false),
            ("f16_kv", self.f16_kv, true),
            ("logits_all", self.logits_all, false),
            ("vocab_only", self.vocab_only, false),
            ("use_mmap", self.use_mmap, true),
            ("use_mlock", self.use_mlock, false),
            ("numa", self.numa, false),
        ] {
            if v.is_some_and(|v| v != neutral) {
                return refuse(name, &format!("only `{neutral}` is supported"));
            }
        }
        Ok(())
    }
}

/// Sampling with Ollama's defaults, then the request's options.
pub(crate) fn ollama_sampling(o: &Options) -> ApiResult<(SamplingParams, SamplingExtras)> {
    o.check_unsupported()?;
    let params = SamplingParams {
        temperature: o.temperature.unwrap_or(0.8),
        top_k: o.top_k.unwrap_or(40),
        top_p: o.top_p.unwrap_or(0.9),
        min_p: o.min_p.unwrap_or(0.0),
        repeat_penalty: o.repeat_penalty.unwrap_or(1.1),
        // Ollama: -1 = the whole context (the plugin bounds it by the context).
        repeat_last_n: o.repeat_last_n.unwrap_or(64),
        // Ollama: negative = until the model stops or the context fills.
        max_tokens: o.num_predict.filter(|n| *n > 0).map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        seed: o.seed.filter(|s| *s >= 0).map(|s| s as u64).into(),
        stop: o.stop.iter().flatten().map(|s| RString::from(s.as_str())).collect(),
        ..SamplingParams::default()
    };
    let d = SamplingExtras::default();
    let extras = SamplingExtras {
        frequency_penalty: o.frequency_penalty.unwrap_or(d.frequency_penalty),
        presence_penalty: o.presence_penalty.unwrap_or(d.presence_penalty),
        typical_p: o.typical_p.unwrap_or(d.typical_p),
        mirostat: o.mirostat.unwrap_or(d.mirostat),
        mirostat_tau: o.mirostat_tau.unwrap_or(d.mirostat_tau),
        mirostat_eta: o.mirostat_eta.unwrap_or(d.mirostat_eta),
        ..d
    };
    Ok((params, extras))
}

/// Load options from Ollama's `options` and `keep_alive`.
pub(crate) fn ollama_load(o: &Options, keep_alive: Option<&Value>) -> ApiResult<LoadOptions> {
    use rustai_core::abi::limits::{MAX_CONTEXT, MAX_THREADS};
    if let Some(n) = o.num_ctx.filter(|n| *n > MAX_CONTEXT) {
        return Err(ApiError::bad_request(format!("invalid `num_ctx`: {n} tokens; at most {MAX_CONTEXT} are allowed")));
    }
    if let Some(n) = o.num_thread.filter(|n| *n > MAX_THREADS) {
        return Err(ApiError::bad_request(format!("invalid `num_thread`: {n}; at most {MAX_THREADS} are allowed")));
    }
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

/// The last instant RFC 3339 can write (9999-12-31T23:59:59.999999999Z).
const RFC3339_MAX_SECS: u64 = 253_402_300_799;

/// RFC 3339 time, as Ollama writes it. RFC 3339 has four-digit years from 1970 on
/// here: earlier times (a file dated 1960) are written as the epoch and later ones
/// (a model kept "forever") as the last second of 9999, never a panic.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let max = SystemTime::UNIX_EPOCH + Duration::new(RFC3339_MAX_SECS, 999_999_999);
    let t = t.clamp(SystemTime::UNIX_EPOCH, max);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_never_panics_outside_its_years() {
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(10 * 365 * 86_400);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00.000000000Z");
        let after = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(rfc3339(after), "9999-12-31T23:59:59.999999999Z");
        assert!(rfc3339(SystemTime::now()).starts_with("20"));
    }
}
