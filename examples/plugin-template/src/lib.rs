//! A template RustAI plugin: `text-tools`, a [`ToolPlugin`] with two tools an
//! agent can call, `text_stats` (words, characters, lines, sentences) and
//! `slugify`. Start your own plugin from this file.
//!
//! Build: `cargo build --release` (gives `target/release/librustai_plugin_template.so`),
//! then copy the library into a plugin folder (`plugins-dist/` or `~/.rustai/plugins/`).

use rustai_plugin::serde_json;
use std::sync::Arc;

use rustai_plugin::{
    Capabilities, Category, Families, Plugin, PluginError, PluginExport, PluginInfo, RResult, RStr, RString,
    RVec, ResourceRequirements, ToolDefinition, ToolOutput, ToolPlugin,
};
use serde_json::{json, Value};

/// The plugin. Stateless, so it is trivially safe to call from many threads.
#[derive(Debug, Default)]
pub struct TextTools;

impl Plugin for TextTools {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            capabilities: Capabilities::default(),
            resources: ResourceRequirements { min_memory_mb: 1, recommended_memory_mb: 1, cores: 1, ..Default::default() },
            ..PluginInfo::new("Text tools", Category::Tool).describe("Text statistics and slugs, as tools for agents")
        }
    }
}

/// The `text` argument. The host does not check arguments against the schema, so the
/// plugin does; a missing one is reported to the model (`is_error`), which can fix it.
fn text_arg(args: &Value) -> Result<&str, String> {
    args.get("text").and_then(Value::as_str).ok_or_else(|| "argument `text` (a string) is required".to_owned())
}

fn text_stats(text: &str) -> Value {
    json!({
        "words": text.split_whitespace().count(),
        "characters": text.chars().count(),
        "lines": text.lines().count(),
        "sentences": text.split(['.', '!', '?']).filter(|s| !s.trim().is_empty()).count(),
    })
}

fn slugify(text: &str) -> String {
    let mut slug = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

impl ToolPlugin for TextTools {
    fn tools(&self) -> RVec<ToolDefinition> {
        let schema = json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}).to_string();
        vec![
            ToolDefinition {
                name: "text_stats".into(),
                description: "Count the words, characters, lines and sentences of a text".into(),
                parameters_schema: schema.as_str().into(),
            },
            ToolDefinition {
                name: "slugify".into(),
                description: "Turn a title into a URL slug".into(),
                parameters_schema: schema.into(),
            },
        ]
        .into()
    }

    fn execute(&self, name: RStr<'_>, arguments_json: RStr<'_>) -> RResult<ToolOutput, PluginError> {
        let run = || -> Result<ToolOutput, PluginError> {
            let args: Value = serde_json::from_str(arguments_json.as_str())
                .map_err(|e| PluginError::invalid_input(format!("arguments are not JSON: {e}")))?;
            let result = match name.as_str() {
                "text_stats" => text_arg(&args).map(|t| text_stats(t).to_string()),
                "slugify" => text_arg(&args).map(slugify),
                other => return Err(PluginError::not_found(format!("no tool named `{other}`"))),
            };
            // Ran, but the arguments were wrong: the model sees the message (is_error).
            Ok(match result {
                Ok(content) => ToolOutput { content: RString::from(content), is_error: false },
                Err(why) => ToolOutput { content: RString::from(why), is_error: true },
            })
        };
        run().into()
    }
}

impl PluginExport for TextTools {
    fn create() -> Result<Self, PluginError> {
        Ok(Self)
    }
    fn families(this: &Arc<Self>) -> Families {
        Families::default().with_tool(Arc::clone(this))
    }
}

rustai_plugin::export_plugin!(TextTools, id = "text-tools");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_work_in_process() {
        // The same guarded instance the host gets, without dlopen.
        let instance = rustai_plugin::export::instantiate::<TextTools>().unwrap();
        let tools = instance.tool.into_option().unwrap();
        let out = tools.execute("slugify".into(), r#"{"text": "Hello, Plugin World!"}"#.into()).unwrap();
        assert_eq!(out.content.as_str(), "hello-plugin-world");
        let err = tools.execute("nope".into(), "{}".into()).unwrap_err();
        assert_eq!(err.kind, rustai_plugin::ErrorKind::NotFound);
        let bad = tools.execute("slugify".into(), r#"{"title": "x"}"#.into()).unwrap();
        assert!(bad.is_error, "{}", bad.content);
    }
}
