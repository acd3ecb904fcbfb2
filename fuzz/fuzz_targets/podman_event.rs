//! One line of podman's events stream, decoded as the events source decodes it: no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podkeeper::trigger::PodmanEvent;

fuzz_target!(|data: &[u8]| {
    if let Some(Ok(ev)) = PodmanEvent::from_line(data) {
        // What the reactor reads of every event.
        let _ = (ev.name(), ev.label(podkeeper::APP_LABEL), ev.identity());
        // Record writes events back out: that must not fail either.
        let json = serde_json::to_string(&ev).expect("an event read can be written");
        let again: PodmanEvent = serde_json::from_str(&json).expect("and read back");
        assert_eq!(again.identity(), ev.identity());
    }
});
