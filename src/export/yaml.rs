//! The export's YAML writer: libyaml's emitter (the one serde_yaml runs), every string styled by [`style`], so no YAML 1.1 or 1.2 parser reads one as anything else.
//!
//! serde_yaml quotes a string only when its own (YAML 1.2) reader would take
//! it for something else: `yes`, `on`, `017` or `1:20` were written bare, and
//! PyYAML and kubectl (YAML 1.1) read them as booleans and numbers. serde_yaml
//! cannot be told how to write a string, so the object goes through
//! serde_yaml's `Value` (whose mappings keep their order) and is emitted here,
//! event by event, with the same emitter settings serde_yaml uses: what was
//! safe before is written byte for byte as before.

use std::ffi::c_void;
use std::mem::MaybeUninit;
use std::ptr::{self, addr_of_mut};

use serde_yaml::Value;
use unsafe_libyaml as unsafe_yaml;

/// `value` as one YAML document (no `---`), as `serde_yaml::to_string`
/// writes it but for how strings are quoted.
pub fn to_string<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    let value = serde_yaml::to_value(value)?;
    let mut e = Emitter::new()?;
    e.emit(Event::StreamStart)?;
    e.emit(Event::DocumentStart)?;
    node(&mut e, &value)?;
    e.emit(Event::DocumentEnd)?;
    e.emit(Event::StreamEnd)?;
    Ok(String::from_utf8(e.finish())?)
}

fn node(e: &mut Emitter, value: &Value) -> anyhow::Result<()> {
    match value {
        Value::Null => e.emit(Event::Scalar("null", unsafe_yaml::YAML_PLAIN_SCALAR_STYLE)),
        Value::Bool(b) => e.emit(Event::Scalar(
            if *b { "true" } else { "false" },
            unsafe_yaml::YAML_PLAIN_SCALAR_STYLE,
        )),
        Value::Number(n) => e.emit(Event::Scalar(
            &n.to_string(),
            unsafe_yaml::YAML_PLAIN_SCALAR_STYLE,
        )),
        Value::String(s) => e.emit(Event::Scalar(s, style(s))),
        Value::Sequence(items) => {
            e.emit(Event::SequenceStart)?;
            for item in items {
                node(e, item)?;
            }
            e.emit(Event::SequenceEnd)
        }
        Value::Mapping(map) => {
            e.emit(Event::MappingStart)?;
            for (k, v) in map {
                node(e, k)?;
                node(e, v)?;
            }
            e.emit(Event::MappingEnd)
        }
        Value::Tagged(t) => anyhow::bail!("a tagged value ({}) has no place in an export", t.tag),
    }
}

/// How a string is written: the one decision every string of the export
/// (names, labels, annotations, env, args, commands, keys too) goes through.
///
/// - anything not printable (control characters, U+0085, U+2028, U+2029,
///   format and private-use characters…) but `\n`: double-quoted, where
///   libyaml escapes it (`\L`, `\x1B`), so no line of the output breaks
///   where the string does;
/// - several lines: a literal block, as serde_yaml writes it;
/// - what a parser could read as null, a boolean, a number or a date
///   ([`reads_as_other`]): single-quoted;
/// - anything else: libyaml's choice, plain unless an indicator (`- `,
///   `: `, ` #`, a leading `*`, `&`, `!`, `'`…) needs quotes.
pub fn style(s: &str) -> unsafe_yaml::yaml_scalar_style_t {
    if s.chars()
        .any(|c| c != '\n' && !crate::manifest::excerpt::printable(c))
    {
        unsafe_yaml::YAML_DOUBLE_QUOTED_SCALAR_STYLE
    } else if s.contains('\n') {
        unsafe_yaml::YAML_LITERAL_SCALAR_STYLE
    } else if reads_as_other(s) {
        unsafe_yaml::YAML_SINGLE_QUOTED_SCALAR_STYLE
    } else {
        unsafe_yaml::YAML_ANY_SCALAR_STYLE
    }
}

/// Whether `s`, written bare, could be read as anything but this string by
/// a YAML 1.1 parser (PyYAML; the go-yaml kubectl reads with) or a YAML 1.2
/// one (the core schema): null (`~`, `null`, the empty string), a boolean
/// (`y`, `n`, `yes`, `no`, `on`, `off`, `true`, `false`, in any case), a
/// merge or value key (`<<`, `=`), `.inf`, `.nan`, or a number or date of
/// any form (`0o17`, `017`, `0x1F`, `0b101`, `1_000`, `1e3`, `.5`,
/// sexagesimal `1:20`, `2001-12-14`, `2001-12-14 21:59:43.10 -5`).
///
/// Numbers and dates err on the side of quoting: any string that starts with
/// a digit (after an optional sign and dot) and holds only letters, digits,
/// `_ : . + -` and blanks is quoted, `1.2.3` and `10Mi` too. Quotes never
/// change what a string reads as; their absence can.
pub fn reads_as_other(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "" | "~" | "null" | "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "<<" | "="
    ) {
        return true;
    }
    let unsigned = lower.strip_prefix(['+', '-']).unwrap_or(&lower);
    if matches!(unsigned, ".inf" | ".nan") {
        return true;
    }
    let body = unsigned.strip_prefix('.').unwrap_or(unsigned);
    body.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '+' | '-' | ' ' | '\t')
        })
}

/// What the export emits: block collections, untagged scalars.
enum Event<'a> {
    StreamStart,
    StreamEnd,
    DocumentStart,
    DocumentEnd,
    Scalar(&'a str, unsafe_yaml::yaml_scalar_style_t),
    SequenceStart,
    SequenceEnd,
    MappingStart,
    MappingEnd,
}

/// A libyaml emitter writing into memory.
///
/// Its state lives on the heap, reached through one raw pointer only,
/// because libyaml keeps a pointer to it (its write handler's data): it
/// must not move while it emits. Freed in `drop`.
struct Emitter {
    pinned: *mut Pinned,
}

struct Pinned {
    sys: MaybeUninit<unsafe_yaml::yaml_emitter_t>,
    out: Vec<u8>,
}

impl Emitter {
    fn new() -> anyhow::Result<Self> {
        let pinned = Box::into_raw(Box::new(Pinned {
            sys: MaybeUninit::uninit(),
            out: Vec::new(),
        }));
        // SAFETY: `pinned` is a live allocation only this function holds.
        // `sys` is libyaml's to initialize; on failure it freed what it
        // allocated, and the box is freed with `sys` uninitialized
        // (MaybeUninit never drops its content). The handler's data is
        // `pinned`, which stays put until `drop` deletes the emitter.
        unsafe {
            let emitter = addr_of_mut!((*pinned).sys).cast::<unsafe_yaml::yaml_emitter_t>();
            if unsafe_yaml::yaml_emitter_initialize(emitter).fail {
                drop(Box::from_raw(pinned));
                anyhow::bail!("libyaml: cannot create an emitter");
            }
            // serde_yaml's settings: UTF-8 as it is, no line folding.
            unsafe_yaml::yaml_emitter_set_unicode(emitter, true);
            unsafe_yaml::yaml_emitter_set_width(emitter, -1);
            unsafe_yaml::yaml_emitter_set_output(emitter, write, pinned.cast());
        }
        Ok(Emitter { pinned })
    }

    fn emit(&mut self, event: Event) -> anyhow::Result<()> {
        let mut raw = MaybeUninit::<unsafe_yaml::yaml_event_t>::uninit();
        let ev = raw.as_mut_ptr();
        // SAFETY: the emitter was initialized in `new` and is deleted only
        // in `drop`. Each *_initialize copies what it is given (the scalar's
        // bytes, with their length); yaml_emitter_emit takes the event, which
        // is not used again here.
        unsafe {
            let emitter = addr_of_mut!((*self.pinned).sys).cast::<unsafe_yaml::yaml_emitter_t>();
            let made = match event {
                Event::StreamStart => unsafe_yaml::yaml_stream_start_event_initialize(
                    ev,
                    unsafe_yaml::YAML_UTF8_ENCODING,
                ),
                Event::StreamEnd => unsafe_yaml::yaml_stream_end_event_initialize(ev),
                Event::DocumentStart => unsafe_yaml::yaml_document_start_event_initialize(
                    ev,
                    ptr::null_mut(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    true,
                ),
                Event::DocumentEnd => unsafe_yaml::yaml_document_end_event_initialize(ev, true),
                Event::Scalar(value, style) => {
                    let len = i32::try_from(value.len())
                        .map_err(|_| anyhow::anyhow!("a string of {} bytes", value.len()))?;
                    unsafe_yaml::yaml_scalar_event_initialize(
                        ev,
                        ptr::null(),
                        ptr::null(),
                        value.as_ptr(),
                        len,
                        true,
                        true,
                        style,
                    )
                }
                Event::SequenceStart => unsafe_yaml::yaml_sequence_start_event_initialize(
                    ev,
                    ptr::null(),
                    ptr::null(),
                    true,
                    unsafe_yaml::YAML_ANY_SEQUENCE_STYLE,
                ),
                Event::SequenceEnd => unsafe_yaml::yaml_sequence_end_event_initialize(ev),
                Event::MappingStart => unsafe_yaml::yaml_mapping_start_event_initialize(
                    ev,
                    ptr::null(),
                    ptr::null(),
                    true,
                    unsafe_yaml::YAML_ANY_MAPPING_STYLE,
                ),
                Event::MappingEnd => unsafe_yaml::yaml_mapping_end_event_initialize(ev),
            };
            if made.fail || unsafe_yaml::yaml_emitter_emit(emitter, ev).fail {
                anyhow::bail!("libyaml cannot write this object");
            }
        }
        Ok(())
    }

    /// What was written: after `StreamEnd` libyaml has flushed it all.
    fn finish(self) -> Vec<u8> {
        // SAFETY: live until `drop`; libyaml writes only while emitting.
        unsafe { std::mem::take(&mut (*self.pinned).out) }
    }
}

impl Drop for Emitter {
    fn drop(&mut self) {
        // SAFETY: initialized in `new`, deleted and freed here only, once.
        unsafe {
            unsafe_yaml::yaml_emitter_delete(addr_of_mut!((*self.pinned).sys).cast());
            drop(Box::from_raw(self.pinned));
        }
    }
}

/// libyaml's write handler: append to the boxed buffer.
///
/// SAFETY (for libyaml): `data` is the `Pinned` set in `Emitter::new`, and
/// `buffer` holds `size` bytes.
unsafe fn write(data: *mut c_void, buffer: *mut u8, size: u64) -> i32 {
    let pinned = data.cast::<Pinned>();
    // SAFETY: as above; nothing else touches `out` while libyaml emits.
    unsafe {
        (*pinned)
            .out
            .extend_from_slice(std::slice::from_raw_parts(buffer, size as usize));
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn what_serde_yaml_wrote_safely_should_be_written_byte_for_byte_the_same() {
        let mut m = BTreeMap::new();
        m.insert("image", serde_yaml::Value::from("localhost/bb:1"));
        m.insert("note", "hello world".into());
        m.insert("multi", "two\nlines\n".into());
        m.insert("empty-list", serde_yaml::Value::Sequence(vec![]));
        m.insert(
            "list",
            serde_yaml::Value::Sequence(vec!["a".into(), 80.into()]),
        );
        m.insert("port", "8080".into());
        m.insert("dash", "- x".into());
        m.insert("flag", true.into());
        assert_eq!(to_string(&m).unwrap(), serde_yaml::to_string(&m).unwrap());
    }

    #[test]
    fn yaml_1_1_scalars_should_be_quoted_and_others_left_bare() {
        for s in [
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "N",
            "yEs",
            "true",
            "FALSE",
            "~",
            "null",
            "",
            "<<",
            "=",
            "123",
            "-1",
            "+1",
            "1.5",
            ".5",
            "1e3",
            "1_000",
            "0o17",
            "017",
            "0x1F",
            "0b101",
            ".inf",
            "-.Inf",
            ".NaN",
            "1:20",
            "2001-12-14",
            "2001-12-14 21:59:43.10 -5",
            "1.2.3",
        ] {
            assert!(reads_as_other(s), "{s:?}");
            assert_eq!(
                style(s),
                unsafe_yaml::YAML_SINGLE_QUOTED_SCALAR_STYLE,
                "{s:?}"
            );
        }
        for s in [
            "web",
            "hello world",
            "localhost/bb:1",
            "yess",
            "nope",
            "v1",
            "/bin/sh",
            "a-1",
        ] {
            assert!(!reads_as_other(s), "{s:?}");
        }
        for s in [
            "a\u{2028}b",
            "a\u{2029}b",
            "a\u{85}b",
            "tab\there",
            "\u{1b}[31m",
            "a\u{202e}b",
        ] {
            assert_eq!(
                style(s),
                unsafe_yaml::YAML_DOUBLE_QUOTED_SCALAR_STYLE,
                "{s:?}"
            );
        }
        let text = to_string(&BTreeMap::from([("yes", "on"), ("k", "a\u{2028}b")])).unwrap();
        assert_eq!(text, "k: \"a\\Lb\"\n'yes': 'on'\n");
    }
}
