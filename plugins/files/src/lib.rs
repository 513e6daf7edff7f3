//! The `files` plugin: tools `read_file {path}` and `list_dir {path}` that read only inside
//! the folders set in `plugins.toml` (`config`: `[files] roots = [..]`, `max_bytes`,
//! `max_entries`). `confine` checks every path (no `..`, no absolute path outside a root,
//! no symbolic link out of one); `ops` reads (text only, long files cut with a note) and
//! lists (capped, with a note). A refused path, an unreadable file, or arguments without a
//! string `path` are the tool's answer (`is_error`); arguments that are not JSON are
//! `InvalidInput`.
//! Without roots every call answers, as a tool error, how to configure them.

pub mod config;
pub mod confine;
pub mod ops;

use std::sync::{Arc, PoisonError, RwLock};

use rustai_plugin::serde_json::{self, json, Value};
use rustai_plugin::{
    Capabilities, Category, Families, Plugin, PluginError, PluginExport, PluginInfo, RResult, RStr, RVec, ResourceRequirements,
    ToolDefinition, ToolOutput, ToolPlugin,
};

use crate::config::Settings;

/// The plugin: the settings in force (replaced as a whole by `init`).
#[derive(Debug, Default)]
pub struct Files {
    settings: RwLock<Arc<Settings>>,
}

impl Files {
    fn settings(&self) -> Arc<Settings> {
        Arc::clone(&self.settings.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Run tool `name` with `args`: the content, or why not (a message for the model).
    fn run(&self, name: &str, args: &Value) -> Result<String, String> {
        let requested = match args.get("path") {
            Some(Value::String(path)) => path.as_str(),
            Some(other) => return Err(format!("`path` must be a string, not {other}")),
            None => return Err("argument `path` (a string) is required".to_owned()),
        };
        let settings = self.settings();
        let path = confine::resolve(&settings, requested).map_err(|e| e.to_string())?;
        let done = if name == "read_file" { ops::read_file(&settings, &path, requested) } else { ops::list_dir(&settings, &path, requested) };
        done.map_err(|e| e.to_string())
    }
}

impl Plugin for Files {
    fn info(&self) -> PluginInfo {
        PluginInfo {
            capabilities: Capabilities::default(),
            resources: ResourceRequirements { min_memory_mb: 1, recommended_memory_mb: 8, cores: 1, ..Default::default() },
            ..PluginInfo::new("Files", Category::Tool).describe("Read files and list folders, inside the folders set in plugins.toml")
        }
    }

    fn init(&self, config_json: RStr<'_>) -> RResult<(), PluginError> {
        match Settings::from_json(config_json.as_str()) {
            Ok(settings) => {
                *self.settings.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(settings);
                RResult::ROk(())
            }
            Err(why) => RResult::RErr(PluginError::invalid_input(why)),
        }
    }
}

fn tool(name: &str, description: &str, path: &str) -> ToolDefinition {
    let schema = json!({
        "type": "object",
        "properties": {"path": {"type": "string", "description": path}},
        "required": ["path"]
    });
    ToolDefinition { name: name.into(), description: description.into(), parameters_schema: schema.to_string().into() }
}

impl ToolPlugin for Files {
    fn tools(&self) -> RVec<ToolDefinition> {
        let max_bytes = self.settings().max_bytes;
        RVec::from(vec![
            tool(
                "read_file",
                &format!("Read a UTF-8 text file from the folders the user allowed. Files over {max_bytes} bytes are cut, with a note."),
                "The file: relative to an allowed folder, or absolute inside one; `..` is not allowed",
            ),
            tool(
                "list_dir",
                "List a folder among those the user allowed: one entry per line, `name/` for folders, `name (N bytes)` for files.",
                "The folder: relative to an allowed folder (\"\" or \".\" for the first one), or absolute inside one",
            ),
        ])
    }

    fn execute(&self, name: RStr<'_>, arguments_json: RStr<'_>) -> RResult<ToolOutput, PluginError> {
        if !matches!(name.as_str(), "read_file" | "list_dir") {
            return RResult::RErr(PluginError::not_found(format!("no tool named `{name}` (this plugin has read_file and list_dir)")));
        }
        let args: Value = match serde_json::from_str(arguments_json.as_str()) {
            Ok(args) => args,
            Err(e) => return RResult::RErr(PluginError::invalid_input(format!("arguments are not JSON: {e}"))),
        };
        RResult::ROk(match self.run(name.as_str(), &args) {
            Ok(content) => ToolOutput { content: content.into(), is_error: false },
            Err(why) => ToolOutput { content: why.into(), is_error: true },
        })
    }
}

impl PluginExport for Files {
    fn create() -> Result<Self, PluginError> {
        Ok(Self::default())
    }

    fn families(this: &Arc<Self>) -> Families {
        Families::default().with_tool(Arc::clone(this))
    }
}

rustai_plugin::export_plugin!(Files, id = "files");

#[cfg(test)]
mod tests {
    use rustai_plugin::ErrorKind;

    use super::*;

    #[test]
    fn the_guarded_instance_reads_inside_its_roots_only() {
        let (root, outside) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(root.path().join("notes.txt"), "remember the milk").unwrap();
        std::fs::write(outside.path().join("secret.txt"), "s").unwrap();

        let instance = rustai_plugin::export::instantiate::<Files>().unwrap();
        instance.plugin.init("{}".into()).unwrap();
        let tool = instance.tool.into_option().unwrap();
        let names: Vec<String> = tool.tools().iter().map(|t| t.name.to_string()).collect();
        assert_eq!(names, ["read_file", "list_dir"]);

        // No roots: a tool error that says how to configure them.
        let out = tool.execute("read_file".into(), r#"{"path": "notes.txt"}"#.into()).unwrap();
        assert!(out.is_error && out.content.contains("roots = "), "{}", out.content);

        let config = json!({"roots": [root.path()], "max_bytes": 4}).to_string();
        instance.plugin.init(config.as_str().into()).unwrap();
        let call = |name: &str, path: &str| tool.execute(name.into(), json!({ "path": path }).to_string().as_str().into()).unwrap();
        let out = call("read_file", "notes.txt");
        assert!(!out.is_error && out.content.starts_with("reme\n\n[truncated"), "{}", out.content);
        assert_eq!(call("list_dir", "").content.as_str(), "notes.txt (17 bytes)");
        assert!(call("read_file", "../x").is_error);
        assert!(call("read_file", outside.path().join("secret.txt").to_str().unwrap()).is_error);

        assert!(instance.plugin.init(r#"{"roots": [], "extra": 1}"#.into()).is_err());
        for (bad, says) in [("[]", "is required"), ("{}", "is required"), (r#"{"path": 1}"#, "must be a string")] {
            let out = tool.execute("list_dir".into(), bad.into()).unwrap();
            assert!(out.is_error && out.content.contains(says), "{bad}: {}", out.content);
        }
        assert_eq!(tool.execute("list_dir".into(), "{".into()).unwrap_err().kind, ErrorKind::InvalidInput);
        assert_eq!(tool.execute("write_file".into(), "{}".into()).unwrap_err().kind, ErrorKind::NotFound);
    }
}
