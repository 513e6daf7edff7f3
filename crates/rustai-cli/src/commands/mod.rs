//! One module per subcommand.

mod bench;
mod chat;
mod list;
mod run;

use anyhow::Result;

use crate::cli::{Cli, Command};

pub(crate) fn dispatch(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Run(args) => run::run(&cli, args),
        Command::Chat(args) => chat::run(&cli, args),
        Command::Plugins(args) => list::plugins(&cli, args),
        Command::Models => list::models(&cli),
        Command::Bench(args) => bench::run(&cli, args),
    }
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
