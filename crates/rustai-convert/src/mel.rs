//! The mel filterbank whisper.cpp reads from its model files.
//!
//! OpenAI's Whisper ships `librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)`
//! (and `n_mels=128` for large-v3) as `mel_filters.npz`; the ggml converter
//! copies it into the model file. [`mel_filters`] recomputes it the way librosa
//! does: Slaney mel scale (linear below 1 kHz, logarithmic above), triangles
//! between neighbouring mel points evaluated at the FFT bin frequencies, then
//! Slaney ("area") normalisation `2 / (f[i+2] - f[i])`. Arithmetic is `f64`
//! with the same rounding steps as librosa (the triangle is stored as `f32`
//! before the normalisation multiplies it), so the values match to the bit.

/// Linear part of the Slaney scale: Hz per mel below 1 kHz.
const F_SP: f64 = 200.0 / 3.0;
/// Where the logarithmic part starts (Hz).
const MIN_LOG_HZ: f64 = 1000.0;

fn min_log_mel() -> f64 {
    MIN_LOG_HZ / F_SP
}

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

/// Hz to mel on the Slaney scale (librosa's `hz_to_mel(htk=False)`).
pub fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        min_log_mel() + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

/// Mel to Hz on the Slaney scale (librosa's `mel_to_hz(htk=False)`).
pub fn mel_to_hz(mel: f64) -> f64 {
    if mel >= min_log_mel() {
        MIN_LOG_HZ * (log_step() * (mel - min_log_mel())).exp()
    } else {
        F_SP * mel
    }
}

/// The filterbank, row-major: `n_mels` rows of `n_fft / 2 + 1` weights.
/// Frequencies span 0 to `sample_rate / 2`.
pub fn mel_filters(sample_rate: u32, n_fft: u32, n_mels: u32) -> Vec<f32> {
    let bins = (n_fft / 2 + 1) as usize;
    let n_mels = n_mels as usize;
    let sr = f64::from(sample_rate);
    // numpy.fft.rfftfreq(n_fft, 1 / sr): i * (1 / (n_fft * (1 / sr))).
    let step = 1.0 / (f64::from(n_fft) * (1.0 / sr));
    let fft: Vec<f64> = (0..bins).map(|i| i as f64 * step).collect();
    // numpy.linspace(min_mel, max_mel, n_mels + 2), last point set exactly.
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let points = n_mels + 2;
    let delta = (hi - lo) / (points - 1) as f64;
    let mel_hz: Vec<f64> =
        (0..points).map(|i| if i == points - 1 { hi } else { i as f64 * delta + lo }).map(mel_to_hz).collect();
    let mut out = Vec::with_capacity(n_mels * bins);
    for i in 0..n_mels {
        let (left, centre, right) = (mel_hz[i], mel_hz[i + 1], mel_hz[i + 2]);
        let norm = 2.0 / (right - left);
        out.extend(fft.iter().map(|&f| {
            let lower = -(left - f) / (centre - left);
            let upper = (right - f) / (right - centre);
            let tri = lower.min(upper).max(0.0) as f32;
            (f64::from(tri) * norm) as f32
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from librosa's algorithm evaluated independently
    /// (Python `math`, same formulas), as `f32` bit patterns.
    const REFERENCE: [(usize, usize, u32); 10] = [
        (0, 1, 0x3ccb_aca4), // 0.024862595 (whisper's filters[0, 1])
        (1, 2, 0x3cbb_5d95),
        (5, 5, 0x3c23_168f),
        (5, 6, 0x3c74_42b7),
        (10, 11, 0x3ba2_584f),
        (40, 42, 0x3bb1_4fa3),
        (40, 43, 0x3c71_6d72),
        (40, 44, 0x3bd5_968a),
        (79, 190, 0x3b12_47ab),
        (79, 199, 0x39eb_476a),
    ];

    #[test]
    fn matches_librosa_reference() {
        let m = mel_filters(16_000, 400, 80);
        assert_eq!(m.len(), 80 * 201);
        for (row, col, bits) in REFERENCE {
            assert_eq!(m[row * 201 + col].to_bits(), bits, "filters[{row}, {col}] = {}", m[row * 201 + col]);
        }
        // Entries next to a row's support are exactly zero.
        for (row, col) in [(0, 2), (10, 13), (40, 41), (40, 45), (79, 185), (79, 200)] {
            assert_eq!(m[row * 201 + col], 0.0, "filters[{row}, {col}]");
        }
    }

    #[test]
    fn rows_are_normalised_triangles() {
        let m = mel_filters(16_000, 400, 80);
        let bin_hz = 16_000.0 / 400.0;
        let mel_step = hz_to_mel(8000.0) / 81.0;
        for (i, row) in m.chunks(201).enumerate() {
            assert!(row.iter().all(|&w| w >= 0.0 && w.is_finite()), "row {i}");
            let peak = row.iter().cloned().fold(0.0f32, f32::max);
            assert!(peak > 0.0, "row {i} has no peak");
            // One peak: weights rise, then fall.
            let top = row.iter().position(|&w| w == peak).unwrap_or(0);
            assert!(row[..top].windows(2).all(|w| w[0] <= w[1]), "row {i} rises");
            assert!(row[top..].windows(2).all(|w| w[0] >= w[1]), "row {i} falls");
            // Slaney normalisation: the continuous triangle has area 1 (height
            // 2 / width, width in Hz), so the bin sum times the bin width is
            // about 1 for triangles much wider than a bin.
            let (left, right) = (mel_to_hz(i as f64 * mel_step), mel_to_hz((i + 2) as f64 * mel_step));
            if right - left > 8.0 * bin_hz {
                let area = row.iter().map(|&w| f64::from(w)).sum::<f64>() * bin_hz;
                assert!((area - 1.0).abs() < 0.02, "row {i}: area {area}");
            }
        }
    }

    #[test]
    fn slaney_scale_round_trips() {
        for hz in [0.0, 100.0, 999.0, 1000.0, 4321.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9);
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        // 128 bins (large-v3) also come out as non-negative rows with a peak.
        let m = mel_filters(16_000, 400, 128);
        assert!(m.chunks(201).all(|r| r.iter().all(|&w| w >= 0.0) && r.iter().any(|&w| w > 0.0)));
    }
}
