//! A model's Jinja chat template, rendered with minijinja.
//!
//! Templates are the ones in model files (`tokenizer.chat_template`), written for
//! Hugging Face's Python Jinja: minijinja-contrib's `pycompat` supplies the Python
//! string and dict methods they call (`.strip()`, `.split()`, `.items()`, ...), and this
//! module adds the two functions `transformers` provides, `raise_exception` and
//! `strftime_now`. Rendering is bounded (fuel), so a template cannot loop forever.
//!
//! [`ChatTemplate::render_parts`] keeps template text and message content apart: each
//! content is replaced by a unique marker before rendering, and the markers are then
//! cut out, so the plugin can read control-token spellings in the template's text and
//! never in what a user wrote.

use minijinja::{value::Serde, Environment, Error as JinjaError, ErrorKind as JinjaErrorKind, Value as JinjaValue};
use rustai_abi::{PromptPart, RString};
use serde_json::Value;

/// Template instructions one render may execute (far above any real template).
const FUEL: u64 = 50_000_000;

/// A compiled chat template and the special tokens it is rendered with.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    /// Compile `source`; the error is minijinja's syntax error, with its line.
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<Self, String> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_fuel(Some(FUEL));
        // As `transformers` renders them: blocks swallow the newline after them and the
        // whitespace before them on their line.
        let syntax = minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build().map_err(|e| describe(&e))?;
        env.set_syntax(syntax);
        env.add_function("raise_exception", |msg: String| -> Result<JinjaValue, JinjaError> {
            Err(JinjaError::new(JinjaErrorKind::InvalidOperation, msg))
        });
        env.add_function("strftime_now", |format: String| -> Result<JinjaValue, JinjaError> { Ok(JinjaValue::from(strftime_now(&format))) });
        env.add_template_owned("chat", source.to_owned()).map_err(|e| describe(&e))?;
        Ok(Self { env, source: source.to_owned(), bos: bos.to_owned(), eos: eos.to_owned() })
    }

    /// The template's source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Render `messages` (OpenAI-shaped message objects) with `tools` (OpenAI-shaped
    /// `{"type":"function","function":{...}}` objects, or none).
    pub fn render(&self, messages: &[Value], tools: Option<&[Value]>, add_generation_prompt: bool) -> Result<String, String> {
        let template = self.env.get_template("chat").map_err(|e| describe(&e))?;
        let ctx = minijinja::context! {
            messages => JinjaValue::from(Serde(messages)),
            tools => tools.map(|t| JinjaValue::from(Serde(t))),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos.as_str(),
            eos_token => self.eos.as_str(),
        };
        template.render(ctx).map_err(|e| describe(&e))
    }

    /// [`Self::render`] as prompt parts: the `content` of each message is plain text,
    /// everything else the template's. The parts always join to exactly what
    /// [`Self::render`] gives: contents are found by rendering with a unique marker in
    /// their place; when a template rewrites content (trims it, say), each content (or
    /// its trimmed form) is looked for in order in the plain rendering instead; and when
    /// even that fails, the whole prompt is one template part.
    pub fn render_parts(&self, messages: &[Value], tools: Option<&[Value]>, add_generation_prompt: bool) -> Result<Vec<PromptPart>, String> {
        let plain = self.render(messages, tools, add_generation_prompt)?;
        let nonce = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        let mark = |i: usize| format!("\u{E000}{nonce}:{i}\u{E001}");
        let mut contents = Vec::new();
        let marked: Vec<Value> = messages
            .iter()
            .map(|m| {
                let mut m = m.clone();
                if let Some(Value::String(text)) = m.get_mut("content") {
                    let i = contents.len();
                    contents.push(std::mem::replace(text, mark(i)));
                }
                m
            })
            .collect();
        let rendered = self.render(&marked, tools, add_generation_prompt)?;
        let mut spots = Vec::with_capacity(contents.len());
        for i in 0..contents.len() {
            let m = mark(i);
            match (rendered.find(&m), rendered.rfind(&m)) {
                (Some(a), Some(b)) if a == b => spots.push((a, a + m.len(), contents[i].as_str())),
                _ => return Ok(find_in_order(&plain, &contents)),
            }
        }
        spots.sort_unstable_by_key(|s| s.0);
        let parts = split(&rendered, &spots);
        if parts.iter().map(|p| p.text.as_str()).collect::<String>() == plain {
            Ok(parts)
        } else {
            Ok(find_in_order(&plain, &contents))
        }
    }

    /// Whether the template reads the `tools` variable (renders tool definitions itself).
    pub fn takes_tools(&self) -> bool {
        let s = &self.source;
        s.contains("tools") && (s.contains("tools is") || s.contains("if tools") || s.contains("tools |") || s.contains("tools|") || s.contains("in tools"))
    }
}

/// `text` cut at `spots` (start, end, content): the content replaces each spot.
fn split(text: &str, spots: &[(usize, usize, &str)]) -> Vec<PromptPart> {
    let (mut parts, mut at) = (Vec::new(), 0usize);
    for &(start, end, content) in spots {
        if start > at {
            parts.push(part(text[at..start].to_owned(), true));
        }
        if !content.is_empty() {
            parts.push(part(content.to_owned(), false));
        }
        at = end;
    }
    if at < text.len() {
        parts.push(part(text[at..].to_owned(), true));
    }
    parts
}

/// Each content (as written, or trimmed) found in order in `plain` is plain text; a content
/// the template rewrote beyond that stays inside the template's text.
fn find_in_order(plain: &str, contents: &[String]) -> Vec<PromptPart> {
    let mut spots = Vec::with_capacity(contents.len());
    let mut from = 0usize;
    for c in contents {
        let c = if plain[from..].contains(c.as_str()) { c.as_str() } else { c.trim() };
        if c.is_empty() {
            continue;
        }
        if let Some(i) = plain[from..].find(c) {
            spots.push((from + i, from + i + c.len(), c));
            from += i + c.len();
        }
    }
    split(plain, &spots)
}

fn part(text: String, special: bool) -> PromptPart {
    PromptPart { text: RString::from(text), special }
}

/// minijinja's error with its detail and line, on one line.
fn describe(e: &JinjaError) -> String {
    let mut s = match e.detail() {
        Some(d) if e.kind() == JinjaErrorKind::InvalidOperation => d.to_owned(),
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        s.push_str(&format!(" (template line {line})"));
    }
    s
}

/// `strftime_now(format)`: the current UTC date and time with the `strftime` fields
/// chat templates use (`%d %b %B %Y %y %m %H %M %S %j %A %a %%`); written here, as
/// the only date code the engine needs.
fn strftime_now(format: &str) -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format_utc(secs, format)
}

fn format_utc(secs: u64, format: &str) -> String {
    const MONTHS: [&str; 12] = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    const DAYS: [&str; 7] = ["Thursday", "Friday", "Saturday", "Sunday", "Monday", "Tuesday", "Wednesday"];
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's published algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cumulative[(month - 1) as usize] + day + i64::from(leap && month > 2);
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let month_name = MONTHS[(month - 1) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('b') => out.push_str(&month_name[..3]),
            Some('B') => out.push_str(month_name),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year % 100)),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('H') => out.push_str(&format!("{:02}", rem / 3600)),
            Some('M') => out.push_str(&format!("{:02}", rem / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", rem % 60)),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('A') => out.push_str(weekday),
            Some('a') => out.push_str(&weekday[..3]),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_chatml_with_content_apart() {
        let t = ChatTemplate::new(CHATML, "<|im_start|>", "<|im_end|>").unwrap();
        let msgs = [json!({"role": "user", "content": "Hi <|im_start|>"})];
        let parts = t.render_parts(&msgs, None, true).unwrap();
        let joined: String = parts.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(joined, t.render(&msgs, None, true).unwrap());
        assert!(joined.ends_with("<|im_start|>user\nHi <|im_start|><|im_end|>\n<|im_start|>assistant\n"));
        let content: Vec<_> = parts.iter().filter(|p| !p.special).map(|p| p.text.as_str()).collect();
        assert_eq!(content, ["Hi <|im_start|>"]);
    }

    #[test]
    fn templates_that_trim_content_still_keep_it_apart() {
        let t = ChatTemplate::new("{% for m in messages %}[{{ m.role }}] {{ m.content | trim }}\n{% endfor %}", "", "").unwrap();
        let msgs = [json!({"role": "user", "content": "  a <|x|>  "}), json!({"role": "assistant", "content": "b"})];
        let parts = t.render_parts(&msgs, None, false).unwrap();
        assert_eq!(parts.iter().map(|p| p.text.as_str()).collect::<String>(), "[user] a <|x|>\n[assistant] b\n");
        let content: Vec<_> = parts.iter().filter(|p| !p.special).map(|p| p.text.as_str()).collect();
        assert_eq!(content, ["a <|x|>", "b"]);
    }

    #[test]
    fn python_methods_and_raise_exception_work() {
        let src = "{% for m in messages %}{{ m.content.strip().upper() }}{% if m.role == 'bad' %}{{ raise_exception('roles must alternate') }}{% endif %}{% endfor %}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        assert_eq!(t.render(&[json!({"role": "user", "content": "  hi "})], None, false).unwrap(), "HI");
        let err = t.render(&[json!({"role": "bad", "content": "x"})], None, false).unwrap_err();
        assert!(err.contains("roles must alternate"), "{err}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = ChatTemplate::new("line one\n{% for x in %}", "", "").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn endless_templates_run_out_of_fuel() {
        let t = ChatTemplate::new("{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}", "", "").unwrap();
        assert!(t.render(&[], None, false).is_err());
    }

    #[test]
    fn dates_format_like_strftime() {
        // Checked against Python's `datetime.strftime`.
        assert_eq!(format_utc(1_722_085_509 - 86_400 * 2, "%d %b %Y, %A %H:%M:%S %j %B %y %m %%"), "25 Jul 2024, Thursday 13:05:09 207 July 24 07 %");
        assert_eq!(format_utc(951_782_400, "%d %b %Y, %A %j"), "29 Feb 2000, Tuesday 060");
    }
}
