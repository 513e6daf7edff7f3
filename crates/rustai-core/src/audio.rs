//! Audio at the host edge: WAV in (any common rate, channels, bit depth) to
//! 16 kHz mono f32 PCM for speech-to-text plugins, and PCM out to WAV.
//!
//! (Being written: see the whisper plugin work.)
