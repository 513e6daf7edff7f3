//! Typed access to a plugin's [`ToolPlugin`](rustai_abi::ToolPlugin).

use std::sync::Arc;

use rustai_abi::{ToolBox, ToolDefinition, ToolOutput};

use crate::{
    error::{Error, Result},
    plugins::{FamilyKind, LoadedPlugin, PluginManager},
};

impl PluginManager {
    /// The `ToolPlugin` family of plugin `id` (its current instance).
    pub fn tools(&self, id: &str) -> Result<Tools> {
        let plugin = self.with_family(id, FamilyKind::Tool)?;
        Ok(Tools::new(plugin).expect("checked by with_family"))
    }
}

/// The tools of one plugin instance.
#[derive(Debug, Clone)]
pub struct Tools {
    plugin: Arc<LoadedPlugin>,
}

impl Tools {
    /// The tools of `plugin`, when it implements the tool family.
    pub fn new(plugin: Arc<LoadedPlugin>) -> Option<Self> {
        plugin.instance.tool.is_some().then_some(Self { plugin })
    }

    fn api(&self) -> &ToolBox {
        self.plugin.instance.tool.as_ref().into_option().expect("checked in Tools::new")
    }

    /// The tools offered, with their JSON-schema parameters.
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        self.api().tools().into_vec()
    }

    /// Run tool `name` with a JSON arguments object.
    pub fn execute(&self, name: &str, arguments_json: &str) -> Result<ToolOutput> {
        self.api()
            .execute(name.into(), arguments_json.into())
            .into_result()
            .map_err(|e| Error::plugin(self.plugin.id(), e))
    }
}
