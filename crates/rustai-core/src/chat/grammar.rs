//! A GBNF grammar for tool calls, built from the tools' JSON schemas, so a model's
//! call always parses: the format's markup (see [`super::format`]) around a JSON object
//! whose `name` is one of the tools and whose arguments follow that tool's schema.
//!
//! The schema translation covers what tool schemas use: `type` (one or a list),
//! `properties` with `required` (properties in the schema's order, the optional ones
//! optional), `items`, `enum`, `const`, `anyOf`/`oneOf`, `minLength`/`maxLength`.
//! Anything else (`$ref`, `allOf`, `pattern`, numeric bounds) is left to any JSON value
//! or number here and checked by schema validation after generation
//! ([`super::format::validate_call`]). Nesting is bounded; everything is iterative per
//! level and named rules keep group nesting shallow (the plugin re-checks the bounds).
//!
//! Written here; llama.cpp's converter was read for the GBNF conventions only.

use std::collections::BTreeMap;

use serde_json::Value;

use super::ToolSpec;

/// Deepest schema nesting translated (deeper parts become "any JSON value").
const MAX_DEPTH: usize = 12;
/// Longest `maxLength` kept as a bound (longer ones are unbounded in the grammar).
const MAX_BOUNDED_LENGTH: u64 = 500;

/// How a format writes a list of calls: `prefix call (separator call)* suffix`, with
/// each call a JSON object `{"name": ..., "<args_key>": {...}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallShape {
    /// Before the first call.
    pub prefix: &'static str,
    /// Between calls (only with parallel calls).
    pub separator: &'static str,
    /// After the last call.
    pub suffix: &'static str,
    /// The key of the arguments object (`arguments`, or `parameters` for Llama 3).
    pub args_key: &'static str,
}

/// The grammar of one call of one of `tools`, or several when `parallel`, in `shape`.
pub fn tool_calls(tools: &[ToolSpec], shape: &CallShape, parallel: bool) -> String {
    let mut g = Grammar::default();
    let mut alternatives = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        let args = g.value(&tool.parameters, &format!("tool{i}-args"), 0);
        let rule = format!("tool{i}-call");
        let body = format!(
            r#""{{" ws "\"name\"" ws ":" ws {} ws "," ws {} ws ":" ws {args} ws "}}""#,
            literal(&Value::String(tool.name.clone()).to_string()),
            literal(&format!("\"{}\"", shape.args_key)),
        );
        g.define(&rule, body);
        alternatives.push(rule);
    }
    g.define("call", alternatives.join(" | "));
    let repeat = if parallel { format!(" ({} call)*", flexible(shape.separator)) } else { String::new() };
    let root = format!("{} call{repeat} {}", flexible(shape.prefix), flexible(shape.suffix));
    g.define("root", root.trim().to_owned());
    g.finish()
}

/// Markup as grammar text where each line break may be any short whitespace (`ws`), so a
/// model that writes `<tool_call>{` instead of `<tool_call>\n{` stays inside the grammar.
fn flexible(markup: &str) -> String {
    let pieces: Vec<String> = markup.split('\n').map(|p| if p.is_empty() { String::new() } else { literal(p) }).collect();
    let mut out: Vec<String> = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        if i > 0 {
            out.push("ws".to_owned());
        }
        if !p.is_empty() {
            out.push(p.clone());
        }
    }
    out.join(" ")
}

/// Rules by name, in the order defined; the primitive ones added on first use.
#[derive(Default)]
struct Grammar {
    rules: BTreeMap<String, String>,
    order: Vec<String>,
}

impl Grammar {
    fn define(&mut self, name: &str, body: String) {
        if self.rules.insert(name.to_owned(), body).is_none() {
            self.order.push(name.to_owned());
        }
    }

    /// A primitive rule, defined once.
    fn primitive(&mut self, name: &'static str) -> String {
        if !self.rules.contains_key(name) {
            let body = match name {
                "ws" => r#"[ \t\n]{0,4}"#.to_owned(),
                "char" => r#"[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})"#.to_owned(),
                "string" => {
                    self.primitive("char");
                    r#""\"" char* "\"""#.to_owned()
                }
                "integer" => r#""-"? ([0-9] | [1-9] [0-9]{0,17})"#.to_owned(),
                "number" => {
                    self.primitive("integer");
                    r#"integer ("." [0-9]{1,17})? ([eE] [-+]? [0-9]{1,3})?"#.to_owned()
                }
                "boolean" => r#""true" | "false""#.to_owned(),
                "null" => r#""null""#.to_owned(),
                "value" => {
                    for p in ["string", "number", "boolean", "null", "ws"] {
                        self.primitive(p);
                    }
                    self.define("any-object", r#""{" ws (string ws ":" ws value (ws "," ws string ws ":" ws value)*)? ws "}""#.to_owned());
                    self.define("any-array", r#""[" ws (value (ws "," ws value)*)? ws "]""#.to_owned());
                    "any-object | any-array | string | number | boolean | null".to_owned()
                }
                other => unreachable!("no primitive rule {other}"),
            };
            self.define(name, body);
        }
        name.to_owned()
    }

    /// An expression matching `schema`; `name` names the rules it needs.
    fn value(&mut self, schema: &Value, name: &str, depth: usize) -> String {
        self.primitive("ws");
        let Some(obj) = schema.as_object().filter(|_| depth < MAX_DEPTH) else {
            return self.primitive("value");
        };
        if let Some(c) = obj.get("const") {
            return literal(&c.to_string());
        }
        if let Some(Value::Array(options)) = obj.get("enum") {
            if !options.is_empty() {
                return format!("({})", options.iter().map(|o| literal(&o.to_string())).collect::<Vec<_>>().join(" | "));
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(options)) = obj.get(key) {
                if !options.is_empty() {
                    let alts: Vec<String> = options.iter().enumerate().map(|(i, o)| self.value(o, &format!("{name}-{i}"), depth + 1)).collect();
                    self.define(name, alts.join(" | "));
                    return name.to_owned();
                }
            }
        }
        match obj.get("type") {
            Some(Value::String(t)) => self.typed(obj, t, name, depth),
            Some(Value::Array(types)) if !types.is_empty() => {
                let alts: Vec<String> =
                    types.iter().enumerate().map(|(i, t)| self.typed(obj, t.as_str().unwrap_or(""), &format!("{name}-{i}"), depth)).collect();
                format!("({})", alts.join(" | "))
            }
            _ if obj.contains_key("properties") => self.typed(obj, "object", name, depth),
            _ => self.primitive("value"),
        }
    }

    fn typed(&mut self, obj: &serde_json::Map<String, Value>, t: &str, name: &str, depth: usize) -> String {
        match t {
            "string" => {
                let min = obj.get("minLength").and_then(Value::as_u64).unwrap_or(0).min(MAX_BOUNDED_LENGTH);
                match obj.get("maxLength").and_then(Value::as_u64) {
                    Some(max) if max <= MAX_BOUNDED_LENGTH => {
                        self.primitive("char");
                        format!(r#""\"" char{{{min},{}}} "\"""#, max.max(min))
                    }
                    _ if min > 0 => {
                        self.primitive("char");
                        format!(r#""\"" char{{{min},}} "\"""#)
                    }
                    _ => self.primitive("string"),
                }
            }
            "integer" => self.primitive("integer"),
            "number" => self.primitive("number"),
            "boolean" => self.primitive("boolean"),
            "null" => self.primitive("null"),
            "array" => {
                let item = match obj.get("items") {
                    Some(items) => self.value(items, &format!("{name}-item"), depth + 1),
                    None => self.primitive("value"),
                };
                self.define(name, format!(r#""[" ws ({item} (ws "," ws {item})*)? ws "]""#));
                name.to_owned()
            }
            "object" => self.object(obj, name, depth),
            _ => self.primitive("value"),
        }
    }

    /// Properties in the schema's order; the required ones always, the others optional.
    fn object(&mut self, obj: &serde_json::Map<String, Value>, name: &str, depth: usize) -> String {
        let Some(Value::Object(props)) = obj.get("properties") else {
            self.primitive("value");
            return "any-object".to_owned();
        };
        if props.is_empty() {
            return r#""{" ws "}""#.to_owned();
        }
        let required: Vec<&str> = obj.get("required").and_then(Value::as_array).map_or(Vec::new(), |r| r.iter().filter_map(Value::as_str).collect());
        let mut members = Vec::new();
        for (i, (key, schema)) in props.iter().enumerate() {
            let v = self.value(schema, &format!("{name}-p{i}"), depth + 1);
            let kv = format!("{name}-kv{i}");
            self.define(&kv, format!(r#"{} ws ":" ws {v}"#, literal(&Value::String(key.clone()).to_string())));
            members.push((kv, required.contains(&key.as_str())));
        }
        // rest{i}: the members from i on, after at least one member was written.
        let n = members.len();
        let mut rest = String::new();
        for i in (0..n).rev() {
            let (kv, req) = &members[i];
            let this = if *req { format!(r#"ws "," ws {kv}"#) } else { format!(r#"(ws "," ws {kv})?"#) };
            let rule = format!("{name}-rest{i}");
            self.define(&rule, if rest.is_empty() { this } else { format!("{this} {rest}") });
            rest = rule;
        }
        // The first member written: the first required one, or any optional one before it.
        let first_required = members.iter().position(|(_, r)| *r);
        let upto = first_required.map_or(n, |f| f + 1);
        let mut starts = Vec::new();
        for (i, (kv, _)) in members.iter().enumerate().take(upto) {
            let after = if i + 1 < n { format!(" {name}-rest{}", i + 1) } else { String::new() };
            starts.push(format!("{kv}{after}"));
        }
        let body = if first_required.is_some() { format!("({})", starts.join(" | ")) } else { format!("({})?", starts.join(" | ")) };
        self.define(name, format!(r#""{{" ws {body} ws "}}""#));
        name.to_owned()
    }

    fn finish(self) -> String {
        let mut out = String::new();
        // root first, as readers expect; then the rest in definition order.
        for name in std::iter::once("root".to_owned()).chain(self.order.iter().filter(|n| *n != "root").cloned()) {
            if let Some(body) = self.rules.get(&name) {
                out.push_str(&format!("{name} ::= {body}\n"));
            }
        }
        out
    }
}

/// `text` as a GBNF string literal.
pub fn literal(text: &str) -> String {
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn weather() -> ToolSpec {
        ToolSpec {
            name: "get_weather".into(),
            description: "Weather in a city".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}}, "required": ["city"]}),
        }
    }

    #[test]
    fn a_tool_call_grammar_names_the_tool_and_its_arguments() {
        let shape = CallShape { prefix: "<tool_call>\n", separator: "\n</tool_call>\n<tool_call>\n", suffix: "\n</tool_call>", args_key: "arguments" };
        let g = tool_calls(&[weather()], &shape, false);
        assert!(g.starts_with("root ::= \"<tool_call>\" ws call ws \"</tool_call>\"\n"), "{g}");
        assert!(g.contains(r#""\"get_weather\"""#), "{g}");
        assert!(g.contains(r#"tool0-args-kv0 ::= "\"city\"" ws ":" ws string"#), "{g}");
        assert!(g.contains(r#"tool0-args-kv1 ::= "\"unit\"" ws ":" ws ("\"c\"" | "\"f\"")"#), "{g}");
        // city required, unit optional after it.
        assert!(g.contains(r#"tool0-args ::= "{" ws (tool0-args-kv0 tool0-args-rest1) ws "}""#), "{g}");
        assert!(g.contains(r#"tool0-args-rest1 ::= (ws "," ws tool0-args-kv1)?"#), "{g}");
        let parallel = tool_calls(&[weather()], &shape, true);
        assert!(parallel.starts_with("root ::= \"<tool_call>\" ws call (ws \"</tool_call>\" ws \"<tool_call>\" ws call)* ws \"</tool_call>\""), "{parallel}");
    }

    #[test]
    fn objects_without_required_members_may_be_empty_or_start_anywhere() {
        let mut g = Grammar::default();
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "boolean"}}});
        assert_eq!(g.value(&schema, "o", 0), "o");
        let text = g.finish();
        assert!(text.contains(r#"o ::= "{" ws (o-kv0 o-rest1 | o-kv1)? ws "}""#), "{text}");
    }

    #[test]
    fn deep_or_unknown_schemas_fall_back_to_any_value() {
        let mut g = Grammar::default();
        assert_eq!(g.value(&json!({"$ref": "#/x"}), "r", 0), "value");
        assert_eq!(g.value(&json!({"type": "string"}), "s", MAX_DEPTH), "value");
        assert_eq!(literal("a\"b\\c\n"), r#""a\"b\\c\n""#);
    }
}
