//! Test helper (also included by tests/export_kube.rs): YAML streams read by PyYAML, YAML 1.1 as kubectl reads it, and by serde_yaml, YAML 1.2, each as JSON.
//!
//! Anything but a string, list or mapping that PyYAML makes of a scalar —
//! a date, a float, a non-string key — comes back as a string starting with
//! `!!` and naming its type, so it never equals the string it should be.
//! Fails (never skips) when python3 or its yaml module is missing: Debian's
//! python3-yaml, which scripts/setup-host installs.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const SCRIPT: &str = r#"
import json, sys, yaml
def conv(o):
    if isinstance(o, dict):
        return {k if isinstance(k, str) else '!!%s %r' % (type(k).__name__, k): conv(v) for k, v in o.items()}
    if isinstance(o, list):
        return [conv(x) for x in o]
    if o is None or isinstance(o, (str, bool, int)):
        return o
    return '!!%s %r' % (type(o).__name__, o)
out = []
for text in json.load(sys.stdin):
    try:
        out.append({'ok': [conv(d) for d in yaml.safe_load_all(text)]})
    except yaml.YAMLError as e:
        out.append({'error': str(e)})
json.dump(out, sys.stdout)
"#;

/// Each stream's documents as PyYAML's safe loader reads them, or its error.
pub fn read_pyyaml(texts: &[String]) -> Vec<Result<Vec<Value>, String>> {
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed to read the export as YAML 1.1 (apt-get install python3-yaml; scripts/setup-host does)");
    let input = serde_json::to_vec(texts).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "python3 with PyYAML failed (apt-get install python3-yaml; scripts/setup-host does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    results
        .into_iter()
        .map(|r| match r.get("ok") {
            Some(Value::Array(docs)) => Ok(docs.clone()),
            _ => Err(r["error"].as_str().unwrap_or("?").to_string()),
        })
        .collect()
}

/// A stream's documents as serde_yaml reads them, or its error.
pub fn read_serde_yaml(text: &str) -> Result<Vec<Value>, String> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| {
            let v = serde_yaml::Value::deserialize(doc).map_err(|e| e.to_string())?;
            serde_json::to_value(v).map_err(|e| e.to_string())
        })
        .collect()
}

/// Both readers must read each stream as exactly `expected[i]`: the same
/// objects, in the same order, every string the same string.
pub fn assert_both_read(texts: &[String], expected: &[Vec<Value>]) {
    assert_eq!(texts.len(), expected.len());
    for (i, read) in read_pyyaml(texts).into_iter().enumerate() {
        assert_eq!(
            read.as_ref(),
            Ok(&expected[i]),
            "PyYAML read:\n{}",
            texts[i]
        );
        let read = read_serde_yaml(&texts[i]);
        assert_eq!(
            read.as_ref(),
            Ok(&expected[i]),
            "serde_yaml read:\n{}",
            texts[i]
        );
    }
}
