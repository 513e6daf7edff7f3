//! A Rust application embedding rustai-core: load the plugins from
//! `plugins-dist/`, find a model in `models/`, and stream a chat reply.
//!
//! ```text
//! cargo run --release -p generate-text -- "Why is the sky blue?"
//! ```

use std::io::Write;

use rustai_core::{
    abi::{ChatMessage, ChatRequest, LoadModelParams, SamplingParams},
    models, PluginManager,
};

fn main() -> anyhow::Result<()> {
    let question = std::env::args().nth(1).unwrap_or_else(|| "What is the capital of France?".to_owned());

    // 1. Plugins: every good plugin in the folder is loaded; bad files are listed with reasons.
    let plugins = PluginManager::from_dirs(["plugins-dist"])?;
    for rejected in plugins.rejected() {
        eprintln!("skipped {rejected}");
    }

    // 2. A model by name, and the plugin that reads its format.
    let file = models::resolve("SmolLM2-135M-Instruct", ["models"])?;
    let llm = plugins.llm_for_format(file.format.as_str())?;
    let model = llm.load(&LoadModelParams::new(file.path.to_string_lossy()))?;

    // 3. Chat, streaming each piece as it comes.
    let request = ChatRequest {
        messages: vec![ChatMessage::new("user", question)].into(),
        params: SamplingParams { max_tokens: 128, ..SamplingParams::greedy() },
    };
    let mut stdout = std::io::stdout();
    let done = model.chat(&request, |piece| {
        print!("{piece}");
        stdout.flush().is_ok()
    })?;
    println!("\n[{} via {}: {} tokens, {:.1} tokens/s, {}]", file.id, model.plugin_id(), done.tokens_out, done.timings.tokens_per_s, done.finish_reason.as_str());
    Ok(())
}
