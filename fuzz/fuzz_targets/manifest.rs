//! The manifest parser and validator on any bytes: no panic, bounded memory and time.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use podkeeper::manifest::excerpt::EXCERPT_CHARS;
use podkeeper::manifest::parse_manifest;

fuzz_target!(|data: &[u8]| {
    // The reader refuses what is not UTF-8 before the parser sees it.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_manifest(Path::new("fuzz.yaml"), text) {
        Ok(app) => {
            // A valid app always has a spec hash and companion file names.
            assert_eq!(app.container.hash().len(), 16);
            for c in &app.companions {
                assert!(!c.file_name().contains('/'));
            }
        }
        Err(e) => {
            // Errors stay one bounded line, whatever the content.
            let line = e.to_string();
            assert!(!line.contains('\n'), "{line}");
            assert!(line.chars().count() < 600 + 4 * EXCERPT_CHARS, "{line}");
        }
    }
});
