//! A loaded Piper voice (an ONNX Runtime session plus its config) and
//! synthesis: text → espeak-ng phonemes → ids → audio, sentence by sentence.
//!
//! Each sentence is one ONNX run; its audio is peak-normalised (as Piper does),
//! followed by a short pause unless it is the last, and sent to the sink at once:
//! the first audio arrives after one sentence, whatever the length of the text,
//! and a sink that returns `false` stops the work before the next sentence.

use std::{collections::HashMap, path::Path, sync::Mutex};

use ort::{
    session::{Session, SessionInputValue},
    value::Tensor,
};
use rustai_plugin::{AudioSinkMut, LoadModelParams, PluginError, ROption, RSlice, SpeakRequest, SpeechInfo};

use crate::{espeak, runtime, voice::VoiceConfig};

/// Pause after each sentence but the last, in seconds (Piper's default).
const SENTENCE_SILENCE_S: f32 = 0.2;
/// Accepted speed factors.
const SPEED_RANGE: std::ops::RangeInclusive<f32> = 0.1..=10.0;

/// A voice model in memory.
pub(crate) struct LoadedVoice {
    pub(crate) config: VoiceConfig,
    session: Mutex<Session>,
    has_sid: bool,
    output: String,
}

fn internal(what: &str, e: impl std::fmt::Display) -> PluginError {
    PluginError::internal(format!("{what}: {e}"))
}

impl LoadedVoice {
    /// Read the config, start ONNX Runtime if needed, and open the model.
    pub(crate) fn load(params: &LoadModelParams) -> Result<Self, PluginError> {
        let path = Path::new(params.path.as_str());
        if !path.is_file() {
            return Err(PluginError::not_found(format!("voice model {} does not exist", path.display())));
        }
        let config = VoiceConfig::for_model(path)?;
        let env = runtime::environment(path)?;
        let threads = match params.threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n as usize,
        };
        let builder_err = |e: ort::Error<ort::session::builder::SessionBuilder>| internal("configuring ONNX Runtime", e);
        let mut builder = Session::builder(env)
            .map_err(|e| internal("creating an ONNX Runtime session", e))?
            .with_intra_threads(threads)
            .map_err(builder_err)?
            .with_intra_op_spinning(false)
            .map_err(builder_err)?;
        let session = builder.commit_from_file(path).map_err(|e| {
            PluginError::invalid_model(format!("ONNX Runtime cannot load {} as a Piper voice: {e}", path.display()))
        })?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        for needed in ["input", "input_lengths", "scales"] {
            if !names.contains(&needed) {
                return Err(PluginError::invalid_model(format!(
                    "{} is not a Piper voice: it has no `{needed}` input (inputs: {})",
                    path.display(),
                    names.join(", ")
                )));
            }
        }
        let has_sid = names.contains(&"sid");
        let output = match session.outputs().first() {
            Some(o) => o.name().to_owned(),
            None => return Err(PluginError::invalid_model(format!("{} has no outputs", path.display()))),
        };
        Ok(Self { config, session: Mutex::new(session), has_sid, output })
    }

    /// One ONNX run: phoneme ids → raw audio.
    fn infer(&self, ids: Vec<i64>, scales: [f32; 3], speaker: i64) -> Result<Vec<f32>, PluginError> {
        let n = ids.len();
        let tensor_err = |e: ort::Error| internal("building an input tensor", e);
        let mut inputs: Vec<(&str, SessionInputValue<'static>)> = vec![
            ("input", Tensor::from_array(([1usize, n], ids)).map_err(tensor_err)?.into()),
            ("input_lengths", Tensor::from_array(([1usize], vec![n as i64])).map_err(tensor_err)?.into()),
            ("scales", Tensor::from_array(([3usize], scales.to_vec())).map_err(tensor_err)?.into()),
        ];
        if self.has_sid {
            inputs.push(("sid", Tensor::from_array(([1usize], vec![speaker])).map_err(tensor_err)?.into()));
        }
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session.run(inputs).map_err(|e| internal("ONNX Runtime failed to synthesize", e))?;
        let value = outputs
            .get(&self.output)
            .ok_or_else(|| PluginError::internal(format!("the model produced no `{}` output", self.output)))?;
        let (_, audio) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| PluginError::invalid_model(format!("the model's output is not f32 audio: {e}")))?;
        Ok(audio.to_vec())
    }

    /// Synthesize `request`, streaming one chunk per sentence to `sink`.
    pub(crate) fn synthesize(&self, request: &SpeakRequest, mut sink: AudioSinkMut<'_>) -> Result<SpeechInfo, PluginError> {
        let text = request.text.as_str();
        if text.trim().is_empty() {
            return Err(PluginError::invalid_input("there is no text to speak"));
        }
        let speed = if request.speed == 0.0 { 1.0 } else { request.speed };
        if !SPEED_RANGE.contains(&speed) {
            return Err(PluginError::invalid_input(format!(
                "speed {} is outside 0.1..=10 (1.0 = normal, 0 = default)",
                request.speed
            )));
        }
        let noise_scale = match request.noise_scale {
            ROption::RSome(n) if n.is_finite() && (0.0..=2.0).contains(&n) => n,
            ROption::RSome(n) => return Err(PluginError::invalid_input(format!("noise_scale {n} is outside 0..=2"))),
            ROption::RNone => self.config.noise_scale,
        };
        let speaker = self.config.speaker(request.voice.as_ref().map(|v| v.as_str()).into_option())?;
        let scales = [noise_scale, self.config.length_scale / speed, self.config.noise_w];

        let sentences = espeak::phonemize(&self.config.espeak_voice, text)?;
        let mut missing: HashMap<char, u32> = HashMap::new();
        let mut batches = Vec::with_capacity(sentences.len());
        for sentence in &sentences {
            let p = self.config.phoneme_ids(sentence);
            for (c, k) in p.missing {
                *missing.entry(c).or_default() += k;
            }
            // BOS, pad and EOS alone: nothing this voice can say.
            if p.ids.len() > 3 {
                batches.push(p.ids);
            }
        }
        let info = |samples: u64| SpeechInfo { sample_rate: self.config.sample_rate, channels: 1, samples };
        if batches.is_empty() {
            if missing.is_empty() {
                return Ok(info(0)); // only punctuation or symbols espeak does not pronounce
            }
            let mut list: Vec<String> = missing.iter().map(|(c, k)| format!("{c:?}×{k}")).collect();
            list.sort();
            return Err(PluginError::invalid_input(format!(
                "none of the phonemes of this text are known to the voice (unknown: {})",
                list.join(", ")
            )));
        }
        let pause = (self.config.sample_rate as f32 * SENTENCE_SILENCE_S) as usize;
        let last = batches.len() - 1;
        let mut sent = 0u64;
        for (i, ids) in batches.into_iter().enumerate() {
            let mut audio = self.infer(ids, scales, speaker)?;
            normalize(&mut audio);
            if i < last {
                audio.resize(audio.len() + pause, 0.0);
            }
            sent += audio.len() as u64;
            if !sink.on_audio(RSlice::from_slice(&audio)) {
                break;
            }
        }
        Ok(info(sent))
    }
}

/// Replace non-finite samples by silence and scale the peak to 1.0 (Piper's
/// normalisation); near-silence is left alone.
fn normalize(audio: &mut [f32]) {
    let mut peak = 0.0f32;
    for s in audio.iter_mut() {
        if !s.is_finite() {
            *s = 0.0;
        }
        peak = peak.max(s.abs());
    }
    if peak > 1e-4 {
        let k = 1.0 / peak;
        for s in audio.iter_mut() {
            *s = (*s * k).clamp(-1.0, 1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{normalize, LoadedVoice};
    use rustai_plugin::{ErrorKind, LoadModelParams};

    /// Run alone, where no ONNX Runtime can be found:
    /// `env -u ORT_DYLIB_PATH -u RUSTAI_ORT_LIB HOME=/nonexistent cargo test -p piper -- --ignored`
    #[test]
    #[ignore = "needs a process in which no libonnxruntime can be found"]
    fn without_onnxruntime_loading_is_not_ready() {
        let dir = std::env::temp_dir().join(format!("piper-no-ort-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let voice = dir.join("v.onnx");
        std::fs::write(&voice, b"not reached").expect("write");
        let config = r#"{"audio": {"sample_rate": 22050}, "espeak": {"voice": "en-us"},
            "phoneme_id_map": {"_": [0], "^": [1], "$": [2]}}"#;
        std::fs::write(dir.join("v.onnx.json"), config).expect("write");
        let err = LoadedVoice::load(&LoadModelParams::new(voice.to_string_lossy())).err().expect("no runtime, no voice");
        eprintln!("{err}");
        assert_eq!(err.kind, ErrorKind::NotReady, "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn normalises_peak_and_cleans_non_finite() {
        let mut a = [0.25, -0.5, f32::NAN, f32::INFINITY, 0.1];
        normalize(&mut a);
        assert_eq!(a, [0.5, -1.0, 0.0, 0.0, 0.2]);
        let mut quiet = [1e-6, -1e-6];
        normalize(&mut quiet);
        assert_eq!(quiet, [1e-6, -1e-6]);
    }
}
