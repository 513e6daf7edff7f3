//! A Piper voice's `.onnx.json`: sample rate, espeak voice, default scales,
//! speakers, and the phoneme → id map.

use rustai_plugin::serde_json;
use std::{collections::HashMap, path::Path};

use rustai_plugin::{PluginError, RString, Voice};
use serde::Deserialize;

const PAD: char = '_';
const BOS: char = '^';
const EOS: char = '$';

#[derive(Deserialize)]
struct RawAudio {
    sample_rate: u32,
    #[serde(default)]
    quality: Option<String>,
}

#[derive(Deserialize)]
struct RawEspeak {
    voice: String,
}

#[derive(Deserialize)]
struct RawInference {
    #[serde(default = "default_noise_scale")]
    noise_scale: f32,
    #[serde(default = "default_length_scale")]
    length_scale: f32,
    #[serde(default = "default_noise_w")]
    noise_w: f32,
}

fn default_noise_scale() -> f32 {
    0.667
}
fn default_length_scale() -> f32 {
    1.0
}
fn default_noise_w() -> f32 {
    0.8
}

#[derive(Deserialize)]
struct RawLanguage {
    code: String,
}

#[derive(Deserialize)]
struct RawConfig {
    audio: RawAudio,
    espeak: Option<RawEspeak>,
    inference: Option<RawInference>,
    #[serde(default)]
    phoneme_type: Option<String>,
    phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default)]
    num_speakers: Option<u32>,
    #[serde(default)]
    speaker_id_map: HashMap<String, i64>,
    #[serde(default)]
    language: Option<RawLanguage>,
    #[serde(default)]
    dataset: Option<String>,
}

/// The parts of a voice config the plugin uses.
#[derive(Debug, Clone)]
pub(crate) struct VoiceConfig {
    pub(crate) sample_rate: u32,
    pub(crate) espeak_voice: String,
    pub(crate) noise_scale: f32,
    pub(crate) length_scale: f32,
    pub(crate) noise_w: f32,
    pub(crate) num_speakers: u32,
    /// Speaker name → id, sorted by id.
    pub(crate) speakers: Vec<(String, i64)>,
    /// Language tag, e.g. `en-US`.
    pub(crate) language: String,
    /// Display name of the single voice of a one-speaker model.
    pub(crate) name: String,
    ids: HashMap<char, Vec<i64>>,
    pad: Vec<i64>,
    bos: Vec<i64>,
    eos: Vec<i64>,
}

/// Phoneme ids for one sentence, and the phonemes the map did not know.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PhonemeIds {
    pub(crate) ids: Vec<i64>,
    /// Unknown phoneme → how many times it was skipped.
    pub(crate) missing: HashMap<char, u32>,
}

impl VoiceConfig {
    /// Read the `.onnx.json` beside `model` (`voice.onnx` → `voice.onnx.json`).
    pub(crate) fn for_model(model: &Path) -> Result<Self, PluginError> {
        let mut json = model.as_os_str().to_owned();
        json.push(".json");
        let json = Path::new(&json);
        let text = std::fs::read_to_string(json).map_err(|e| {
            PluginError::not_found(format!(
                "cannot read the voice config {} ({e}): a Piper voice is a .onnx file with its .onnx.json beside it",
                json.display()
            ))
        })?;
        let stem = model.file_stem().and_then(|s| s.to_str()).unwrap_or("voice");
        Self::parse(&text, stem).map_err(|e| PluginError::invalid_model(format!("{}: {e}", json.display())))
    }

    /// Parse a config's text; `stem` names the voice when the config does not.
    pub(crate) fn parse(text: &str, stem: &str) -> Result<Self, String> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| format!("not a Piper voice config: {e}"))?;
        if let Some(kind) = raw.phoneme_type.as_deref() {
            if kind != "espeak" {
                return Err(format!("phoneme_type {kind:?} is not supported (only \"espeak\")"));
            }
        }
        let espeak_voice = raw.espeak.map(|e| e.voice).ok_or("no espeak.voice: the plugin phonemizes with espeak-ng")?;
        if !(8000..=192_000).contains(&raw.audio.sample_rate) {
            return Err(format!("implausible audio.sample_rate {}", raw.audio.sample_rate));
        }
        let inference = raw.inference.unwrap_or(RawInference {
            noise_scale: default_noise_scale(),
            length_scale: default_length_scale(),
            noise_w: default_noise_w(),
        });
        let mut ids = HashMap::new();
        for (key, value) in raw.phoneme_id_map {
            let mut chars = key.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if !value.is_empty() => {
                    ids.insert(c, value);
                }
                // Multi-character keys never match a single IPA character: ignore them.
                _ => {}
            }
        }
        let special = |c: char| ids.get(&c).cloned().ok_or_else(|| format!("phoneme_id_map has no {c:?} entry"));
        let (pad, bos, eos) = (special(PAD)?, special(BOS)?, special(EOS)?);
        let mut speakers: Vec<(String, i64)> = raw.speaker_id_map.into_iter().collect();
        speakers.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        let num_speakers = raw.num_speakers.unwrap_or(1).max(1).max(speakers.len() as u32);
        let language = raw
            .language
            .map(|l| l.code.replace('_', "-"))
            .unwrap_or_else(|| espeak_voice.clone());
        let name = match (raw.dataset, raw.audio.quality) {
            (Some(d), Some(q)) => format!("{d} ({language}, {q})"),
            (Some(d), None) => format!("{d} ({language})"),
            _ => stem.to_owned(),
        };
        Ok(Self {
            sample_rate: raw.audio.sample_rate,
            espeak_voice,
            noise_scale: inference.noise_scale,
            length_scale: inference.length_scale,
            noise_w: inference.noise_w,
            num_speakers,
            speakers,
            language,
            name,
            ids,
            pad,
            bos,
            eos,
        })
    }

    /// Ids for `phonemes`: BOS, pad, then each known phoneme followed by pad, then EOS.
    pub(crate) fn phoneme_ids(&self, phonemes: &str) -> PhonemeIds {
        let mut out = PhonemeIds::default();
        out.ids.extend_from_slice(&self.bos);
        out.ids.extend_from_slice(&self.pad);
        for c in phonemes.chars() {
            match self.ids.get(&c) {
                Some(id) => {
                    out.ids.extend_from_slice(id);
                    out.ids.extend_from_slice(&self.pad);
                }
                None => *out.missing.entry(c).or_default() += 1,
            }
        }
        out.ids.extend_from_slice(&self.eos);
        out
    }

    /// The voices this model offers: its speakers, or one default voice.
    pub(crate) fn voices(&self) -> Vec<Voice> {
        let voice = |id: &str, name: &str| Voice {
            id: RString::from(id),
            name: RString::from(name),
            language: RString::from(self.language.as_str()),
        };
        if self.speakers.is_empty() {
            vec![voice(DEFAULT_VOICE, &self.name)]
        } else {
            self.speakers.iter().map(|(name, _)| voice(name, name)).collect()
        }
    }

    /// The speaker id for voice `requested` (`None` = the first speaker).
    pub(crate) fn speaker(&self, requested: Option<&str>) -> Result<i64, PluginError> {
        let Some(wanted) = requested.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(self.speakers.first().map_or(0, |s| s.1));
        };
        if self.speakers.is_empty() && wanted == DEFAULT_VOICE {
            return Ok(0);
        }
        if let Some((_, id)) = self.speakers.iter().find(|(name, _)| name == wanted) {
            return Ok(*id);
        }
        match wanted.parse::<i64>() {
            Ok(n) if (0..i64::from(self.num_speakers)).contains(&n) => Ok(n),
            _ => {
                let known: Vec<String> = self.voices().into_iter().map(|v| v.id.into_string()).collect();
                Err(PluginError::not_found(format!("this voice has no speaker {wanted:?}; it offers: {}", known.join(", "))))
            }
        }
    }
}

/// The id of the one voice of a single-speaker model.
pub(crate) const DEFAULT_VOICE: &str = "default";

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{
        "audio": {"sample_rate": 22050, "quality": "medium"},
        "espeak": {"voice": "en-us"},
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "phoneme_id_map": {"_": [0], "^": [1], "$": [2], " ": [3], "a": [14], "b": [15], "ab": [99]},
        "num_speakers": 1,
        "speaker_id_map": {},
        "language": {"code": "en_US"},
        "dataset": "joe"
    }"#;

    #[test]
    fn parses_and_maps_ids() {
        let c = VoiceConfig::parse(CONFIG, "x").expect("parses");
        assert_eq!((c.sample_rate, c.espeak_voice.as_str(), c.language.as_str()), (22050, "en-us", "en-US"));
        let p = c.phoneme_ids("a b?a");
        assert_eq!(p.ids, vec![1, 0, 14, 0, 3, 0, 15, 0, 14, 0, 2]);
        assert_eq!(p.missing.get(&'?'), Some(&1));
    }

    #[test]
    fn one_default_voice() {
        let c = VoiceConfig::parse(CONFIG, "x").expect("parses");
        let v = c.voices();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].id.as_str(), DEFAULT_VOICE);
        assert_eq!(c.speaker(None).ok(), Some(0));
        assert_eq!(c.speaker(Some("default")).ok(), Some(0));
        assert!(c.speaker(Some("nobody")).is_err());
    }

    #[test]
    fn speakers_by_name_and_number() {
        let text = CONFIG.replace(r#""num_speakers": 1"#, r#""num_speakers": 2"#).replace(
            r#""speaker_id_map": {}"#,
            r#""speaker_id_map": {"bob": 1, "amy": 0}"#,
        );
        let c = VoiceConfig::parse(&text, "x").expect("parses");
        assert_eq!(c.voices().iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), ["amy", "bob"]);
        assert_eq!(c.speaker(Some("bob")).ok(), Some(1));
        assert_eq!(c.speaker(Some("1")).ok(), Some(1));
        assert!(c.speaker(Some("2")).is_err());
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(VoiceConfig::parse("{}", "x").is_err());
        assert!(VoiceConfig::parse(&CONFIG.replace(r#""^": [1], "#, ""), "x").is_err());
        assert!(VoiceConfig::parse(&CONFIG.replace(r#""phoneme_type": "espeak""#, r#""phoneme_type": "text""#), "x").is_err());
    }
}
