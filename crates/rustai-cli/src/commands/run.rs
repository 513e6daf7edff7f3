//! `rustai run MODEL PROMPT`.

use std::io::Write;

use anyhow::Result;
use rustai_core::{
    abi::{Completion, GenerateRequest, SamplingExtras, SamplingParams},
    chat::{agent::Agent, complete, Conversation, ToolChoice, ToolSet, Turn},
};

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
        let mut turns = Vec::new();
        if let Some(system) = &args.system {
            turns.push(Turn::new("system", system.as_str()));
        }
        turns.push(Turn::new("user", args.prompt.as_str()));
        converse(&loaded, args, turns, params, &mut print)
    };    loaded.record(done.as_ref());
    let done = done?;
    println!();
    if args.verbose {
        super::print_timings(&done);
    }
    Ok(())
}

/// The conversation through the model's chat template, with the server-side tool loop when
/// `--tools` names plugin tools (the same steps the server takes); each executed call is
/// reported on stderr.
fn converse(loaded: &setup::Loaded, args: &RunArgs, turns: Vec<Turn>, params: SamplingParams, print: &mut dyn FnMut(&str) -> bool) -> rustai_core::Result<Completion> {
    let id = loaded.prepared.entry.id.clone();
    let extras = SamplingExtras::default();
    if args.tools.is_empty() {
        return complete(loaded.model(), &id, &Conversation::new(turns), params, &extras, print).map(|(done, _)| done);
    }
    let server_tools = loaded.engine().server_tools(&args.tools)?;
    let choice = match args.tool_choice.as_str() {
        "required" => ToolChoice::Required,
        "auto" => ToolChoice::Auto,
        "none" => ToolChoice::None,
        name => ToolChoice::Named(name.to_owned()),
    };
    let mut agent = Agent::new(server_tools, ToolSet::default(), Some(choice), args.max_steps);
    let mut conv = Conversation::new(turns);
    let mut spent = (0u32, 0u32);
    loop {
        conv.tools = agent.tool_set();
        let (mut done, reply) = complete(loaded.model(), &id, &conv, params.clone(), &extras, &mut *print)?;
        let reply = reply.unwrap_or_default();
        let engine = loaded.engine();
        let go_on = agent.after(&reply, &mut conv.turns, |call| {
            let ran = engine.run_tool_call(call, rustai_core::engine::TOOL_CALL_TIMEOUT);
            eprintln!("tool {}({}) -> {}{}", call.name, call.arguments, if ran.is_error { "error: " } else { "" }, ran.content);
            ran
        });
        if !go_on {
            done.tokens_in += spent.0;
            done.tokens_out += spent.1;
            return Ok(done);
        }
        spent = (spent.0 + done.tokens_in, spent.1 + done.tokens_out);
    }
}
