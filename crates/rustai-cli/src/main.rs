//! `rustai`: the command-line front end. Parses arguments and dispatches; the
//! work happens in `rustai-core` and in plugins.

mod cli;
mod commands;
mod setup;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let serving = matches!(&cli.command, cli::Command::Serve(_));
    let default_level = if serving && cli.log_level == "warn" { "info" } else { cli.log_level.as_str() };
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("RUSTAI_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    if matches!(&cli.command, cli::Command::Plugins(a) if a.watch) {
        // `plugins --watch` prints the lifecycle events itself: do not log them a second time.
        if let Ok(quiet) = "rustai::plugins=error".parse() {
            filter = filter.add_directive(quiet);
        }
    }
    // Colour only on a terminal: redirected logs stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
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
