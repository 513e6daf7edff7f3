//! `rustai run MODEL PROMPT`.

use std::io::Write;

use anyhow::Result;
use rustai_core::abi::{ChatMessage, ChatRequest, GenerateRequest};

use crate::{cli::{Cli, RunArgs}, setup};

pub(crate) fn run(cli: &Cli, args: &RunArgs) -> Result<()> {
    let mut params = setup::sampling(&args.sampling)?;
    let loaded = setup::load_model(cli, &args.model, args.model.threads, &mut params)?;
    if args.verbose {
        let info = loaded.model().info();
        eprintln!(
            "plugin: {} {}\nmodel: {} ({}, {}, {:.1}M parameters, context {})\nload: {:.1} ms",
            loaded.model().plugin_id(),
            loaded.model().plugin().info().version,
            loaded.prepared.entry.path().unwrap_or(std::path::Path::new(&loaded.prepared.entry.id)).display(),
            info.architecture,
            info.quantization,
            info.parameters as f64 / 1e6,
            info.context_length,
            loaded.load_ms
        );
    }
    let mut out = std::io::stdout().lock();
    let mut print = |piece: &str| out.write_all(piece.as_bytes()).and_then(|()| out.flush()).is_ok();
    let done = if args.raw {
        loaded.model().generate(&GenerateRequest::new(args.prompt.as_str(), params), &mut print)
    } else {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(ChatMessage::new("system", system.as_str()));
        }
        messages.push(ChatMessage::new("user", args.prompt.as_str()));
        loaded.model().chat(&ChatRequest { messages: messages.into(), params }, &mut print)
    };
    loaded.record(done.as_ref());
    let done = done?;
    println!();
    if args.verbose {
        super::print_timings(&done);
    }
    Ok(())
}
