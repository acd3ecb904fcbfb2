//! The manifest examples of README.md and docs/*.md, checked with `podkeeper check`.
//!
//! Every fenced `yaml` block with a top-level `app:` key is a manifest: it is
//! written into an apps directory of its own and must pass `check`. In a
//! block, a `# file: NAME` line starts another file of the same directory
//! (an example of `depends_on` needs the app it names); a block with a
//! `# check: fails` line shows an error and must be refused. No podman needed:
//! a README that shows a manifest `check` refuses is a bug a newcomer meets first.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One fenced `yaml` block that declares manifests.
#[derive(Debug)]
struct Example {
    /// `docs/manifests.md:12`, where the block starts.
    place: String,
    /// The files of its apps directory: name, text.
    files: Vec<(String, String)>,
    /// Marked `# check: fails`.
    fails: bool,
}

/// The manifest examples of one markdown text.
fn examples(place: &str, markdown: &str) -> Vec<Example> {
    let mut found = Vec::new();
    let mut block: Option<(usize, Vec<&str>)> = None;
    for (n, line) in markdown.lines().enumerate() {
        match &mut block {
            None if line.trim_end() == "```yaml" => block = Some((n + 1, Vec::new())),
            None => {}
            Some((start, lines)) if line.trim_end() == "```" => {
                if lines.iter().any(|l| l.starts_with("app:")) {
                    found.push(example(format!("{place}:{start}"), lines));
                }
                block = None;
            }
            Some((_, lines)) => lines.push(line),
        }
    }
    assert!(block.is_none(), "{place}: a ```yaml block is never closed");
    found
}

fn example(place: String, lines: &[&str]) -> Example {
    let mut files: Vec<(String, String)> = Vec::new();
    let mut fails = false;
    for line in lines {
        if let Some(name) = line.strip_prefix("# file:") {
            files.push((name.trim().to_string(), String::new()));
            continue;
        }
        if line.trim() == "# check: fails" {
            fails = true;
        }
        if files.is_empty() {
            files.push(("example.yaml".into(), String::new()));
        }
        let text = &mut files.last_mut().expect("a file").1;
        text.push_str(line);
        text.push('\n');
    }
    Example {
        place,
        files,
        fails,
    }
}

/// README.md and every docs/*.md, with their examples.
fn all_examples() -> Vec<Example> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo.join("docs"))
        .expect("read docs/")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    docs.insert(0, repo.join("README.md"));
    docs.iter()
        .flat_map(|p| {
            let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {p:?}: {e}"));
            let place = p.strip_prefix(&repo).unwrap_or(p).display().to_string();
            examples(&place, &text)
        })
        .collect()
}

/// `podkeeper check` on the example's own apps directory: `None` when the
/// verdict is the one the example expects, else what went wrong.
fn verdict_differs(ex: &Example, scratch: &Path) -> Option<String> {
    std::fs::create_dir_all(scratch).expect("create the apps directory");
    for (name, text) in &ex.files {
        std::fs::write(scratch.join(name), text).expect("write an example");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_podkeeper"))
        .args(["check", "--apps"])
        .arg(scratch)
        .output()
        .expect("run podkeeper check");
    std::fs::remove_dir_all(scratch).expect("remove the apps directory");
    let report = String::from_utf8_lossy(&out.stdout)
        .trim()
        .replace('\n', "\n    ");
    match (ex.fails, out.status.code()) {
        (false, Some(0)) | (true, Some(1)) => None,
        (false, code) => Some(format!(
            "{}: check refused it ({code:?}):\n    {report}",
            ex.place
        )),
        (true, code) => Some(format!(
            "{}: marked `# check: fails`, but check gave {code:?}:\n    {report}",
            ex.place
        )),
    }
}

fn scratch(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "podkeeper-docs-examples-{}-{tag}",
        std::process::id()
    ))
}

#[test]
fn every_manifest_example_in_the_docs_should_get_the_verdict_it_shows() {
    let all = all_examples();
    // The README's first manifest, its reference and docs/manifests.md's
    // refused typo, at least: an extractor that finds nothing checks nothing.
    assert!(
        all.len() >= 4,
        "only {} manifest examples found: {all:#?}",
        all.len()
    );
    assert!(
        all.iter().any(|e| e.fails),
        "no `# check: fails` example found"
    );
    assert!(
        all.iter().any(|e| e.files.len() > 1),
        "no `# file:` example found"
    );
    let wrong: Vec<String> = all
        .iter()
        .enumerate()
        .filter_map(|(n, ex)| verdict_differs(ex, &scratch(&n.to_string())))
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} examples:\n{}",
        wrong.len(),
        all.len(),
        wrong.join("\n")
    );
}

#[test]
fn an_example_with_the_wrong_verdict_should_be_reported() {
    let md = "text\n\n```yaml\n# check: fails\napp:\n  id: fine\n  container:\n    image: x\n```\n\n\
              ```yaml\n# file: a.yaml\napp:\n  id: a\n  depends_on: [{app: b}]\n  container: {image: x}\n\
              # file: c.yaml\napp:\n  id: c\n  container: {image: x}\n```\n\n\
              ```yaml\nnot: a manifest\n```\n";
    let found = examples("t.md", md);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[0].place, "t.md:3");
    assert_eq!(
        found[1]
            .files
            .iter()
            .map(|f| f.0.as_str())
            .collect::<Vec<_>>(),
        ["a.yaml", "c.yaml"]
    );
    let passing_marked_fails = verdict_differs(&found[0], &scratch("w0")).expect("reported");
    assert!(
        passing_marked_fails.starts_with("t.md:3: marked `# check: fails`"),
        "{passing_marked_fails}"
    );
    let missing_dependency = verdict_differs(&found[1], &scratch("w1")).expect("reported");
    assert!(
        missing_dependency.contains("check refused it"),
        "{missing_dependency}"
    );
}
