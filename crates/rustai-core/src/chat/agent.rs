//! Server-side tool execution: the steps the server and the CLI share.
//!
//! A request names tools of loaded tool plugins. Each step offers them to the model
//! (with the client's own tools, if any); the calls it makes of plugin tools are run,
//! their results appended as tool messages, and the model goes on, until it answers
//! without calling a plugin tool or the step limit is reached (the last step offers no
//! tools, so it answers). Calls of the client's own tools end the loop and go back to the
//! client, as without server-side tools.
//!
//! Which tool choice: the first step uses the request's choice, `required` when it gave
//! none (naming tools for the server to run means they are to be used; a client that
//! wants the model to decide says `auto`); later steps use `auto`.

use super::{Reply, ToolCall, ToolChoice, ToolSet, ToolSpec, Turn};

/// Default and largest step counts.
pub const DEFAULT_MAX_STEPS: usize = 4;
/// The fewest steps: one that calls, one that answers.
pub const MIN_STEPS: usize = 2;
/// The most steps a request may ask for.
pub const MAX_STEPS: usize = 16;

/// A plugin tool call the server ran.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutedCall {
    /// The call as the model made it.
    pub call: ToolCall,
    /// The plugin that ran it.
    pub plugin: String,
    /// The result text (or the error).
    pub content: String,
    /// The tool failed (its message is in `content`; the model sees it).
    pub is_error: bool,
}

/// The state of one request's tool loop.
#[derive(Debug, Clone)]
pub struct Agent {
    server_tools: Vec<ToolSpec>,
    client: ToolSet,
    first_choice: Option<ToolChoice>,
    max_steps: usize,
    step: usize,
    /// Every call run so far, in order.
    pub executed: Vec<ExecutedCall>,
}

impl Agent {
    /// A loop over `server_tools` (plugin tools) next to the client's own `client` tools;
    /// `choice` is the request's tool choice (`None`: it gave none).
    pub fn new(server_tools: Vec<ToolSpec>, client: ToolSet, choice: Option<ToolChoice>, max_steps: usize) -> Self {
        Self { server_tools, client, first_choice: choice, max_steps: max_steps.clamp(MIN_STEPS, MAX_STEPS), step: 0, executed: Vec::new() }
    }

    /// The tools and choice for the current step.
    pub fn tool_set(&self) -> ToolSet {
        let mut tools = self.client.tools.clone();
        tools.extend(self.server_tools.iter().filter(|s| !self.client.tools.iter().any(|c| c.name == s.name)).cloned());
        let choice = if self.step + 1 >= self.max_steps && self.step > 0 {
            ToolChoice::None
        } else if self.step == 0 {
            self.first_choice.clone().unwrap_or(ToolChoice::Required)
        } else {
            ToolChoice::Auto
        };
        ToolSet { tools, choice, parallel: self.client.parallel }
    }

    /// The steps taken so far.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// After a step's `reply`: run its plugin-tool calls with `run` and append the turns
    /// to `turns`. Returns `true` when another step follows, `false` when `reply` is the
    /// answer (no plugin-tool calls, a client tool was called, or the limit was reached).
    pub fn after(&mut self, reply: &Reply, turns: &mut Vec<Turn>, mut run: impl FnMut(&ToolCall) -> ExecutedCall) -> bool {
        self.step += 1;
        let is_server = |c: &ToolCall| self.server_tools.iter().any(|t| t.name == c.name) && !self.client.tools.iter().any(|t| t.name == c.name);
        if reply.tool_calls.is_empty() || !reply.tool_calls.iter().all(is_server) || self.step >= self.max_steps {
            return false;
        }
        turns.push(Turn::assistant_calls(reply.content.clone(), reply.tool_calls.clone()));
        for call in &reply.tool_calls {
            let done = run(call);
            turns.push(Turn::tool_result(call.id.clone(), call.name.clone(), done.content.clone()));
            self.executed.push(done);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn calc() -> ToolSpec {
        ToolSpec { name: "calculator".into(), description: String::new(), parameters: json!({"type": "object"}) }
    }

    #[test]
    fn the_loop_runs_calls_then_lets_the_model_answer() {
        let mut agent = Agent::new(vec![calc()], ToolSet::default(), None, 3);
        assert_eq!(agent.tool_set().choice, ToolChoice::Required);
        let call = ToolCall { id: "c".into(), name: "calculator".into(), arguments: json!({"expression": "1+1"}) };
        let mut turns = vec![Turn::new("user", "1+1?")];
        let go_on = agent.after(&Reply { content: String::new(), tool_calls: vec![call.clone()] }, &mut turns, |c| ExecutedCall {
            call: c.clone(),
            plugin: "calculator".into(),
            content: "2".into(),
            is_error: false,
        });
        assert!(go_on);
        assert_eq!(turns.len(), 3);
        assert_eq!(turns[2].content, "2");
        assert_eq!(agent.tool_set().choice, ToolChoice::Auto);
        assert!(!agent.after(&Reply { content: "It is 2.".into(), tool_calls: vec![] }, &mut turns, |_| unreachable!()));
        assert_eq!(agent.executed.len(), 1);
    }

    #[test]
    fn the_last_step_offers_no_tools_and_client_tools_end_the_loop() {
        let mut agent = Agent::new(vec![calc()], ToolSet::default(), Some(ToolChoice::Auto), 2);
        let call = ToolCall { id: "c".into(), name: "calculator".into(), arguments: json!({}) };
        let ran = |c: &ToolCall| ExecutedCall { call: c.clone(), plugin: "p".into(), content: "x".into(), is_error: false };
        assert!(agent.after(&Reply { content: String::new(), tool_calls: vec![call.clone()] }, &mut Vec::new(), ran));
        assert_eq!(agent.tool_set().choice, ToolChoice::None);
        let client = ToolSet { tools: vec![ToolSpec { name: "mine".into(), description: String::new(), parameters: json!({}) }], ..ToolSet::default() };
        let mut agent = Agent::new(vec![calc()], client, None, 4);
        let theirs = ToolCall { id: "d".into(), name: "mine".into(), arguments: json!({}) };
        assert!(!agent.after(&Reply { content: String::new(), tool_calls: vec![theirs] }, &mut Vec::new(), ran));
    }
}
