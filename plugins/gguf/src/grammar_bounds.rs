//! Bounds on grammars and JSON schemas, checked in Rust before llama.cpp sees
//! them. llama.cpp's GBNF parser and its schema-to-grammar converter recurse once
//! per nesting level (a deep enough input overflows the stack, which no handler
//! can catch) and expand repetitions into rules (a large count costs minutes
//! and gigabytes). Everything here is iterative and linear in the input, and
//! each refusal names the limit.

use rustai_plugin::serde_json;
use rustai_plugin::PluginError;
use serde_json::Value;

/// Deepest nesting of groups in a GBNF grammar (`(`, `[` and quotes do not nest further).
pub(crate) const MAX_GBNF_NESTING: usize = 32;
/// Most rules in a GBNF grammar.
pub(crate) const MAX_GBNF_RULES: usize = 2048;
/// Largest repetition count in a GBNF `{m,n}`.
pub(crate) const MAX_GBNF_REPEAT: u64 = 1000;
/// Deepest nesting of objects and arrays in a JSON schema.
pub(crate) const MAX_SCHEMA_DEPTH: usize = 24;
/// Most JSON values in a schema.
pub(crate) const MAX_SCHEMA_NODES: usize = 5000;
/// Largest count in `minLength`, `maxItems` and their kin.
pub(crate) const MAX_SCHEMA_COUNT: u64 = 1000;
/// Longest regular expression in a `pattern`, in bytes.
pub(crate) const MAX_PATTERN_BYTES: usize = 512;
/// Deepest group nesting in a `pattern`.
pub(crate) const MAX_PATTERN_NESTING: usize = 16;

fn refuse(message: String) -> PluginError {
    PluginError::invalid_input(message)
}

/// A grammar given by the client: size is bounded by `SamplingParams::validate`; check its structure.
pub(crate) fn check_gbnf(text: &str) -> Result<(), PluginError> {
    check_gbnf_structure(text)
}

/// Nesting depth, rule count and repetition counts of a GBNF grammar, in one pass.
pub(crate) fn check_gbnf_structure(text: &str) -> Result<(), PluginError> {
    let bytes = text.as_bytes();
    let (mut depth, mut rules, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            quote @ (b'"' | b'[') => {
                // A literal or a character class: skip to its end, honouring escapes.
                let close = if quote == b'"' { b'"' } else { b']' };
                i += 1;
                while i < bytes.len() && bytes[i] != close {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'(' => {
                depth += 1;
                if depth > MAX_GBNF_NESTING {
                    return Err(refuse(format!("the grammar nests groups deeper than {MAX_GBNF_NESTING} levels")));
                }
            }
            b')' => depth = depth.saturating_sub(1),
            b':' if bytes[i..].starts_with(b"::=") => {
                rules += 1;
                if rules > MAX_GBNF_RULES {
                    return Err(refuse(format!("the grammar has more than {MAX_GBNF_RULES} rules")));
                }
                i += 2;
            }
            b'{' => i = repetition(text, i, MAX_GBNF_REPEAT, "the grammar")?,
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The `{m}`, `{m,}` or `{m,n}` repetition opening at byte `open` of `text`: every count must
/// be at most `max`. Returns the byte index of the closing `}` (or the end of the text).
fn repetition(text: &str, open: usize, max: u64, what: &str) -> Result<usize, PluginError> {
    let end = text.as_bytes()[open..].iter().position(|&b| b == b'}').map_or(text.len(), |p| open + p);
    for n in text[open + 1..end].split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if n.parse::<u64>().map_or(true, |v| v > max) {
            return Err(refuse(format!("{what} repeats `{{{n}}}` times; at most {max} are allowed")));
        }
    }
    Ok(end)
}

/// The counting keywords a schema may bound, whose values become repetitions.
const COUNTS: &[&str] = &["minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "minContains", "maxContains"];

/// Size, depth, counts and patterns of a JSON schema, walked without recursion.
pub(crate) fn check_schema(text: &str) -> Result<(), PluginError> {
    // serde_json refuses nesting beyond 128 levels without overflowing the stack.
    let schema: Value = serde_json::from_str(text).map_err(|e| refuse(format!("the JSON schema is not valid JSON: {e}")))?;
    if !schema.is_object() && !schema.is_boolean() {
        return Err(refuse("the JSON schema must be an object".into()));
    }
    let mut stack = vec![(&schema, 0usize, None::<&str>)];
    let mut nodes = 0usize;
    while let Some((v, depth, key)) = stack.pop() {
        nodes += 1;
        if nodes > MAX_SCHEMA_NODES {
            return Err(refuse(format!("the JSON schema has more than {MAX_SCHEMA_NODES} values")));
        }
        if depth > MAX_SCHEMA_DEPTH {
            return Err(refuse(format!("the JSON schema nests deeper than {MAX_SCHEMA_DEPTH} levels")));
        }
        match (key, v) {
            (Some(k), Value::Number(n)) if COUNTS.contains(&k) => match n.as_u64() {
                Some(c) if c <= MAX_SCHEMA_COUNT => {}
                _ => return Err(refuse(format!("`{k}: {n}` in the JSON schema is over the limit of {MAX_SCHEMA_COUNT}"))),
            },
            (Some("pattern"), Value::String(p)) => check_pattern(p)?,
            (Some("$ref"), Value::String(r)) if !r.starts_with('#') => {
                return Err(refuse(format!("`$ref: {r}`: only references within the schema (`#/...`) are supported")));
            }
            _ => {}
        }
        match v {
            // Keys of `properties` / `$defs` are names, not keywords: do not treat them as such.
            Value::Object(map) => {
                let names = matches!(key, Some("properties" | "$defs" | "definitions" | "patternProperties"));
                stack.extend(map.iter().map(|(k, child)| (child, depth + 1, if names { None } else { Some(k.as_str()) })));
            }
            Value::Array(items) => stack.extend(items.iter().map(|child| (child, depth + 1, None))),
            _ => {}
        }
    }
    Ok(())
}

/// A `pattern`: bounded size and nesting, and no constructs a grammar cannot express.
fn check_pattern(p: &str) -> Result<(), PluginError> {
    if p.len() > MAX_PATTERN_BYTES {
        return Err(refuse(format!("a `pattern` of {} bytes; at most {MAX_PATTERN_BYTES} are allowed", p.len())));
    }
    let unsupported = |what: &str| refuse(format!("`pattern` {p:?} uses {what}, which a grammar cannot express"));
    let bytes = p.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    return Err(unsupported("a back-reference"));
                }
                i += 1;
            }
            b'(' => {
                if bytes[i + 1..].starts_with(b"?=") || bytes[i + 1..].starts_with(b"?!") || bytes[i + 1..].starts_with(b"?<") {
                    return Err(unsupported("a look-around"));
                }
                depth += 1;
                if depth > MAX_PATTERN_NESTING {
                    return Err(refuse(format!("`pattern` nests groups deeper than {MAX_PATTERN_NESTING} levels")));
                }
            }
            b')' => depth = depth.saturating_sub(1),
            b'[' => {
                // A character class: `{`, `(` and `)` are literal inside it.
                i += 1;
                while i < bytes.len() && bytes[i] != b']' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' => i = repetition(p, i, MAX_SCHEMA_COUNT, "`pattern`")?,
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(r: Result<(), PluginError>) -> String {
        r.unwrap_err().message.to_string()
    }

    #[test]
    fn ordinary_grammars_and_schemas_pass() {
        check_gbnf("root ::= \"yes\" | \"no\" # answer\nitem ::= [a-z(]{1,10} (\",\" item)*").unwrap();
        check_schema(r#"{"type":"object","properties":{"name":{"type":"string","maxLength":40},"tags":{"type":"array","items":{"type":"string"},"maxItems":5}},"required":["name"]}"#).unwrap();
        check_schema(r#"{"type":"string","pattern":"^[a-z]{2,8}(-[0-9]+)?$"}"#).unwrap();
        // A property named like a keyword is a name, not a count.
        check_schema(r#"{"type":"object","properties":{"maxLength":{"type":"integer"}}}"#).unwrap();
    }

    #[test]
    fn deep_nesting_is_refused_without_recursion() {
        let deep = format!("root ::= {}\"x\"{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(refused(check_gbnf(&deep)).contains("deeper than 32"));
        let mut schema = String::from(r#"{"type":"string"}"#);
        for _ in 0..100 {
            schema = format!(r#"{{"type":"array","items":{schema}}}"#);
        }
        assert!(refused(check_schema(&schema)).contains("nests deeper"));
        // Past serde_json's own limit: still a clean refusal.
        let deeper = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
        assert!(refused(check_schema(&deeper)).contains("not valid JSON"));
    }

    #[test]
    fn huge_counts_are_refused() {
        assert!(refused(check_gbnf("root ::= \"a\"{0,1000000}")).contains("at most 1000"));
        assert!(refused(check_schema(r#"{"type":"string","maxLength":100000000}"#)).contains("maxLength"));
        assert!(refused(check_schema(r#"{"type":"array","minItems":5000}"#)).contains("minItems"));
        assert!(refused(check_schema(r#"{"type":"string","pattern":"a{1,99999}"}"#)).contains("repeats"));
        let many = format!(r#"{{"enum":[{}]}}"#, vec!["1"; 6000].join(","));
        assert!(refused(check_schema(&many)).contains("5000 values"));
        let rules: String = (0..3000).map(|i| format!("r{i} ::= \"x\"\n")).collect();
        assert!(refused(check_gbnf(&rules)).contains("rules"));
    }

    #[test]
    fn inexpressible_patterns_and_remote_refs_are_named() {
        assert!(refused(check_schema(r#"{"type":"string","pattern":"(?=a)b"}"#)).contains("look-around"));
        assert!(refused(check_schema(r#"{"type":"string","pattern":"(a)\\1"}"#)).contains("back-reference"));
        assert!(refused(check_schema(r#"{"$ref":"https://example.invalid/s.json"}"#)).contains("$ref"));
        assert!(refused(check_schema("[1,2]")).contains("must be an object"));
    }
}
