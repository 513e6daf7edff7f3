//! `rustai`: the command-line front end. Parses arguments and dispatches; the
//! work happens in `rustai-core` and in plugins.

mod cli;
mod commands;
mod session;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let serving = matches!(&cli.command, cli::Command::Serve(_));
    let default_level = if serving && cli.log_level == "warn" { "info" } else { cli.log_level.as_str() };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUSTAI_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if matches!(&cli.command, cli::Command::Serve(a) if a.json_logs) {
        logs.json().init();
    } else {
        logs.init();
    }
    match commands::dispatch(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
