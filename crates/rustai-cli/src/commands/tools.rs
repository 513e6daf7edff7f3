//! `rustai tools` (the loaded tool plugins' tools) and `rustai tool NAME ARGUMENTS` (call
//! one), through [`rustai_core::Engine::tools`] and [`rustai_core::Engine::call_tool`], as
//! the server's `/v1/tools` does. A tool that reports a failure prints it on stderr and
//! exits non-zero.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::{
    cli::{Cli, ToolArgs, ToolsArgs},
    setup,
};

/// The first sentence of `text`, at most `max` characters.
fn summary(text: &str, max: usize) -> String {
    let first = text.split_once(". ").map_or(text, |(s, _)| s).trim_end_matches('.');
    if first.chars().count() <= max {
        first.to_owned()
    } else {
        format!("{}…", first.chars().take(max - 1).collect::<String>())
    }
}

pub(crate) fn list(cli: &Cli, args: &ToolsArgs) -> Result<()> {
    let engine = setup::engine(cli)?;
    let tools = engine.tools();
    if args.json {
        let json: Vec<serde_json::Value> = tools
            .iter()
            .map(|t| serde_json::json!({"plugin": t.plugin, "name": t.call_name, "description": t.description, "parameters": t.parameters}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    if tools.is_empty() {
        let dirs = setup::plugin_dirs(cli).iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ");
        println!("no tool plugins loaded from {dirs} (see `rustai plugins`)");
        return Ok(());
    }
    let plugin_w = tools.iter().map(|t| t.plugin.len()).max().unwrap_or(0).max("PLUGIN".len());
    let name_w = tools.iter().map(|t| t.call_name.len()).max().unwrap_or(0).max("NAME".len());
    println!("{:<plugin_w$}  {:<name_w$}  DESCRIPTION", "PLUGIN", "NAME");
    for t in &tools {
        println!("{:<plugin_w$}  {:<name_w$}  {}", t.plugin, t.call_name, summary(&t.description, 90));
    }
    Ok(())
}

pub(crate) fn call(cli: &Cli, args: &ToolArgs) -> Result<()> {
    let arguments: serde_json::Value =
        serde_json::from_str(&args.arguments).with_context(|| format!("the arguments `{}` are not JSON", args.arguments))?;
    let engine = setup::engine(cli)?;
    let result = engine.call_tool(&args.name, &arguments, Duration::from_secs_f64(args.timeout))?;
    if result.is_error {
        bail!("tool `{}` ({}) reported an error: {}", result.name, result.plugin, result.content);
    }
    println!("{}", result.content);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn summaries_are_first_sentences_cut_to_width() {
        assert_eq!(summary("Reads a file. Then more.", 40), "Reads a file");
        assert_eq!(summary("One sentence.", 40), "One sentence");
        assert_eq!(summary("abcdefghij", 5), "abcd…");
    }
}
