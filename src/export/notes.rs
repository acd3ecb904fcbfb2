//! What the export could not carry over as it was: one line each on stderr, never a silent drop.

use std::fmt;

/// How a field fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Left out of the export; the reason says what to do instead.
    NotExported,
    /// Exported in another form (a label written as an annotation, a volume renamed).
    Changed,
    /// Exported as it is, with something to know (e.g. a claim's guessed size).
    Note,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::NotExported => "not exported",
            Verdict::Changed => "changed",
            Verdict::Note => "note",
        }
    }
}

/// One line: what happened to which field of whom, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub verdict: Verdict,
    /// `app/web`, `companion/web-tunnel`: the reactor's key names.
    pub subject: String,
    /// The field as the user wrote it: `network: none`, `label note`, `PublishPort=80`.
    pub field: String,
    pub why: String,
}

/// Every note of one export, in the order they were found.
#[derive(Debug, Default, Clone)]
pub struct Notes {
    pub list: Vec<Note>,
}

impl Notes {
    pub fn add(
        &mut self,
        verdict: Verdict,
        subject: &str,
        field: impl Into<String>,
        why: impl Into<String>,
    ) {
        self.list.push(Note {
            verdict,
            subject: subject.to_string(),
            field: field.into(),
            why: why.into(),
        });
    }

    pub fn not_exported(
        &mut self,
        subject: &str,
        field: impl Into<String>,
        why: impl Into<String>,
    ) {
        self.add(Verdict::NotExported, subject, field, why);
    }

    pub fn changed(&mut self, subject: &str, field: impl Into<String>, why: impl Into<String>) {
        self.add(Verdict::Changed, subject, field, why);
    }

    pub fn note(&mut self, subject: &str, field: impl Into<String>, why: impl Into<String>) {
        self.add(Verdict::Note, subject, field, why);
    }

    pub fn count(&self, verdict: Verdict) -> usize {
        self.list.iter().filter(|n| n.verdict == verdict).count()
    }
}

/// Aligned columns, one note a line: what came from a manifest (a label
/// key, a value in the reason) escaped to printable text, so it neither
/// breaks the line nor reaches the terminal as a control sequence.
impl fmt::Display for Notes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::manifest::excerpt::escape;
        let rows: Vec<[String; 4]> = self
            .list
            .iter()
            .map(|n| {
                [
                    n.verdict.word().to_string(),
                    escape(&n.subject),
                    escape(&n.field),
                    escape(&n.why),
                ]
            })
            .collect();
        let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
        let (w_verdict, w_subject, w_field) = (width(0), width(1), width(2).min(28));
        for [verdict, subject, field, why] in &rows {
            writeln!(
                f,
                "{verdict:<w_verdict$}  {subject:<w_subject$}  {field:<w_field$}  {why}"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_should_print_one_aligned_line_each() {
        let mut notes = Notes::default();
        notes.not_exported("app/web", "network: none", "no pod without a network");
        notes.changed("companion/tunnel", "label a", "written as an annotation");
        let text = notes.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            "not exported  app/web           network: none  no pod without a network"
        );
        assert_eq!(
            lines[1],
            "changed       companion/tunnel  label a        written as an annotation"
        );
        assert_eq!(notes.count(Verdict::Changed), 1);
    }

    #[test]
    fn a_note_should_stay_one_printable_line() {
        let mut notes = Notes::default();
        notes.changed("app/web", "label a\u{2028}b", "\u{1b}[31mred\nnext");
        assert_eq!(
            notes.to_string(),
            "changed  app/web  label a\\u{2028}b  \\u{1b}[31mred\\nnext\n"
        );
    }
}
