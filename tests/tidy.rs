//! Repository rules that are cheap to check mechanically.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use test_support::repo_root;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_starts_with_a_doc_header() {
    let mut files = Vec::new();
    for dir in ["crates", "plugins", "examples", "tests"] {
        rust_files(&repo_root().join(dir), &mut files);
    }
    assert!(files.len() > 10);
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.strip_prefix(repo_root()).unwrap().display().to_string())
        .collect();
    assert!(missing.is_empty(), "modules without a `//!` header: {missing:?}");
}

#[test]
fn no_file_is_too_long() {
    let mut files = Vec::new();
    for dir in ["crates", "plugins", "examples", "tests"] {
        rust_files(&repo_root().join(dir), &mut files);
    }
    for f in files {
        let lines = std::fs::read_to_string(&f).unwrap().lines().count();
        assert!(lines <= 600, "{} has {lines} lines; split it by concept", f.display());
    }
}

/// A crate's import graph: module paths (`""` is the root, `"a::b"` is `a/b.rs`) and, per edge,
/// the names imported.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// `src` without comments, doc comments, string and char literals.
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let (mut out, mut i) = (String::with_capacity(src.len()), 0);
    while i < c.len() {
        let raw_start = at(i) == 'r' && (i == 0 || !ident(at(i - 1)) || (at(i - 1) == 'b' && (i < 2 || !ident(at(i - 2)))));
        let hashes = if raw_start { (i + 1..c.len()).take_while(|&j| at(j) == '#').count() } else { 0 };
        if at(i) == '/' && at(i + 1) == '/' {
            while i < c.len() && at(i) != '\n' {
                i += 1;
            }
        } else if at(i) == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                let two = (at(i), at(i + 1));
                depth += i32::from(two == ('/', '*')) - i32::from(two == ('*', '/'));
                i += if two == ('/', '*') || two == ('*', '/') { 2 } else { 1 };
                if depth == 0 {
                    break;
                }
            }
            out.push(' ');
        } else if at(i) == '"' || (raw_start && at(i + 1 + hashes) == '"') {
            let raw = at(i) == 'r';
            i += if raw { hashes + 2 } else { 1 };
            while i < c.len() {
                if at(i) == '\\' && !raw {
                    i += 2;
                } else if at(i) == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                    i += hashes + 1;
                    break;
                } else {
                    i += 1;
                }
            }
            out.push_str("\"\"");
        } else if at(i) == '\'' && at(i + 1) == '\\' {
            i += 3; // an escaped char literal: '\n', '\'', '\u{..}'
            while i < c.len() && at(i) != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else if at(i) == '\'' && at(i + 1) != '\'' && at(i + 2) == '\'' {
            i += 3; // a char literal; a lifetime stays
            out.push_str("' '");
        } else {
            out.push(at(i));
            i += 1;
        }
    }
    // Test code may reach back up: drop every `#[cfg(test)]` item (a `mod tests { .. }`, a `use`).
    while let Some(start) = out.find("#[cfg(test)]") {
        let after = start + "#[cfg(test)]".len();
        let (brace, semi) = (out[after..].find('{'), out[after..].find(';'));
        let end = match (brace, semi) {
            (Some(b), s) if s.is_none_or(|s| b < s) => {
                let mut depth = 0;
                let close = out[after + b..].char_indices().find(|&(_, ch)| {
                    depth += i32::from(ch == '{') - i32::from(ch == '}');
                    depth == 0
                });
                close.map_or(out.len(), |(k, _)| after + b + k + 1)
            }
            (_, Some(s)) => after + s + 1,
            _ => out.len(),
        };
        out.replace_range(start..end, " ");
    }
    out
}

/// Every path in `code` starting with `crate::`, `super::` or `self::`, `use` trees expanded
/// into one path per leaf.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut tokens: Vec<&str> = Vec::new();
    let mut rest = code;
    while let Some(ch) = rest.chars().next() {
        let len = if ch.is_alphanumeric() || ch == '_' {
            rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len())
        } else if rest.starts_with("::") {
            2
        } else {
            ch.len_utf8()
        };
        if !ch.is_whitespace() {
            tokens.push(&rest[..len]);
        }
        rest = &rest[len..];
    }
    let mut out = Vec::new();
    for k in 0..tokens.len() {
        let starts = matches!(tokens[k], "crate" | "super" | "self") && tokens.get(k + 1) == Some(&"::");
        if starts && (k == 0 || tokens[k - 1] != "::") {
            use_tree(&tokens, k, Vec::new(), &mut out);
        }
    }
    out
}

/// Reads `a::b::{c, d::{e as f, *}}` from `t[k]` on, under `prefix`; returns where it ended.
fn use_tree(t: &[&str], mut k: usize, mut prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    loop {
        match t.get(k) {
            Some(&"{") => {
                k += 1;
                loop {
                    match t.get(k) {
                        None => return k,
                        Some(&"}") => return k + 1,
                        Some(&",") => k += 1,
                        Some(_) => {
                            k = use_tree(t, k, prefix.clone(), out);
                            while t.get(k).is_some_and(|x| *x != "," && *x != "}") {
                                k += 1; // `as name`, `*`
                            }
                        }
                    }
                }
            }
            Some(s) if s.starts_with(|c: char| c.is_alphanumeric() || c == '_') => prefix.push(s.to_string()),
            _ => break,
        }
        k += 1;
        if t.get(k) != Some(&"::") {
            break;
        }
        k += 1;
    }
    if !prefix.is_empty() {
        out.push(prefix);
    }
    k
}

/// The modules that module `from` (source `src`) imports, among `modules`, with the names: a path
/// resolves to its longest prefix that is a module. Ancestors (the root, a parent `mod.rs`: they
/// re-export) and descendants (a parent declares and re-exports its subtree) do not count.
fn imports(from: &str, src: &str, modules: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
    let inside = |a: &str, b: &str| b.is_empty() || a == b || a.starts_with(&format!("{b}::"));
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    'paths: for path in paths(&strip(src)) {
        let mut base: Vec<&str> = from.split("::").filter(|s| !s.is_empty()).collect();
        let mut segs = Vec::new();
        for (i, seg) in path.iter().enumerate() {
            match seg.as_str() {
                "crate" if i == 0 => base.clear(),
                "super" if segs.is_empty() => {
                    if base.pop().is_none() {
                        continue 'paths;
                    }
                }
                "self" => {}
                _ => segs.push(seg.as_str()),
            }
        }
        let found = (0..=segs.len()).rev().find_map(|n| {
            let m = base.iter().chain(&segs[..n]).copied().collect::<Vec<_>>().join("::");
            modules.contains(&m).then_some((m, n))
        });
        let Some((to, n)) = found else { continue };
        if !inside(from, &to) && !inside(&to, from) {
            out.entry(to).or_default().insert(segs.get(n).unwrap_or(&"self").to_string());
        }
    }
    out
}

/// The import graph of the crate whose sources are in `src`, test modules left out.
fn import_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut module_files = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap().with_extension("");
        let rel: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        if rel.iter().any(|c| c == "tests") || rel.first().is_some_and(|c| c == "bin") {
            continue;
        }
        let module = match rel.as_slice() {
            [root] if root == "lib" || root == "main" => String::new(),
            [dirs @ .., last] if last == "mod" => dirs.join("::"),
            all => all.join("::"),
        };
        module_files.insert(module, f);
    }
    let modules: BTreeSet<String> = module_files.keys().cloned().collect();
    module_files.iter().map(|(m, f)| (m.clone(), imports(m, &std::fs::read_to_string(f).unwrap(), &modules))).collect()
}

/// Strongly connected components with more than one module (Tarjan).
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, (usize, usize)>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'g>(w: &mut Walk<'g>, v: &'g str) {
        let n = w.index.len();
        w.index.insert(v, (n, n));
        w.stack.push(v);
        for to in w.graph[v].keys() {
            let low = match w.index.get(to.as_str()) {
                None => {
                    visit(w, to);
                    w.index[to.as_str()].1
                }
                Some(&(i, _)) if w.stack.contains(&to.as_str()) => i,
                Some(_) => continue,
            };
            let entry = w.index.get_mut(v).unwrap();
            entry.1 = entry.1.min(low);
        }
        if w.index[v].0 == w.index[v].1 {
            let at = w.stack.iter().rposition(|&s| s == v).unwrap();
            let scc: Vec<String> = w.stack.drain(at..).map(str::to_owned).collect();
            if scc.len() > 1 {
                w.found.push(scc);
            }
        }
    }
    let mut w = Walk { graph, index: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for v in graph.keys() {
        if !w.index.contains_key(v.as_str()) {
            visit(&mut w, v);
        }
    }
    w.found
}

/// The shortest circle from `start` back to it inside `scc`: `[start, .., start]`.
fn shortest_circle<'g>(graph: &'g Graph, scc: &[String], start: &str) -> Vec<&'g str> {
    let start = graph.get_key_value(start).expect("a module of the graph").0.as_str();
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front().filter(|_| !prev.contains_key(start)) {
        for to in graph[v].keys().filter(|t| scc.contains(t)) {
            if !prev.contains_key(to.as_str()) {
                prev.insert(to, v);
                queue.push_back(to);
            }
        }
    }
    let mut circle = vec![start, prev[start]];
    while circle.last() != Some(&start) {
        circle.push(prev[circle.last().unwrap()]);
    }
    circle.reverse();
    circle
}

#[test]
fn no_import_circles_between_modules() {
    let (mut found, mut edges) = (Vec::new(), 0);
    for dir in ["crates", "plugins", "examples"] {
        for krate in std::fs::read_dir(repo_root().join(dir)).unwrap().flatten() {
            let graph = import_graph(&krate.path().join("src"));
            edges += graph.values().map(BTreeMap::len).sum::<usize>();
            let name = krate.path().strip_prefix(repo_root()).unwrap().display().to_string();
            let mut seen = BTreeSet::new();
            for scc in circles(&graph) {
                for start in &scc {
                    let mut circle = shortest_circle(&graph, &scc, start);
                    circle.pop();
                    let first = (0..circle.len()).min_by_key(|&i| circle[i]).unwrap();
                    circle.rotate_left(first);
                    circle.push(circle[0]);
                    if seen.insert(circle.clone()) {
                        let hops: Vec<_> = circle.windows(2).map(|h| {
                            let names: Vec<_> = graph[h[0]][h[1]].iter().map(String::as_str).collect();
                            format!("\n    {} -> {}: {}", h[0], h[1], names.join(", "))
                        }).collect();
                        found.push(format!("{name}: {}{}", circle.join(" -> "), hops.concat()));
                    }
                }
            }
        }
    }
    assert!(edges > 50, "only {edges} imports between modules found: is the parser broken?");
    assert!(found.is_empty(), "modules import each other in a circle; make the dependency run one way:\n{}", found.join("\n"));
}

#[test]
fn the_import_parser_reads_use_trees_and_inline_paths_but_not_comments_strings_or_tests() {
    let modules: BTreeSet<String> = ["", "a", "a::b", "c", "d", "e", "f", "f::g", "f::h"].map(String::from).into();
    let src = r##"//! Mentions crate::e::Doc.
use crate::{
    a::b::{X,
        Y as Why},
    d::{self, Z},
};
// use crate::e::Gone;
/* use crate::e::Gone; /* nested */ crate::e::Gone */
fn f<'a>(c: char, s: &'a str) -> bool {
    let _ = ("crate::e::InString \" crate::e::Escaped", r#"crate::e::Raw"#, b'"');
    c == '"' && c != '\'' && crate::a::g(s) && crate::a::b::Y::<u8>::new()
}
#[cfg(test)]
mod tests {
    use crate::e::Test;
}
"##;
    let got = imports("c", src, &modules);
    let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let want = BTreeMap::from([
        ("a".to_string(), names(&["g"])),
        ("a::b".to_string(), names(&["X", "Y"])),
        ("d".to_string(), names(&["self", "Z"])),
    ]);
    assert_eq!(got, want);
    // `super::` climbs; ancestors, descendants and the module itself do not count.
    let src = "use super::h::H;\nuse super::Parent;\nuse self::inner::Q;\nfn x() { super::super::c::C::new(); }";
    assert_eq!(imports("f::g", src, &modules), BTreeMap::from([("c".into(), names(&["C"])), ("f::h".into(), names(&["H"]))]));
    assert!(imports("f", "pub use self::g::G;\nuse crate::f::h::H;\nuse crate::Root;", &modules).is_empty());
    // Circles: a <-> b is one, c only points into it.
    let graph: Graph = [("a", "b"), ("b", "a"), ("c", "a")]
        .into_iter()
        .map(|(from, to)| (from.to_string(), BTreeMap::from([(to.to_string(), names(&["N"]))])))
        .collect();
    assert_eq!(circles(&graph), vec![vec!["a".to_string(), "b".to_string()]]);
    assert_eq!(shortest_circle(&graph, &["a".into(), "b".into()], "b"), ["b", "a", "b"]);
}
