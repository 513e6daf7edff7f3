//! The tool entry points: [`Engine::tools`] lists every tool of every loaded tool plugin;
//! [`Engine::call_tool`] finds the plugin offering a name and runs the call.
//!
//! A name is a tool's own name when one plugin offers it, or `plugin.name` (always
//! accepted, needed when two plugins offer the same name). Arguments must be a JSON object;
//! checking them against the tool's schema is the plugin's job. The call runs on a thread of
//! its own so the caller can stop waiting after a timeout; the thread then finishes on its
//! own (a plugin call cannot be interrupted), and at most [`MAX_RUNNING_TOOL_CALLS`] such
//! threads run at once in the process. A tool that ran and reports a failure is an `Ok`
//! [`ToolResult`] with `is_error`: that answer is for the model.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

use rustai_abi::PluginError;
use serde_json::Value;

use super::Engine;
use crate::{
    error::{Error, Result},
    families::Tools,
    plugins::FamilyKind,
};

/// The most tool calls running at once in this process, those that timed out included.
pub const MAX_RUNNING_TOOL_CALLS: usize = 64;

/// Tool calls running now (their threads).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// A tool a loaded plugin offers.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInfo {
    /// The plugin's id.
    pub plugin: String,
    /// The tool's name (unique within its plugin).
    pub name: String,
    /// The name to call it by: `name`, or `plugin.name` when another loaded plugin offers a
    /// tool of the same name.
    pub call_name: String,
    /// What it does, for the model.
    pub description: String,
    /// The JSON schema of its arguments object (`{"type": "object"}` when the plugin's is not JSON).
    pub parameters: Value,
}

impl ToolInfo {
    /// `plugin.name`: a name [`Engine::call_tool`] always accepts.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.plugin, self.name)
    }
}

/// What a tool call answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    /// The plugin that ran it.
    pub plugin: String,
    /// The tool's name.
    pub name: String,
    /// Its answer (often JSON), or the reason it failed when `is_error`.
    pub content: String,
    /// The tool ran but reports a failure (the model should see it and may try again).
    pub is_error: bool,
}

/// Frees a running-call place when the call's thread ends, however it ends.
struct Place;

impl Place {
    fn take() -> Result<Self> {
        let before = RUNNING.fetch_add(1, Ordering::SeqCst);
        if before >= MAX_RUNNING_TOOL_CALLS {
            RUNNING.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::ToolsBusy { running: before });
        }
        Ok(Self)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Engine {
    /// Every tool plugin's handle with its tools, in plugin load order.
    fn tool_plugins(&self) -> Vec<(Tools, Vec<ToolInfo>)> {
        self.plugins()
            .plugins()
            .into_iter()
            .filter(|p| p.offers(FamilyKind::Tool))
            .filter_map(|p| {
                let id = p.id().to_owned();
                let tools = Tools::new(p)?;
                let infos = tools
                    .definitions()
                    .into_iter()
                    .map(|d| {
                        let parameters = serde_json::from_str(&d.parameters_schema).unwrap_or_else(|e| {
                            tracing::warn!(plugin = %id, tool = %d.name, "the tool's parameter schema is not JSON ({e}); listing it as any object");
                            serde_json::json!({"type": "object"})
                        });
                        let name: String = d.name.into();
                        ToolInfo { plugin: id.clone(), call_name: name.clone(), name, description: d.description.into(), parameters }
                    })
                    .collect();
                Some((tools, infos))
            })
            .collect()
    }

    /// Every tool of every loaded tool plugin, in plugin load order.
    pub fn tools(&self) -> Vec<ToolInfo> {
        let mut tools: Vec<ToolInfo> = self.tool_plugins().into_iter().flat_map(|(_, infos)| infos).collect();
        let shared: Vec<bool> = tools.iter().map(|t| tools.iter().filter(|o| o.name == t.name).count() > 1).collect();
        for (tool, shared) in tools.iter_mut().zip(shared) {
            if shared {
                tool.call_name = tool.qualified_name();
            }
        }
        tools
    }

    /// The plugin and tool `name` means: a tool's own name when one plugin offers it, else
    /// `plugin.name`.
    fn find_tool(&self, name: &str) -> Result<(Tools, ToolInfo)> {
        let all: Vec<(Tools, ToolInfo)> =
            self.tool_plugins().into_iter().flat_map(|(tools, infos)| infos.into_iter().map(move |i| (tools.clone(), i))).collect();
        let mut exact: Vec<&(Tools, ToolInfo)> = all.iter().filter(|(_, i)| i.name == name).collect();
        if exact.len() > 1 {
            let candidates = exact.iter().map(|(_, i)| i.qualified_name()).collect();
            return Err(Error::AmbiguousTool { name: name.to_owned(), candidates });
        }
        if exact.is_empty() {
            exact = all.iter().filter(|(_, i)| i.qualified_name() == name).collect();
        }
        match exact.first() {
            Some(found) => Ok((*found).clone()),
            None => Err(Error::UnknownTool { name: name.to_owned(), known: all.iter().map(|(_, i)| i.qualified_name()).collect() }),
        }
    }

    /// Run tool `name` (its own name, or `plugin.name`) with `arguments` (a JSON object),
    /// waiting at most `timeout` for the answer.
    ///
    /// Errors: [`Error::UnknownTool`], [`Error::AmbiguousTool`], [`Error::ToolArguments`]
    /// (not an object), [`Error::ToolTimeout`], [`Error::ToolsBusy`], and [`Error::Plugin`]
    /// when the plugin refuses the call (e.g. `InvalidInput`: arguments it cannot use).
    pub fn call_tool(&self, name: &str, arguments: &Value, timeout: Duration) -> Result<ToolResult> {
        let (tools, info) = self.find_tool(name)?;
        if !arguments.is_object() {
            return Err(Error::ToolArguments { tool: info.qualified_name(), got: json_type(arguments) });
        }
        let place = Place::take()?;
        let (tx, rx) = mpsc::sync_channel(1);
        let (tool, json) = (info.name.clone(), arguments.to_string());
        let started = Instant::now();
        std::thread::Builder::new()
            .name(format!("tool {}", info.qualified_name()))
            .spawn(move || {
                let _place = place;
                // The receiver may have stopped waiting: then the answer is dropped.
                let _ = tx.send(tools.execute(&tool, &json));
            })
            .map_err(|e| Error::plugin(&info.plugin, PluginError::internal(format!("cannot start the tool call's thread: {e}"))))?;
        let answer = match rx.recv_timeout(timeout) {
            Ok(answer) => answer?,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                tracing::warn!(tool = %info.qualified_name(), ?timeout, "tool call timed out; it goes on in the background");
                return Err(Error::ToolTimeout { tool: info.qualified_name(), after: timeout });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::plugin(&info.plugin, PluginError::internal("the tool call ended without an answer")));
            }
        };
        tracing::debug!(tool = %info.qualified_name(), is_error = answer.is_error, elapsed = ?started.elapsed(), "tool call");
        Ok(ToolResult { plugin: info.plugin, name: info.name, content: answer.content.into(), is_error: answer.is_error })
    }
}
