//! The recording (fixture) reader on any text: no panic, and every file path stays inside its directory.
#![no_main]

use std::path::Component;

use libfuzzer_sys::fuzz_target;
use podkeeper::replay::{Fixture, Recorded};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(fixture) = Fixture::parse(text) {
        let _ = fixture.duration();
        for r in &fixture.records {
            if let Recorded::AppsDir(f) | Recorded::UnitDir(_, f) = &r.what {
                assert!(f
                    .path
                    .components()
                    .all(|c| matches!(c, Component::Normal(_))));
                assert!(f.path.components().count() <= 1);
            }
        }
    }
});
