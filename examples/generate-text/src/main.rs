//! A Rust application embedding rustai-core: load the plugins from
//! `plugins-dist/`, find a model in `models/`, and stream a chat reply, through
//! the same engine entry point the server and the CLI use.
//!
//! ```text
//! cargo run --release -p generate-text -- "Why is the sky blue?"
//! ```

use std::io::Write;

use rustai_core::{
    abi::{ChatMessage, ChatRequest, SamplingParams},
    Engine, EngineConfig, LoadOptions, PluginManager, Registry,
};

fn main() -> anyhow::Result<()> {
    let question = std::env::args().nth(1).unwrap_or_else(|| "What is the capital of France?".to_owned());

    // 1. Plugins: every good plugin in the folder is loaded; bad files are listed with reasons.
    let plugins = PluginManager::from_dirs(["plugins-dist"])?;
    for rejected in plugins.rejected() {
        eprintln!("skipped {rejected}");
    }

    // 2. The engine over the plugins and the models found in `models/`.
    let engine = Engine::new(plugins, Registry::scan_only(["models"]), None, EngineConfig::default());

    // 3. A model by name: resolved, adapted, loaded by the plugin that reads its format.
    let mut params = SamplingParams { max_tokens: 128, ..SamplingParams::greedy() };
    let prepared = engine.prepare_llm("SmolLM2-135M-Instruct", &LoadOptions::default(), &mut params)?;

    // 4. Chat, streaming each piece as it comes, and record the request.
    let request = ChatRequest { messages: vec![ChatMessage::new("user", question)].into(), params };
    let mut stdout = std::io::stdout();
    let done = prepared.lease.chat(&request, |piece| {
        print!("{piece}");
        stdout.flush().is_ok()
    });
    engine.record(&prepared, done.as_ref());
    let done = done?;
    println!(
        "\n[{} via {}: {} tokens, {:.1} tokens/s, {}]",
        prepared.entry.id,
        prepared.plugin_id(),
        done.tokens_out,
        done.timings.tokens_per_s,
        done.finish_reason.as_str()
    );
    Ok(())
}
