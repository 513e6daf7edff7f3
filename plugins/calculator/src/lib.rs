//! The `calculator` plugin: one tool, `calculator`, that evaluates an arithmetic expression
//! exactly where it can (`eval`: 64-bit integers stay exact, overflow is an error). A bad
//! expression, or arguments without a string `expression`, is the tool's answer (`is_error`),
//! so the model reads why and can fix it; arguments that are not JSON are `InvalidInput`.
//!
//! No configuration: `init` accepts only an empty table.

pub mod eval;

use std::sync::Arc;

use rustai_plugin::serde_json::{self, json, Value};
use rustai_plugin::{
    Capabilities, Category, Families, Plugin, PluginError, PluginExport, PluginInfo, RResult, RStr, RVec, ResourceRequirements,
    ToolDefinition, ToolOutput, ToolPlugin,
};

/// The tool's name.
pub const TOOL: &str = "calculator";

/// The plugin; stateless.
#[derive(Debug, Default)]
pub struct Calculator;

impl Plugin for Calculator {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            capabilities: Capabilities::default(),
            resources: ResourceRequirements { min_memory_mb: 1, recommended_memory_mb: 1, cores: 1, ..Default::default() },
            ..PluginInfo::new("Calculator", Category::Tool).describe("Exact arithmetic for agents: a `calculator` tool")
        }
    }

    fn init(&self, config_json: RStr<'_>) -> RResult<(), PluginError> {
        match serde_json::from_str::<Value>(config_json.as_str()) {
            Ok(Value::Object(map)) if map.is_empty() => RResult::ROk(()),
            Ok(Value::Object(map)) => {
                let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                RResult::RErr(PluginError::invalid_input(format!("calculator configuration: unknown setting(s) {} (it has none)", keys.join(", "))))
            }
            _ => RResult::RErr(PluginError::invalid_input("calculator configuration: must be a table")),
        }
    }
}

/// The answer to `args`: the value, or why there is none (for the model).
fn answer(args: &Value) -> Result<String, String> {
    match args.get("expression") {
        Some(Value::String(expr)) => eval::evaluate(expr).map(eval::Num::display).map_err(|e| e.to_string()),
        Some(other) => Err(format!("`expression` must be a string, not {other}")),
        None => Err("argument `expression` (a string) is required".to_owned()),
    }
}

impl ToolPlugin for Calculator {
    fn tools(&self) -> RVec<ToolDefinition> {
        let description = format!(
            "Evaluate an arithmetic expression exactly: + - * / % ^ and parentheses, the constants pi and e, and the functions {}. \
             Integers are exact 64-bit values (an overflow is reported, never rounded); / of integers that do not divide gives a decimal. \
             At most {} characters.",
            eval::FUNCTIONS,
            eval::MAX_CHARS
        );
        let schema = json!({
            "type": "object",
            "properties": {
                "expression": {"type": "string", "description": "The expression, e.g. \"1234 * 5678\" or \"(2^10 - 1) / 3\""}
            },
            "required": ["expression"]
        });
        RVec::from(vec![ToolDefinition {
            name: TOOL.into(),
            description: description.into(),
            parameters_schema: schema.to_string().into(),
        }])
    }

    fn execute(&self, name: RStr<'_>, arguments_json: RStr<'_>) -> RResult<ToolOutput, PluginError> {
        if name.as_str() != TOOL {
            return RResult::RErr(PluginError::not_found(format!("no tool named `{name}` (this plugin has `{TOOL}`)")));
        }
        let args: Value = match serde_json::from_str(arguments_json.as_str()) {
            Ok(args) => args,
            Err(e) => return RResult::RErr(PluginError::invalid_input(format!("arguments are not JSON: {e}"))),
        };
        RResult::ROk(match answer(&args) {
            Ok(value) => ToolOutput { content: value.into(), is_error: false },
            Err(why) => ToolOutput { content: why.into(), is_error: true },
        })
    }
}

impl PluginExport for Calculator {
    fn create() -> Result<Self, PluginError> {
        Ok(Self)
    }

    fn families(this: &Arc<Self>) -> Families {
        Families::default().with_tool(Arc::clone(this))
    }
}

rustai_plugin::export_plugin!(Calculator, id = "calculator");

#[cfg(test)]
mod tests {
    use rustai_plugin::ErrorKind;

    use super::*;

    #[test]
    fn the_guarded_instance_answers_and_reports() {
        let instance = rustai_plugin::export::instantiate::<Calculator>().unwrap();
        instance.plugin.init("{}".into()).unwrap();
        assert!(instance.plugin.init(r#"{"precision": 3}"#.into()).is_err());
        let tool = instance.tool.into_option().unwrap();
        let defs = tool.tools();
        assert_eq!(defs.len(), 1);
        let schema: Value = serde_json::from_str(&defs[0].parameters_schema).unwrap();
        assert_eq!(schema["required"], json!(["expression"]));

        let out = tool.execute(TOOL.into(), r#"{"expression": "1234*5678"}"#.into()).unwrap();
        assert_eq!((out.content.as_str(), out.is_error), ("7006652", false));
        let out = tool.execute(TOOL.into(), r#"{"expression": "1/0"}"#.into()).unwrap();
        assert_eq!((out.content.as_str(), out.is_error), ("division by zero", true));

        for (bad, says) in [("[1]", "is required"), ("{}", "is required"), (r#"{"expression": 3}"#, "must be a string")] {
            let out = tool.execute(TOOL.into(), bad.into()).unwrap();
            assert!(out.is_error && out.content.contains(says), "{bad}: {}", out.content);
        }
        assert_eq!(tool.execute(TOOL.into(), "not json".into()).unwrap_err().kind, ErrorKind::InvalidInput);
        assert_eq!(tool.execute("other".into(), "{}".into()).unwrap_err().kind, ErrorKind::NotFound);
    }
}
