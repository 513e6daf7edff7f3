//! Text to IPA phonemes through espeak-ng's C library (`libespeak-ng.so.1`).
//!
//! Only the three functions Piper needs are declared: `espeak_Initialize`
//! (synchronous mode, nothing is ever played), `espeak_SetVoiceByName` and
//! `espeak_TextToPhonemes` in IPA mode, called repeatedly on one text pointer:
//! each call translates one clause (up to `.`, `,`, `?`, `;`, ...) and advances
//! the pointer. espeak-ng keeps global state and is not thread-safe, so every
//! call holds this copy's [`Mutex`] and the process-wide [`ProcessLock`] (a hot
//! reload puts a second copy of this plugin, with its own statics, in the process).
//!
//! `espeak_TextToPhonemes` drops the punctuation that ended a clause; we look
//! at the text it consumed to put it back (as Piper does) and to know where
//! sentences end, so that long text can be synthesized sentence by sentence.

use std::{
    ffi::{c_char, c_int, c_void, CStr, CString},
    sync::Mutex,
};

use rustai_plugin::{ErrorKind, PluginError};

use crate::process_lock::ProcessLock;
use unicode_normalization::UnicodeNormalization;

/// `AUDIO_OUTPUT_SYNCHRONOUS`: no audio device is opened.
const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
/// `espeakINITIALIZE_DONT_EXIT`: report a missing data folder instead of calling `exit()`.
const ESPEAK_INITIALIZE_DONT_EXIT: c_int = 0x8000;
/// `espeakCHARS_UTF8`.
const ESPEAK_CHARS_UTF8: c_int = 1;
/// `espeakPHONEMES_IPA`: phonemes as IPA characters (UTF-8).
const ESPEAK_PHONEMES_IPA: c_int = 0x02;
/// `EE_OK`.
const EE_OK: c_int = 0;
/// Phonemes after which a sentence is cut at the next clause boundary.
const MAX_SENTENCE_PHONEMES: usize = 400;

#[link(name = "espeak-ng")]
extern "C" {
    fn espeak_Initialize(output: c_int, buflength: c_int, path: *const c_char, options: c_int) -> c_int;
    fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
    fn espeak_TextToPhonemes(textptr: *mut *const c_void, textmode: c_int, phonememode: c_int) -> *const c_char;
}

/// The library's global state: initialised or not, and the voice selected last.
struct Espeak {
    initialised: bool,
    voice: Option<String>,
}

static ESPEAK: Mutex<Espeak> = Mutex::new(Espeak { initialised: false, voice: None });

/// One sentence of phonemes (IPA characters, punctuation put back).
pub(crate) type Sentence = String;

/// How a clause ended, judged from the text espeak consumed for it: the
/// punctuation to put back, and whether a sentence ends there.
///
/// espeak reads one character ahead to find a clause's end, so the pointer it
/// hands back sits past the first character of the next clause: unless the text
/// is finished, the word fragment after the last space belongs to the next clause.
/// A blank line ends a sentence too.
fn clause_end(consumed: &str, at_end: bool) -> (Option<char>, bool) {
    let own = if at_end {
        consumed
    } else {
        match consumed.rfind(char::is_whitespace) {
            Some(i) => &consumed[..i + consumed[i..].chars().next().map_or(0, char::len_utf8)],
            None => consumed,
        }
    };
    let text = own.trim_end();
    let blank_line = own[text.len()..].matches('\n').count() >= 2;
    let closers: &[char] = &['"', '\'', ')', ']', '}', '»', '”', '’'];
    match text.trim_end_matches(closers).chars().last() {
        Some('.' | '…') => (Some('.'), true),
        Some(c @ ('!' | '?')) => (Some(c), true),
        Some(c @ (',' | ';' | ':')) => (Some(c), blank_line),
        _ if blank_line => (Some('.'), true),
        _ => (None, false),
    }
}

/// Remove espeak's language-switch markers such as `(fr)` and `(en)`.
fn strip_language_flags(phonemes: &str) -> String {
    let mut out = String::with_capacity(phonemes.len());
    let mut rest = phonemes;
    while let Some(open) = rest.find('(') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(')') {
            Some(close) if after[..close].chars().all(|c| c.is_ascii_alphanumeric() || c == '-') => {
                rest = &after[close + 1..];
            }
            _ => {
                out.push('(');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn backend_error(message: String) -> PluginError {
    PluginError::new(ErrorKind::Backend, message)
}

impl Espeak {
    fn ensure_voice(&mut self, voice: &str) -> Result<(), PluginError> {
        if !self.initialised {
            // SAFETY: plain C call; a null path means espeak-ng's default data folder
            // (or $ESPEAK_DATA_PATH). DONT_EXIT makes a failure a return value.
            let rate = unsafe {
                espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, std::ptr::null(), ESPEAK_INITIALIZE_DONT_EXIT)
            };
            if rate <= 0 {
                return Err(backend_error(format!(
                    "espeak-ng failed to initialise (code {rate}): is its data installed? \
                     (Debian: apt-get install espeak-ng; or set ESPEAK_DATA_PATH to the folder holding espeak-ng-data)"
                )));
            }
            self.initialised = true;
        }
        if self.voice.as_deref() != Some(voice) {
            let name = CString::new(voice)
                .map_err(|_| PluginError::invalid_model(format!("espeak voice name {voice:?} contains a NUL byte")))?;
            // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
            let rc = unsafe { espeak_SetVoiceByName(name.as_ptr()) };
            if rc != EE_OK {
                self.voice = None;
                return Err(PluginError::invalid_model(format!(
                    "espeak-ng has no voice {voice:?} (error {rc}): the voice's .onnx.json names a language espeak-ng does not know"
                )));
            }
            self.voice = Some(voice.to_owned());
        }
        Ok(())
    }
}

/// Translate `text` to IPA phonemes with espeak voice `voice`, split into sentences.
///
/// Clause punctuation is kept (`,` `;` `:` and the sentence's `.` `?` `!`), clauses
/// of one sentence are joined by a space, and the phonemes are NFD-normalised
/// (each `char` is then one Piper phoneme). Sentences without phonemes are dropped.
pub(crate) fn phonemize(voice: &str, text: &str) -> Result<Vec<Sentence>, PluginError> {
    // espeak reads up to a NUL: interior NULs would silently cut the text.
    let cleaned: String = text.chars().map(|c| if c == '\0' { ' ' } else { c }).collect();
    let c_text = CString::new(cleaned).map_err(|_| PluginError::internal("text still holds a NUL byte"))?;
    let bytes = c_text.as_bytes();

    let mut sentences = Vec::new();
    let mut current = String::new();
    let mut espeak = ESPEAK.lock().unwrap_or_else(|p| p.into_inner());
    let _process = ProcessLock::acquire("espeak");
    // Another copy of this plugin may have selected another voice since our last call.
    espeak.voice = None;
    espeak.ensure_voice(voice)?;

    let start = c_text.as_ptr().cast::<c_void>();
    let mut pos: *const c_void = start;
    while !pos.is_null() {
        let before = (pos as usize).saturating_sub(start as usize);
        // SAFETY: `pos` points into `c_text` (NUL-terminated, alive for the loop);
        // espeak advances it within the buffer or sets it to null at the end.
        // The returned buffer is espeak's own and stays valid until the next call,
        // which cannot happen while we hold the lock.
        let raw = unsafe { espeak_TextToPhonemes(&mut pos, ESPEAK_CHARS_UTF8, ESPEAK_PHONEMES_IPA) };
        let after = if pos.is_null() { bytes.len() } else { (pos as usize).saturating_sub(start as usize).min(bytes.len()) };
        let consumed = if after > before { String::from_utf8_lossy(&bytes[before..after]) } else { "".into() };
        let phonemes = if raw.is_null() {
            String::new()
        } else {
            // SAFETY: espeak returns a NUL-terminated string (see above).
            unsafe { CStr::from_ptr(raw) }.to_string_lossy().into_owned()
        };
        let phonemes = strip_language_flags(phonemes.trim());
        let (punct, sentence_end) = clause_end(&consumed, pos.is_null());
        if !phonemes.is_empty() {
            if !current.is_empty() && !current.ends_with(' ') {
                current.push(' ');
            }
            current.extend(phonemes.nfd());
            if let Some(p) = punct {
                current.push(p);
            }
        }
        // A very long run without sentence punctuation is cut at a clause boundary,
        // so one ONNX run (and the wait for the first audio) stays bounded.
        let too_long = current.chars().count() >= MAX_SENTENCE_PHONEMES;
        if (sentence_end || too_long) && !current.trim().is_empty() {
            sentences.push(std::mem::take(&mut current).trim().to_owned());
        }
        if after <= before && !pos.is_null() {
            // No progress: never loop forever on an espeak quirk.
            break;
        }
    }
    if !current.trim().is_empty() {
        sentences.push(current.trim().to_owned());
    }
    Ok(sentences)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clause_endings() {
        // espeak's pointer is one character into the next clause.
        assert_eq!(clause_end("Hello, w", false), (Some(','), false));
        assert_eq!(clause_end("orld. H", false), (Some('.'), true));
        assert_eq!(clause_end("ow are you? F", false), (Some('?'), true));
        assert_eq!(clause_end("he said \"hi!\" T", false), (Some('!'), true));
        assert_eq!(clause_end("Title\n\nB", false), (Some('.'), true));
        assert_eq!(clause_end("ine", true), (None, false));
        assert_eq!(clause_end("the end.", true), (Some('.'), true));
    }

    #[test]
    fn language_flags_are_removed() {
        assert_eq!(strip_language_flags("(fr)bɔ̃ʒuːɹ(en) hɛ"), "bɔ̃ʒuːɹ hɛ");
        assert_eq!(strip_language_flags("a(b c"), "a(b c");
    }

    #[test]
    fn english_sentences_and_punctuation() {
        let s = phonemize("en-us", "Hello, world. How are you? Fine").expect("espeak-ng works");
        assert_eq!(s.len(), 3, "{s:?}");
        assert!(s[0].contains(',') && s[0].ends_with('.'), "{s:?}");
        assert!(s[1].ends_with('?'), "{s:?}");
        assert!(s[0].contains('h') && s[0].contains('w'), "{s:?}");
    }

    #[test]
    fn unknown_voice_is_an_error_and_espeak_still_works() {
        assert!(phonemize("no-such-voice-xyz", "hi").is_err());
        assert_eq!(phonemize("en-us", "Hi.").map(|s| s.len()).ok(), Some(1));
    }

    #[test]
    fn endless_sentences_are_cut_at_clause_boundaries() {
        let text = "and then we walked on, ".repeat(60);
        let s = phonemize("en-us", &text).expect("phonemes");
        assert!(s.len() > 1, "{} sentence(s)", s.len());
        assert!(s.iter().all(|x| x.chars().count() < MAX_SENTENCE_PHONEMES + 100), "{s:?}");
    }

    #[test]
    fn nul_bytes_do_not_cut_the_text() {
        let s = phonemize("en-us", "one\0two.").expect("phonemes");
        assert_eq!(s.len(), 1);
        assert!(s[0].contains(' '), "{s:?}");
    }
}
