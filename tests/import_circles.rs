//! No two files import each other: the layout's flow runs one way, in src/ and in the bench.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A file's module path (`src/ops/state.rs` → `ops::state`; `main.rs`,
/// `lib.rs` and `mod.rs` name their directory).
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The identifiers a path written after `crate::`, `super::` or `self::` names, in order.
fn path_after(text: &str) -> Vec<String> {
    text.split("::")
        .map(|seg| {
            seg.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .take_while(|s| !s.is_empty())
        .collect()
}

/// A file's lines but comments and `#[cfg(test)]` items (a test module may
/// drive the module above it: that is no part of the flow).
fn production_lines(text: &str) -> Vec<&str> {
    let (mut out, mut lines) = (Vec::new(), text.lines());
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        if t.starts_with("#[cfg(test)]") {
            // Skip the item: up to its `;`, or to the brace closing its block.
            let mut depth = 0i32;
            for item in lines.by_ref() {
                depth += item.matches('{').count() as i32 - item.matches('}').count() as i32;
                if depth <= 0 && (item.contains('}') || item.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        out.push(line);
    }
    out
}

/// Every two-file circle under `root`: pairs of sibling-or-cousin modules
/// (neither inside the other) whose files each name the other.
fn circles(root: &Path) -> BTreeSet<(String, String)> {
    let mut list = Vec::new();
    files(root, &mut list);
    let modules: BTreeMap<Vec<String>, &Path> = list
        .iter()
        .map(|f| (module_of(root, f), f.as_path()))
        .collect();
    let known: BTreeSet<&Vec<String>> = modules.keys().collect();
    let mut edges: BTreeSet<(Vec<String>, Vec<String>)> = BTreeSet::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        for line in production_lines(&text) {
            for (prefix, base) in [
                ("crate::", Vec::new()),
                ("super::", module[..module.len().saturating_sub(1)].to_vec()),
                ("self::", module.clone()),
            ] {
                for (i, _) in line.match_indices(prefix) {
                    if line[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':') {
                        continue;
                    }
                    let rest = &line[i + prefix.len()..];
                    // `use super::{a, b::c}`: each item of the group.
                    let heads: Vec<Vec<String>> = match rest.strip_prefix('{') {
                        Some(group) => group
                            .split('}')
                            .next()
                            .unwrap_or("")
                            .split(',')
                            .map(|item| path_after(item.trim()))
                            .collect(),
                        None => vec![path_after(rest)],
                    };
                    for head in heads {
                        let mut target = base.clone();
                        let mut best = None;
                        for seg in head {
                            target.push(seg);
                            if known.contains(&target) {
                                best = Some(target.clone());
                            }
                        }
                        if let Some(t) = best {
                            edges.insert((module.clone(), t));
                        }
                    }
                }
            }
        }
    }
    let inside = |a: &Vec<String>, b: &Vec<String>| b.starts_with(a) || a.starts_with(b);
    edges
        .iter()
        .filter(|(a, b)| a < b && !inside(a, b) && edges.contains(&(b.clone(), a.clone())))
        .map(|(a, b)| (a.join("::"), b.join("::")))
        .collect()
}

#[test]
fn no_two_files_should_import_each_other() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = circles(&here.join("src"));
    found.extend(circles(&here.join("benches/podkeeper")));
    assert!(found.is_empty(), "import circles: {found:?}");
}
