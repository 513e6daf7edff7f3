//! Audio at the host edge: WAV in (any common rate, channels, bit depth) to
//! 16 kHz mono f32 PCM for speech-to-text plugins, and PCM out to WAV.
//!
//! Plugins only ever see plain PCM ([`rustai_abi::TranscribeRequest::pcm`]);
//! containers, bit depths, channel layouts and sample rates are dealt with here.
//! - [`decode_wav`]: 8/16/24/32-bit integer or 32-bit float WAV, any channel
//!   count up to [`MAX_CHANNELS`], downmixed to mono and resampled to
//!   [`STT_SAMPLE_RATE`] (rubato's FFT resampler) unless already at that rate.
//! - [`to_16k_mono`] / [`resample`]: the same for PCM already in memory.
//! - [`encode_wav`]: mono f32 PCM to a 16-bit PCM WAV.
//!
//! Every failure is an [`Error::Audio`] that says what is wrong (not a WAV,
//! empty, truncated, a 0 Hz header, an absurd channel count, ...).

use std::io::Cursor;

use rubato::{audioadapter_buffers::direct::InterleavedSlice, Fft, FixedSync, Resampler};

use crate::error::{Error, Result};

/// The sample rate speech-to-text plugins take.
pub const STT_SAMPLE_RATE: u32 = 16_000;

/// Most channels accepted in a WAV file (7.1.4 surround has 12).
pub const MAX_CHANNELS: u16 = 32;

/// Lowest and highest sample rates accepted.
pub const SAMPLE_RATES: std::ops::RangeInclusive<u32> = 1_000..=768_000;

/// Frames per resampler chunk.
const RESAMPLE_CHUNK: usize = 1024;

/// Mono PCM samples, nominally in `[-1, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm {
    /// The samples.
    pub samples: Vec<f32>,
    /// Samples per second.
    pub sample_rate: u32,
}

impl Pcm {
    /// Length in seconds.
    pub fn duration_secs(&self) -> f64 {
        if self.sample_rate == 0 {
            return 0.0;
        }
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Audio(msg.into())
}

fn check_rate(sample_rate: u32) -> Result<()> {
    if sample_rate == 0 {
        return Err(bad("the sample rate is 0 Hz"));
    }
    if !SAMPLE_RATES.contains(&sample_rate) {
        return Err(bad(format!(
            "unsupported sample rate {sample_rate} Hz (supported: {} to {} Hz)",
            SAMPLE_RATES.start(),
            SAMPLE_RATES.end()
        )));
    }
    Ok(())
}

/// Decode a WAV file held in memory to 16 kHz mono PCM.
pub fn decode_wav(bytes: &[u8]) -> Result<Pcm> {
    decode_wav_max(bytes, f64::INFINITY)
}

/// [`decode_wav`], refusing audio longer than `max_secs` from its header, before
/// any sample is decoded or resampled (8 MiB of 1 kHz audio is over two hours).
pub fn decode_wav_max(bytes: &[u8], max_secs: f64) -> Result<Pcm> {
    if bytes.is_empty() {
        return Err(bad("the WAV data is empty (0 bytes)"));
    }
    let riff = bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WAVE";
    if !riff {
        let head = &bytes[..bytes.len().min(12)];
        if bytes.len() < 12 && b"RIFF".starts_with(&head[..head.len().min(4)]) {
            return Err(bad(format!("the WAV data is truncated: {} bytes, shorter than a RIFF header", bytes.len())));
        }
        return Err(bad(format!(
            "not a WAV file: it starts with {head:02x?}, expected \"RIFF\" .... \"WAVE\" (only WAV is supported; convert other formats first)"
        )));
    }
    let mut reader = hound::WavReader::new(Cursor::new(bytes)).map_err(|e| wav_error(e, bytes.len()))?;
    let spec = reader.spec();
    check_rate(spec.sample_rate)?;
    if spec.channels > MAX_CHANNELS {
        return Err(bad(format!("the WAV header claims {} channels; at most {MAX_CHANNELS} are supported", spec.channels)));
    }
    let announced = reader.len() as usize;
    if announced == 0 {
        return Err(bad("the WAV file contains no samples"));
    }
    let secs = announced as f64 / f64::from(spec.channels.max(1)) / f64::from(spec.sample_rate);
    if secs > max_secs {
        return Err(bad(format!("the audio is {secs:.0} s long; at most {max_secs:.0} s are accepted")));
    }
    // The header may lie about the length: never reserve more than the bytes can hold.
    let mut interleaved = Vec::with_capacity(announced.min(bytes.len()));
    let truncated = |read: usize| {
        bad(format!(
            "the WAV data is truncated: its header announces {announced} samples, the data ends after {read}"
        ))
    };
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            for s in reader.samples::<f32>() {
                interleaved.push(s.map_err(|_| truncated(interleaved.len()))?);
            }
        }
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            for s in reader.samples::<i32>() {
                let s = s.map_err(|_| truncated(interleaved.len()))?;
                interleaved.push((f64::from(s) * scale) as f32);
            }
        }
        (format, bits) => {
            return Err(bad(format!(
                "unsupported WAV sample format: {bits}-bit {} (supported: 8/16/24/32-bit integer, 32-bit float)",
                if format == hound::SampleFormat::Float { "float" } else { "integer" }
            )))
        }
    }
    to_16k_mono(&interleaved, spec.channels, spec.sample_rate)
}

/// Turn a hound error into a clear message.
fn wav_error(e: hound::Error, len: usize) -> Error {
    match e {
        // Reading from memory only fails by running out of bytes.
        hound::Error::IoError(_) => {
            bad(format!("the WAV data is truncated: its {len} bytes end before the header and a `data` chunk are complete"))
        }
        hound::Error::FormatError("inconsistent fmt chunk") => {
            bad("the WAV header is inconsistent (byte rate ≠ sample rate × block size)")
        }
        hound::Error::FormatError("bits per sample is not 32") => {
            bad("unsupported WAV sample format: float samples must be 32-bit (64-bit float is not supported)")
        }
        hound::Error::FormatError("missing fmt chunk") => bad("the WAV file has no `fmt ` chunk before its data"),
        hound::Error::FormatError(msg) => bad(format!("malformed WAV: {msg}")),
        hound::Error::Unsupported => bad("unsupported WAV encoding (compressed WAVs such as ADPCM are not supported; use PCM)"),
        other => bad(format!("cannot read the WAV data: {other}")),
    }
}

/// Downmix interleaved PCM with `channels` channels to mono and resample it to
/// [`STT_SAMPLE_RATE`]. Non-finite samples are refused.
pub fn to_16k_mono(interleaved: &[f32], channels: u16, sample_rate: u32) -> Result<Pcm> {
    check_rate(sample_rate)?;
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(bad(format!("{channels} channels: between 1 and {MAX_CHANNELS} are supported")));
    }
    if interleaved.is_empty() {
        return Err(bad("no samples"));
    }
    if let Some(i) = interleaved.iter().position(|s| !s.is_finite()) {
        return Err(bad(format!("sample {i} is {}: audio must be finite numbers", interleaved[i])));
    }
    let channels = usize::from(channels);
    if interleaved.len() % channels != 0 {
        return Err(bad(format!("{} samples do not split into {channels} channels", interleaved.len())));
    }
    let mono: Vec<f32> = if channels == 1 {
        interleaved.to_vec()
    } else {
        interleaved.chunks_exact(channels).map(|frame| frame.iter().sum::<f32>() / channels as f32).collect()
    };
    let samples = resample(&mono, sample_rate, STT_SAMPLE_RATE)?;
    Ok(Pcm { samples, sample_rate: STT_SAMPLE_RATE })
}

/// Resample mono PCM from `from` Hz to `to` Hz (a copy when they are equal).
/// The result has `ceil(len × to / from)` samples, aligned with the input (the
/// resampler's delay is removed).
pub fn resample(mono: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    check_rate(from)?;
    check_rate(to)?;
    if from == to || mono.is_empty() {
        return Ok(mono.to_vec());
    }
    let resampler_error = |e: &dyn std::fmt::Display| bad(format!("resampling {from} Hz to {to} Hz failed: {e}"));
    let mut resampler = Fft::<f32>::new(from as usize, to as usize, RESAMPLE_CHUNK, 1, FixedSync::Input)
        .map_err(|e| resampler_error(&e))?;
    let input = InterleavedSlice::new(mono, 1, mono.len()).map_err(|e| resampler_error(&e))?;
    let out = resampler.process_all(&input, mono.len(), None).map_err(|e| resampler_error(&e))?;
    Ok(out.take_data())
}

/// Encode mono PCM as a 16-bit PCM WAV (samples are clipped to `[-1, 1]`).
pub fn encode_wav(samples: &[f32], sample_rate: u32) -> Result<Vec<u8>> {
    check_rate(sample_rate)?;
    if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
        return Err(bad(format!("sample {i} is {}: audio must be finite numbers", samples[i])));
    }
    let data_bytes = samples.len().checked_mul(2).filter(|&n| n <= u32::MAX as usize - 44);
    if data_bytes.is_none() {
        return Err(bad(format!("{} samples do not fit in one WAV file (4 GiB)", samples.len())));
    }
    let spec = hound::WavSpec { channels: 1, sample_rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut out = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    let write_error = |e: hound::Error| bad(format!("cannot write WAV: {e}"));
    let mut writer = hound::WavWriter::new(&mut out, spec).map_err(write_error)?;
    for &s in samples {
        let v = (s.clamp(-1.0, 1.0) * f32::from(i16::MAX)).round() as i16;
        writer.write_sample(v).map_err(write_error)?;
    }
    writer.finalize().map_err(write_error)?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A canonical 44-byte-header PCM WAV, written by hand (not with hound).
    fn wav(channels: u16, rate: u32, bits: u16, format_tag: u16, data: &[u8]) -> Vec<u8> {
        let block = channels * bits.div_ceil(8);
        let mut v = Vec::new();
        v.extend_from_slice(b"RIFF");
        v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        v.extend_from_slice(b"WAVEfmt ");
        v.extend_from_slice(&16u32.to_le_bytes());
        v.extend_from_slice(&format_tag.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
        v.extend_from_slice(&block.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v.extend_from_slice(b"data");
        v.extend_from_slice(&(data.len() as u32).to_le_bytes());
        v.extend_from_slice(data);
        v
    }

    fn sine(rate: u32, secs: f32, hz: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n).map(|i| 0.5 * (2.0 * std::f32::consts::PI * hz * i as f32 / rate as f32).sin()).collect()
    }

    fn message(r: Result<Pcm>) -> String {
        match r {
            Err(Error::Audio(m)) => m,
            other => panic!("expected an audio error, got {other:?}"),
        }
    }

    #[test]
    fn round_trip_at_16k_is_close() {
        let pcm = sine(16_000, 0.5, 440.0);
        let back = decode_wav(&encode_wav(&pcm, 16_000).unwrap()).unwrap();
        assert_eq!(back.sample_rate, 16_000);
        assert_eq!(back.samples.len(), pcm.len());
        let worst = pcm.iter().zip(&back.samples).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-4, "worst error {worst}");
        assert!((back.duration_secs() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn resampling_gives_the_expected_length_and_keeps_the_tone() {
        for rate in [8_000, 22_050, 44_100, 48_000] {
            let pcm = sine(rate, 1.0, 440.0);
            let back = decode_wav(&encode_wav(&pcm, rate).unwrap()).unwrap();
            assert_eq!(back.sample_rate, 16_000);
            assert_eq!(back.samples.len(), 16_000, "{rate} Hz");
            // Same tone at the new rate (away from the edges).
            let want = sine(16_000, 1.0, 440.0);
            let err = want[1000..15_000].iter().zip(&back.samples[1000..15_000]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(err < 0.05, "{rate} Hz: worst error {err}");
        }
        assert_eq!(resample(&[0.1; 3], 22_050, 16_000).unwrap().len(), 3);
    }

    #[test]
    fn every_bit_depth_and_stereo_downmix() {
        let (rate, frames) = (16_000u32, 1600usize);
        // Left +0.5, right -0.25: mono is 0.125 in every format.
        type Encode = Box<dyn Fn(f64) -> Vec<u8>>;
        let cases: [(u16, u16, Encode); 5] = [
            (8, 1, Box::new(|x| vec![(x * 128.0 + 128.0) as u8])),
            (16, 1, Box::new(|x| ((x * 32768.0) as i16).to_le_bytes().to_vec())),
            (24, 1, Box::new(|x| ((x * 8_388_608.0) as i32).to_le_bytes()[..3].to_vec())),
            (32, 1, Box::new(|x| ((x * 2_147_483_648.0) as i32).to_le_bytes().to_vec())),
            (32, 3, Box::new(|x| (x as f32).to_le_bytes().to_vec())),
        ];
        for (bits, tag, enc) in cases {
            let data: Vec<u8> = (0..frames).flat_map(|_| [enc(0.5), enc(-0.25)].concat()).collect();
            let pcm = decode_wav(&wav(2, rate, bits, tag, &data)).unwrap_or_else(|e| panic!("{bits}-bit tag {tag}: {e}"));
            assert_eq!(pcm.samples.len(), frames);
            assert!(pcm.samples.iter().all(|s| (s - 0.125).abs() < 0.01), "{bits}-bit tag {tag}: {:?}", &pcm.samples[..4]);
        }
    }

    #[test]
    fn bad_wavs_give_clear_errors() {
        let ok = wav(1, 16_000, 16, 1, &[0u8; 3200]);
        assert!(message(decode_wav(b"")).contains("empty"));
        assert!(message(decode_wav(b"ID3\x04 this is an mp3")).contains("not a WAV"));
        assert!(message(decode_wav(b"RIFF")).contains("truncated"));
        let m = message(decode_wav(&ok[..30]));
        assert!(m.contains("truncated"), "{m}");
        let m = message(decode_wav(&ok[..ok.len() - 101]));
        assert!(m.contains("truncated") && m.contains("1600"), "{m}");
        assert!(message(decode_wav(&wav(1, 0, 16, 1, &[0u8; 32]))).contains("0 Hz"));
        assert!(message(decode_wav(&wav(1000, 16_000, 8, 1, &[0u8; 2000]))).contains("1000 channels"));
        assert!(message(decode_wav(&wav(1, 16_000, 16, 1, &[]))).contains("no samples"));
        assert!(message(decode_wav(&wav(1, 16_000, 16, 2, &[0u8; 32]))).contains("unsupported"));
        assert!(message(decode_wav(&wav(1, 16_000, 64, 3, &[0u8; 32]))).contains("float samples must be 32-bit"));
        let nan: Vec<u8> = [0.0f32, f32::NAN].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert!(message(decode_wav(&wav(1, 16_000, 32, 3, &nan))).contains("sample 1"));
        let mut inconsistent = ok.clone();
        inconsistent[28..32].copy_from_slice(&1u32.to_le_bytes());
        assert!(message(decode_wav(&inconsistent)).contains("inconsistent"));
    }

    #[test]
    fn encode_rejects_bad_input_and_clips() {
        assert!(matches!(encode_wav(&[0.0], 0), Err(Error::Audio(m)) if m.contains("0 Hz")));
        assert!(matches!(encode_wav(&[f32::NAN], 16_000), Err(Error::Audio(m)) if m.contains("sample 0")));
        let back = decode_wav(&encode_wav(&[2.0, -2.0], 16_000).unwrap()).unwrap();
        assert!((back.samples[0] - 1.0).abs() < 1e-3 && (back.samples[1] + 1.0).abs() < 1e-3);
        assert!(to_16k_mono(&[0.0; 3], 2, 16_000).is_err());
        assert!(to_16k_mono(&[0.0; 4], 0, 16_000).is_err());
    }
}
