//! The engine side of server-side tool execution: which plugin tools a request names,
//! as tool specs for the model, and running a call the model made (a failure becomes a
//! result the model reads, never the end of the request). The loop's steps are
//! [`crate::chat::agent::Agent`]'s.

use std::time::Duration;

use crate::{
    chat::{agent::ExecutedCall, ToolCall, ToolSpec},
    error::{Error, Result},
    Engine,
};

/// How long one tool call of the loop may run by default (the server's `--tool-timeout`).
pub const TOOL_CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Engine {
    /// The plugin tools `names` mean, as specs to offer the model. A name is a tool's name
    /// (as [`Engine::tools`] lists it), `plugin.tool`, or a plugin id (all its tools).
    pub fn server_tools(&self, names: &[String]) -> Result<Vec<ToolSpec>> {
        let all = self.tools();
        let mut specs: Vec<ToolSpec> = Vec::new();
        for name in names {
            let mut matched: Vec<_> = all.iter().filter(|t| &t.call_name == name || &t.qualified_name() == name).collect();
            if matched.is_empty() {
                matched = all.iter().filter(|t| &t.plugin == name).collect();
            }
            if matched.is_empty() {
                return Err(Error::UnknownTool { name: name.clone(), known: all.iter().map(|t| t.call_name.clone()).collect() });
            }
            for t in matched {
                if !specs.iter().any(|s| s.name == t.call_name) {
                    specs.push(ToolSpec { name: t.call_name.clone(), description: t.description.clone(), parameters: t.parameters.clone() });
                }
            }
        }
        Ok(specs)
    }

    /// Run `call` (blocking, waiting at most `timeout`); an error is reported in the result,
    /// for the model to read.
    pub fn run_tool_call(&self, call: &ToolCall, timeout: Duration) -> ExecutedCall {
        match self.call_tool(&call.name, &call.arguments, timeout) {
            Ok(r) => ExecutedCall { call: call.clone(), plugin: r.plugin, content: r.content, is_error: r.is_error },
            Err(e) => ExecutedCall { call: call.clone(), plugin: String::new(), content: format!("error: {e}"), is_error: true },
        }
    }
}
