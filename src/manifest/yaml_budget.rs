//! A first pass over a manifest's YAML with libyaml's own event stream: nesting depth, node count and expanded size (every use of an alias counted) are bounded before serde_yaml builds anything.
//!
//! serde_yaml cannot be asked to stop early: it reads a whole document into a
//! list of events before deserializing (1 MiB of one-letter list items is half
//! a million events, about 100 MB), replays an alias's events every time the
//! alias is used (500 uses of a 1 MB anchored string deserialize to 500 MB),
//! and libyaml's scanner does work proportional to the flow nesting depth on
//! every token (`[[[[…` is quadratic: 50 KB took 1.9 s). Here events are
//! pulled one at a time and dropped at once, and the pass stops at the first
//! bound exceeded, so it costs time linear in what it read and memory for the
//! anchors' table only. Because it runs the libyaml serde_yaml runs, it sees
//! exactly the nesting and aliases serde_yaml would see; a guess from bytes
//! (brackets outside quotes) can be fooled, e.g. by a quote in a block scalar.
//!
//! Why libyaml through `unsafe` calls and not a safe event parser
//! (saphyr-parser, yaml-rust2): the pass is only sound if it sees the events
//! serde_yaml will see. Those parsers are other implementations of YAML
//! (1.2, where libyaml is a 1.1 parser with its own limits), and where the
//! two disagree the budget checks a document serde_yaml never reads. Two
//! ways that breaks the bound: a document the safe parser refuses part-way
//! (a tab, a key form, a directive libyaml accepts) ends the pass without a
//! verdict, and serde_yaml then builds the whole of it unchecked; refusing
//! such documents instead would turn manifests valid today invalid. And the
//! cost to bound is libyaml's own (its scanner's per-token work in deep
//! flow nesting): another scanner's work on the same bytes says nothing of
//! it. So the pass stays on the libyaml serde_yaml runs, pinned to the same
//! version (Cargo.toml), its `unsafe` confined to this file, each block with
//! its reason, and fuzzed (`fuzz/fuzz_targets/manifest.rs`). A swap of
//! serde_yaml for a safe parser would take this pass with it, onto that parser.

use std::collections::HashMap;
use std::ffi::CStr;
use std::mem::MaybeUninit;

use unsafe_libyaml as unsafe_yaml;

/// The bounds of one pass.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub max_depth: usize,
    pub max_nodes: u64,
    pub max_bytes: u64,
}

/// Which bound a document exceeded, and the line (1-based) where it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exceeded {
    Depth {
        line: u64,
        limit: usize,
    },
    Nodes {
        line: u64,
        limit: u64,
    },
    Bytes {
        line: u64,
        limit: u64,
    },
    /// An alias used inside the node its anchor names: an endless value.
    Cycle {
        line: u64,
    },
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exceeded::Depth { line, limit } => write!(
                f,
                "nested more than {limit} levels deep at line {line} (aliases included)"
            ),
            Exceeded::Nodes { line, limit } => write!(
                f,
                "more than {limit} values by line {line}, counting every use of an alias"
            ),
            Exceeded::Bytes { line, limit } => write!(
                f,
                "text values add up to more than {} by line {line}, counting every use of an alias",
                super::limits::human(*limit)
            ),
            Exceeded::Cycle { line } => write!(
                f,
                "an alias at line {line} is used inside the value its anchor names (an endless value)"
            ),
        }
    }
}

/// What a node (or a subtree) costs once expanded.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    nodes: u64,
    bytes: u64,
    /// Levels below and including this node.
    depth: usize,
}

/// An open sequence or mapping.
struct Frame {
    cost: Cost,
    anchor: Option<Vec<u8>>,
}

/// Walk `text`'s events and stop at the first bound exceeded. A YAML syntax
/// error ends the pass without a verdict: serde_yaml reads the same events up
/// to the same error and reports it in its own words, having loaded no more
/// than this pass allowed.
pub fn check(text: &str, budget: &Budget) -> Result<(), Exceeded> {
    let Some(mut parser) = Parser::new(text.as_bytes()) else {
        return Ok(());
    };
    let mut anchors: HashMap<Vec<u8>, Cost> = HashMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut total = Cost::default();
    while let Some(event) = parser.next() {
        let line = event.line + 1;
        // The cost this event adds where it stands.
        let added = match event.kind {
            Kind::End => break,
            Kind::Other => continue,
            Kind::Start => {
                stack.push(Frame {
                    cost: Cost {
                        nodes: 1,
                        bytes: 0,
                        depth: 1,
                    },
                    anchor: event.anchor,
                });
                if stack.len() > budget.max_depth {
                    return Err(Exceeded::Depth {
                        line,
                        limit: budget.max_depth,
                    });
                }
                total.nodes += 1;
                if total.nodes > budget.max_nodes {
                    return Err(Exceeded::Nodes {
                        line,
                        limit: budget.max_nodes,
                    });
                }
                continue;
            }
            Kind::Scalar(len) => {
                let cost = Cost {
                    nodes: 1,
                    bytes: len,
                    depth: 1,
                };
                if let Some(anchor) = event.anchor {
                    anchors.insert(anchor, cost);
                }
                cost
            }
            Kind::Alias => {
                let name = event.anchor.as_deref().unwrap_or_default();
                // serde_yaml takes an anchor as defined where its node begins:
                // an alias inside that node would replay it inside itself.
                if stack.iter().any(|f| f.anchor.as_deref() == Some(name)) {
                    return Err(Exceeded::Cycle { line });
                }
                // An anchor not defined yet: serde_yaml refuses it; one node here.
                anchors.get(name).copied().unwrap_or(Cost {
                    nodes: 1,
                    bytes: 0,
                    depth: 1,
                })
            }
            Kind::Close => {
                let Some(frame) = stack.pop() else { continue };
                if let Some(anchor) = frame.anchor {
                    anchors.insert(anchor, frame.cost);
                }
                // Its nodes and bytes were counted into `total` as they came.
                if let Some(parent) = stack.last_mut() {
                    parent.cost.nodes = parent.cost.nodes.saturating_add(frame.cost.nodes);
                    parent.cost.bytes = parent.cost.bytes.saturating_add(frame.cost.bytes);
                    parent.cost.depth = parent.cost.depth.max(frame.cost.depth + 1);
                }
                continue;
            }
        };
        if stack.len() + added.depth > budget.max_depth {
            return Err(Exceeded::Depth {
                line,
                limit: budget.max_depth,
            });
        }
        total.nodes = total.nodes.saturating_add(added.nodes);
        total.bytes = total.bytes.saturating_add(added.bytes);
        if total.nodes > budget.max_nodes {
            return Err(Exceeded::Nodes {
                line,
                limit: budget.max_nodes,
            });
        }
        if total.bytes > budget.max_bytes {
            return Err(Exceeded::Bytes {
                line,
                limit: budget.max_bytes,
            });
        }
        if let Some(parent) = stack.last_mut() {
            parent.cost.nodes = parent.cost.nodes.saturating_add(added.nodes);
            parent.cost.bytes = parent.cost.bytes.saturating_add(added.bytes);
            parent.cost.depth = parent.cost.depth.max(added.depth + 1);
        }
    }
    Ok(())
}

/// The part of an event this pass needs.
struct Event {
    kind: Kind,
    anchor: Option<Vec<u8>>,
    /// 0-based.
    line: u64,
}

enum Kind {
    /// A sequence or mapping begins.
    Start,
    /// A sequence or mapping ends.
    Close,
    /// A scalar of this many bytes.
    Scalar(u64),
    Alias,
    /// The stream ended, or libyaml reported an error.
    End,
    /// Stream and document starts and ends.
    Other,
}

/// A libyaml parser over a borrowed input, pulled one event at a time.
///
/// The parser lives in a box because libyaml keeps a pointer to it (its read
/// handler's data) and to the input: neither may move while it parses.
struct Parser<'input> {
    sys: Box<MaybeUninit<unsafe_yaml::yaml_parser_t>>,
    _input: std::marker::PhantomData<&'input [u8]>,
}

impl<'input> Parser<'input> {
    fn new(input: &'input [u8]) -> Option<Self> {
        let mut sys = Box::new(MaybeUninit::<unsafe_yaml::yaml_parser_t>::uninit());
        // SAFETY: `sys` is a fresh allocation libyaml initializes; on failure
        // it has freed what it allocated and the box is dropped uninitialized
        // (MaybeUninit never drops its content). The input outlives the
        // parser (the lifetime), and neither moves (the box, the borrow).
        unsafe {
            let parser = sys.as_mut_ptr();
            if unsafe_yaml::yaml_parser_initialize(parser).fail {
                return None;
            }
            unsafe_yaml::yaml_parser_set_encoding(parser, unsafe_yaml::YAML_UTF8_ENCODING);
            unsafe_yaml::yaml_parser_set_input_string(parser, input.as_ptr(), input.len() as u64);
        }
        Some(Parser {
            sys,
            _input: std::marker::PhantomData,
        })
    }

    /// The next event; None on an error (libyaml produces nothing after one:
    /// the caller stops there).
    fn next(&mut self) -> Option<Event> {
        let mut raw = MaybeUninit::<unsafe_yaml::yaml_event_t>::uninit();
        // SAFETY: the parser was initialized in `new`. yaml_parser_parse fills
        // `raw` only when it succeeds; every pointer read below belongs to that
        // event (NUL-terminated anchors, `length` bytes of scalar value) and is
        // copied out before yaml_event_delete frees it.
        unsafe {
            let parser = self.sys.as_mut_ptr();
            if unsafe_yaml::yaml_parser_parse(parser, raw.as_mut_ptr()).fail {
                return None;
            }
            let ev = raw.as_mut_ptr();
            let anchor = |p: *mut u8| -> Option<Vec<u8>> {
                (!p.is_null()).then(|| CStr::from_ptr(p.cast()).to_bytes().to_vec())
            };
            let (kind, anchor) = match (*ev).type_ {
                unsafe_yaml::YAML_STREAM_END_EVENT => (Kind::End, None),
                unsafe_yaml::YAML_SCALAR_EVENT => (
                    Kind::Scalar((*ev).data.scalar.length),
                    anchor((*ev).data.scalar.anchor),
                ),
                unsafe_yaml::YAML_ALIAS_EVENT => (Kind::Alias, anchor((*ev).data.alias.anchor)),
                unsafe_yaml::YAML_SEQUENCE_START_EVENT => {
                    (Kind::Start, anchor((*ev).data.sequence_start.anchor))
                }
                unsafe_yaml::YAML_MAPPING_START_EVENT => {
                    (Kind::Start, anchor((*ev).data.mapping_start.anchor))
                }
                unsafe_yaml::YAML_SEQUENCE_END_EVENT | unsafe_yaml::YAML_MAPPING_END_EVENT => {
                    (Kind::Close, None)
                }
                _ => (Kind::Other, None),
            };
            let line = (*ev).start_mark.line;
            unsafe_yaml::yaml_event_delete(ev);
            Some(Event { kind, anchor, line })
        }
    }
}

impl Drop for Parser<'_> {
    fn drop(&mut self) {
        // SAFETY: initialized in `new` (a failed initialization never builds a Parser).
        unsafe { unsafe_yaml::yaml_parser_delete(self.sys.as_mut_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Budget = Budget {
        max_depth: 8,
        max_nodes: 100,
        max_bytes: 1000,
    };

    #[test]
    fn a_plain_manifest_should_pass() {
        let text =
            "app:\n  id: web\n  container:\n    image: x\n    env: {A: b}\n    command: [a, b]\n";
        assert_eq!(check(text, &B), Ok(()));
    }

    #[test]
    fn deep_flow_nesting_should_stop_at_the_bound() {
        let text = format!("a: {}{}\n", "[".repeat(9), "]".repeat(9));
        assert_eq!(check(&text, &B), Err(Exceeded::Depth { line: 1, limit: 8 }));
        let ok = format!("a: {}{}\n", "[".repeat(6), "]".repeat(6));
        assert_eq!(check(&ok, &B), Ok(()));
    }

    #[test]
    fn deep_block_nesting_should_stop_at_the_bound() {
        let text = format!("a:\n{}x\n", "- ".repeat(10));
        assert!(matches!(check(&text, &B), Err(Exceeded::Depth { .. })));
    }

    #[test]
    fn brackets_inside_a_block_scalar_should_not_count_but_real_ones_after_a_stray_quote_should() {
        // A byte scan that skips "quoted" text would skip the real nesting here.
        let deep = format!("{}{}", "[".repeat(20), "]".repeat(20));
        let text = format!("a: |\n  'unterminated [[[[[[[[[[\nb: {deep}\nc: \"'\"\n");
        assert_eq!(check(&text, &B), Err(Exceeded::Depth { line: 3, limit: 8 }));
        let text = "a: |\n  [[[[[[[[[[[[[[[[[[[[[[ not YAML, text\n";
        assert_eq!(check(text, &B), Ok(()));
    }

    #[test]
    fn every_use_of_an_alias_should_count() {
        let s = "x".repeat(300);
        let text = format!("a: &s {s}\nb: [*s, *s]\n");
        assert_eq!(check(&text, &B), Ok(()), "900 bytes expanded");
        let text = format!("a: &s {s}\nb: [*s, *s, *s]\n");
        assert_eq!(
            check(&text, &B),
            Err(Exceeded::Bytes {
                line: 2,
                limit: 1000
            })
        );
    }

    #[test]
    fn a_billion_laughs_should_stop_early() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (prev, name) in ["a", "b", "c", "d", "e", "f", "g"]
            .windows(2)
            .map(|w| (w[0], w[1]))
        {
            text.push_str(&format!(
                "{name}: &{name} [{}]\n",
                vec![format!("*{prev}"); 10].join(", ")
            ));
        }
        assert!(matches!(
            check(&text, &B),
            Err(Exceeded::Nodes { line: 2, .. })
        ));
    }

    #[test]
    fn an_alias_to_a_deep_anchor_should_count_its_depth() {
        let text = "a: &a [[[[[x]]]]]\nb: [[[*a]]]\n";
        assert!(matches!(
            check(text, &B),
            Err(Exceeded::Depth { line: 2, .. })
        ));
    }

    #[test]
    fn an_alias_inside_its_own_anchor_should_be_a_cycle() {
        let text = "a: &a [x, *a]\n";
        assert_eq!(check(text, &B), Err(Exceeded::Cycle { line: 1 }));
        // An anchor defined again names the new node from where it begins.
        let text = "a: &a [x]\nb: &a {k: *a}\n";
        assert_eq!(check(text, &B), Err(Exceeded::Cycle { line: 2 }));
        assert_eq!(check("a: &a [x]\nb: [*a]\n", &B), Ok(()));
    }

    #[test]
    fn broken_yaml_should_be_left_to_serde_yaml() {
        assert_eq!(check("a: [\n", &B), Ok(()));
        assert_eq!(check("\0\0\u{7f}", &B), Ok(()));
    }
}
