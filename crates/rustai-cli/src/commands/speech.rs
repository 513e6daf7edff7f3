//! `rustai transcribe FILE.wav` and `rustai speak "TEXT" -o out.wav`.

use std::time::Instant;

use anyhow::{Context, Result};
use rustai_core::{
    abi::{ROption, RString, SpeakRequest, TranscribeRequest},
    audio, Engine, LoadOptions, Task, TtsModel,
};

use crate::{
    cli::{Cli, SpeakArgs, TranscribeArgs},
    setup,
};

fn pick(engine: &Engine, name: Option<&str>, task: Task) -> Result<String> {
    match name {
        Some(n) => Ok(n.to_owned()),
        None => engine.default_model(task).map(|e| e.id).with_context(|| {
            format!("no {} model that a loaded plugin can serve (see `rustai models` and `rustai plugins`)", task.as_str())
        }),
    }
}

pub(crate) fn transcribe(cli: &Cli, args: &TranscribeArgs) -> Result<()> {
    let engine = setup::engine(cli)?;
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let pcm = audio::decode_wav(&bytes).with_context(|| args.file.display().to_string())?;
    let id = pick(&engine, args.model.as_deref(), Task::Stt)?;
    let started = Instant::now();
    let request = TranscribeRequest {
        pcm: pcm.samples.clone().into(),
        sample_rate: pcm.sample_rate,
        language: args.language.clone().map(RString::from).into(),
        translate: args.translate,
        threads: args.threads,
        initial_prompt: args.prompt.clone().map(RString::from).into(),
        temperature: 0.0,
    };
    let served = engine.transcribe(&id, &request)?;
    let t = &served.output;
    // The work alone, without loading the model.
    let secs = started.elapsed().saturating_sub(served.load_duration).as_secs_f64();
    if args.segments {
        for s in t.segments.iter() {
            println!("[{:>7.2} → {:>7.2}] {}", s.start_ms as f64 / 1e3, s.end_ms as f64 / 1e3, s.text.trim());
        }
    } else {
        println!("{}", t.text.trim());
    }
    eprintln!(
        "{} ({}): {:.1} s of audio in {:.2} s (real-time factor {:.3}), language {}",
        served.entry.id,
        served.plugin,
        pcm.duration_secs(),
        secs,
        secs / pcm.duration_secs().max(1e-9),
        t.language
    );
    Ok(())
}

pub(crate) fn speak(cli: &Cli, args: &SpeakArgs) -> Result<()> {
    let engine = setup::engine(cli)?;
    let id = pick(&engine, args.model.as_deref(), Task::Tts)?;
    let started = Instant::now();
    let request = SpeakRequest {
        text: args.text.as_str().into(),
        voice: args.voice.clone().map(RString::from).into(),
        speed: args.speed,
        noise_scale: ROption::RNone,
    };
    let served = engine.with_model(&id, Task::Tts, &LoadOptions::default(), |m: &TtsModel| m.synthesize(&request))?;
    let (info, pcm) = &served.output;
    let (info, pcm) = (info.clone(), pcm);
    let wav = audio::encode_wav(&pcm, info.sample_rate)?;
    std::fs::write(&args.output, wav).with_context(|| format!("writing {}", args.output.display()))?;
    let seconds = pcm.len() as f64 / f64::from(info.sample_rate.max(1));
    eprintln!(
        "{}: {:.1} s of speech at {} Hz in {:.2} s ({}) -> {}",
        served.entry.id,
        seconds,
        info.sample_rate,
        started.elapsed().saturating_sub(served.load_duration).as_secs_f64(),
        served.plugin,
        args.output.display()
    );
    Ok(())
}
