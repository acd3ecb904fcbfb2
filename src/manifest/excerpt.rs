//! Short, sanitized quotes of a file's content for error messages: a log line must never carry a whole secret or a terminal escape.
//!
//! serde_yaml's messages echo content ("unknown field `…`", "invalid type:
//! string \"…\""); a manifest that is really /etc/shadow would have its
//! lines printed. Every piece of content an error quotes goes through
//! [`excerpt`]: at most [`EXCERPT_CHARS`] characters, control characters
//! escaped.

/// The most characters of content one error quotes.
pub const EXCERPT_CHARS: usize = 40;

/// `s` cut to `max` characters (with `…`), every character that is not
/// [`printable`] escaped (`\n`, `\u{1b}`, `\u{2028}`), so it is one
/// harmless line.
pub fn excerpt(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        push_escaped(&mut out, c);
    }
    out
}

/// `s` whole, escaped as [`excerpt`] escapes: one printable line whatever
/// it holds (`a\u{2028}b`).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    if printable(c) {
        out.push(c);
    } else {
        out.extend(c.escape_default());
    }
}

/// Shown as itself and on the same line: ASCII from ' ' to '~', and the
/// other characters Rust's `{:?}` leaves as they are. Not: control
/// characters (U+0085 too), line and paragraph separators (U+2028,
/// U+2029), other spaces than ' ', format characters (bidirectional
/// overrides, zero-width), private-use and unassigned ones.
pub fn printable(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    if is_invisible(c) {
        return false;
    }
    // After a letter: `{:?}` escapes a combining mark only at the start.
    let mut pair = String::from("a");
    pair.push(c);
    pair.escape_debug().nth(1) == Some(c)
}

/// A file name as errors print it: escaped like [`excerpt`], and long names cut.
pub fn file_name(s: &str) -> String {
    excerpt(s, 255)
}

/// Bidirectional overrides and zero-width characters can make a line read
/// differently from what it says.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// A serde_yaml error message with every piece of content it quotes cut
/// down. The shapes serde and serde_yaml use are known: the content sits
/// between a fixed opening and the last `, expected` (whose tail is ours:
/// field names and types); anything else is cut at quote marks.
pub fn serde_message(msg: &str) -> String {
    // serde_yaml appends " at line L column C" (never content).
    let (body, at) = match msg.rfind(" at line ") {
        Some(i)
            if msg[i..].split_whitespace().all(|w| {
                w == "at"
                    || w == "line"
                    || w == "column"
                    || w.trim_end_matches(',').parse::<u64>().is_ok()
            }) =>
        {
            (&msg[..i], &msg[i..])
        }
        _ => (msg, ""),
    };
    for (open, close) in [
        ("unknown field `", "`, expected"),
        ("unknown field `", "`, there are no fields"),
        ("unknown variant `", "`, expected"),
        ("unknown variant `", "`, there are no variants"),
    ] {
        if let Some(rest) = body.strip_prefix(open) {
            if let Some(end) = rest.rfind(close) {
                let name = excerpt(&rest[..end], EXCERPT_CHARS);
                let tail = short_choices(&rest[..end], &rest[end + 1..]);
                return format!("{open}{name}`{tail}{at}");
            }
        }
    }
    for open in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = body.strip_prefix(open) {
            if let Some(end) = rest.rfind(", expected ") {
                return format!(
                    "{open}{}{}{at}",
                    excerpt(&rest[..end], EXCERPT_CHARS),
                    excerpt(&rest[end..], 200)
                );
            }
        }
    }
    format!("{}{at}", cut_quotes(body))
}

/// The most choices an error lists: `container` has some 30 fields, and a
/// list of them all buried the one that was meant.
const MAX_CHOICES: usize = 6;

/// `, expected one of `a`, `b`, …` as serde writes it, kept when short;
/// else cut to the choices closest to `name` (a typo's fix) and a pointer
/// to the reference.
fn short_choices(name: &str, tail: &str) -> String {
    let Some(list) = tail.strip_prefix(", expected one of ") else {
        return tail.to_string();
    };
    let choices: Vec<&str> = list.split(", ").map(|c| c.trim_matches('`')).collect();
    if choices.len() <= MAX_CHOICES {
        return tail.to_string();
    }
    let name: String = name.chars().take(EXCERPT_CHARS).collect();
    let mut near: Vec<(usize, &str)> = choices
        .iter()
        .map(|c| (distance(&name, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .collect();
    near.sort();
    let near: Vec<String> = near.iter().take(3).map(|(_, c)| format!("`{c}`")).collect();
    match near.as_slice() {
        [] => " (see docs/manifests.md for the fields)".into(),
        _ => format!(
            ", did you mean {}? (see docs/manifests.md for the fields)",
            near.join(" or ")
        ),
    }
}

/// Edit distance (Levenshtein) of two short names.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(cur)
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// Anything between quote marks (`` ` `` or `"`) cut to an excerpt, and the
/// whole message bounded, for messages of no known shape.
fn cut_quotes(msg: &str) -> String {
    let mut out = String::new();
    let mut rest = msg;
    while let Some(open) = rest.find(['`', '"']) {
        let q = rest.as_bytes()[open] as char;
        out.push_str(&excerpt(&rest[..=open], 200));
        let after = &rest[open + 1..];
        let end = after.find(q).unwrap_or(after.len());
        out.push_str(&excerpt(&after[..end], EXCERPT_CHARS));
        rest = after.get(end..).unwrap_or("");
        if let Some(r) = rest.strip_prefix(q) {
            out.push(q);
            rest = r;
        }
        if out.chars().count() > 400 {
            return excerpt(&out, 400);
        }
    }
    out.push_str(&excerpt(rest, 200));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHADOW: &str = "root:$6$rounds=5000$saltsalt$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ:19000:0:99999:7:::";

    #[test]
    fn an_excerpt_should_be_short_and_one_line() {
        assert_eq!(excerpt("abc", 40), "abc");
        assert_eq!(excerpt(&"x".repeat(50), 4), "xxxx…");
        assert_eq!(excerpt("a\nb\u{1b}[31m", 40), "a\\nb\\u{1b}[31m");
        assert_eq!(excerpt("a\u{202e}b", 40), "a\\u{202e}b");
        // Line breaks to YAML 1.1 and Unicode; other spaces; private use.
        assert_eq!(
            escape("a\u{85}b\u{2028}c\u{2029}d\u{a0}e\u{e000}\u{7f}"),
            "a\\u{85}b\\u{2028}c\\u{2029}d\\u{a0}e\\u{e000}\\u{7f}"
        );
        // Letters, combining marks and quotes stay as they are.
        assert_eq!(
            escape("Café e\u{301} 中文 \"'\\"),
            "Café e\u{301} 中文 \"'\\"
        );
    }

    #[test]
    fn an_unknown_field_should_be_quoted_short() {
        let msg = format!(
            "unknown field `{SHADOW}`, expected one of `image`, `command` at line 4 column 5"
        );
        let out = serde_message(&msg);
        assert!(
            out.starts_with("unknown field `root:$6$rounds=5000$saltsalt$"),
            "{out}"
        );
        assert!(
            out.ends_with("…`, expected one of `image`, `command` at line 4 column 5"),
            "{out}"
        );
        assert!(!out.contains("abcdefghij"), "{out}");
    }

    #[test]
    fn a_long_list_of_fields_should_become_the_closest_ones() {
        let many = "`image`, `command`, `env`, `network`, `ports`, `volumes`, `labels`, `entrypoint`, `workdir`";
        let out = serde_message(&format!(
            "unknown field `imagee`, expected one of {many} at line 4 column 5"
        ));
        assert_eq!(out, "unknown field `imagee`, did you mean `image`? (see docs/manifests.md for the fields) at line 4 column 5");
        let out = serde_message(&format!("unknown field `zzzzzzzz`, expected one of {many}"));
        assert_eq!(
            out,
            "unknown field `zzzzzzzz` (see docs/manifests.md for the fields)"
        );
        let out = serde_message(&format!("unknown field `{SHADOW}`, expected one of {many}"));
        assert!(!out.contains("abcdefghij"), "{out}");
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn an_invalid_type_should_quote_the_value_short() {
        let msg = format!(
            "invalid type: string {:?}, expected struct ManifestFile",
            format!("{SHADOW}\n{SHADOW}")
        );
        let out = serde_message(&msg);
        assert!(
            out.starts_with("invalid type: string \"root:$6$rounds"),
            "{out}"
        );
        assert!(out.ends_with("…, expected struct ManifestFile"), "{out}");
        assert!(out.len() < 120, "{out}");
    }

    #[test]
    fn a_field_name_with_backticks_should_not_escape_the_cut() {
        let msg = format!("unknown field `a`{SHADOW}`b`, expected one of `image`");
        let out = serde_message(&msg);
        assert!(!out.contains("abcdefghij"), "{out}");
    }

    #[test]
    fn messages_of_other_shapes_should_have_their_quotes_cut() {
        let out = serde_message(&format!(
            "something about \"{SHADOW}\" and `{SHADOW}` at line 1 column 2"
        ));
        assert!(!out.contains("abcdefghij"), "{out}");
        assert!(out.ends_with(" at line 1 column 2"), "{out}");
        let out = serde_message(&format!("unclosed \"{SHADOW}"));
        assert!(!out.contains("abcdefghij"), "{out}");
        let plain = "did not find expected key at line 3 column 4, while parsing a block mapping at line 1 column 1";
        assert_eq!(serde_message(plain), plain);
    }
}
