//! What can be known of a companion's unit file without systemd: not empty, bounded, no NUL, and the section its kind needs.
//!
//! Quadlet generates nothing from a `.container` file without a `[Container]`
//! section (and so on for each kind); such a unit would cost a
//! `daemon-reload` on every retry and never start. The name is checked with
//! the app id rule, which only allows characters valid in a unit name.

use super::limits::{human, MAX_UNIT_BYTES};
use super::CompanionKind;

impl CompanionKind {
    /// The section Quadlet reads for this kind: `[Container]`, `[Volume]`, …
    pub fn section(self) -> &'static str {
        match self {
            CompanionKind::Container => "[Container]",
            CompanionKind::Volume => "[Volume]",
            CompanionKind::Network => "[Network]",
            CompanionKind::Pod => "[Pod]",
            CompanionKind::Kube => "[Kube]",
            CompanionKind::Image => "[Image]",
            CompanionKind::Build => "[Build]",
        }
    }
}

/// Why a unit file of this kind cannot work, in words for the `unit` field.
pub fn check_unit(kind: CompanionKind, unit: &str) -> Result<(), String> {
    let section = kind.section();
    let ext = kind.extension();
    if unit.trim().is_empty() {
        return Err(format!(
            "is empty (allowed: the .{ext} file's contents, with a {section} section)"
        ));
    }
    if unit.len() > MAX_UNIT_BYTES {
        return Err(format!(
            "is {} bytes (allowed: at most {})",
            unit.len(),
            human(MAX_UNIT_BYTES as u64)
        ));
    }
    if unit.contains('\0') {
        return Err("contains a NUL byte (allowed: text)".into());
    }
    // systemd's section headers are whole lines, case-sensitive.
    if !unit.lines().any(|l| l.trim() == section) {
        return Err(format!(
            "has no {section} section (a .{ext} unit needs one: Quadlet generates no service without it)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_should_need_its_own_section() {
        for kind in CompanionKind::ALL {
            let ok = format!("[Unit]\nDescription=x\n\n{}\nKey=v\n", kind.section());
            assert_eq!(check_unit(kind, &ok), Ok(()), "{kind:?}");
            let e = check_unit(kind, "[Unit]\nDescription=x\n").unwrap_err();
            assert!(e.contains(kind.section()), "{e}");
        }
        assert!(
            check_unit(CompanionKind::Volume, "[volume]\n").is_err(),
            "case matters"
        );
    }

    #[test]
    fn an_empty_oversized_or_binary_unit_should_be_refused() {
        let e = check_unit(CompanionKind::Container, " \n\t\n").unwrap_err();
        assert!(e.starts_with("is empty"), "{e}");
        let big = format!("[Container]\n#{}\n", "x".repeat(MAX_UNIT_BYTES));
        assert!(check_unit(CompanionKind::Container, &big)
            .unwrap_err()
            .contains("at most 64 KiB"));
        let e = check_unit(CompanionKind::Container, "[Container]\nImage=a\0b\n").unwrap_err();
        assert!(e.contains("NUL"), "{e}");
    }
}
