//! One module per subcommand.

mod bench;
mod bench_serving;
mod chat;
mod embed;
mod plugins;
mod models;
mod pull;
mod run;
mod serve;
mod speech;
mod tools;

use anyhow::Result;

use crate::cli::{Cli, Command};

pub(crate) fn dispatch(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Run(args) => run::run(&cli, args),
        Command::Chat(args) => chat::run(&cli, args),
        Command::Plugins(args) => plugins::plugins(&cli, args),
        Command::Models(args) => models::list(&cli, args),
        Command::Select(args) => models::select(&cli, args),
        Command::Bench(args) if args.serving => bench_serving::run(&cli, args),
        Command::Bench(args) => bench::run(&cli, args),
        Command::Serve(args) => serve::run(&cli, args),
        Command::Ps(args) => serve::ps(args),
        Command::Tools(args) => tools::list(&cli, args),
        Command::Tool(args) => tools::call(&cli, args),
        Command::Pull(args) => pull::run(&cli, args),
        Command::Embed(args) => embed::run(&cli, args),
        Command::Transcribe(args) => speech::transcribe(&cli, args),
        Command::Speak(args) => speech::speak(&cli, args),
        Command::ConvertWhisper(args) => convert_whisper(args),
    }
}

fn convert_whisper(args: &crate::cli::ConvertWhisperArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let report = rustai_convert::convert_ct2(&args.src, &args.out)?;
    println!(
        "wrote {} ({} tensors, {} bytes, whisper-{}) in {:.1} s",
        args.out.display(),
        report.tensors,
        report.bytes,
        report.hparams.model_type(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Print timings the way `--verbose` shows them.
pub(crate) fn print_timings(done: &rustai_core::abi::Completion) {
    let t = &done.timings;
    eprintln!(
        "prompt: {} tokens in {:.1} ms ({:.1} tokens/s)\ngenerated: {} tokens in {:.1} ms ({:.1} tokens/s)\nfinish reason: {}",
        done.tokens_in,
        t.prompt_eval_ms,
        t.prompt_tokens_per_s,
        done.tokens_out,
        t.generation_ms,
        t.tokens_per_s,
        done.finish_reason.as_str()
    );
}
