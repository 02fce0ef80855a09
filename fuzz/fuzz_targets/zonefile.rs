//! Any text as a master file: the loader returns a zone or errors, never panics; a zone that
//! loads has its SOA.
#![no_main]

use anyns_wire::Name;
use anyns_zone::load_zone_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    // The loader turns a panic inside domain's scanner into an error (see crates/zone/src/
    // file.rs), but libfuzzer-sys's panic hook aborts before anything is caught: put back the
    // default hook, which only prints. A panic that escapes the loader still fails the run:
    // libfuzzer-sys catches it around every input and aborts.
    init: drop(std::panic::take_hook()),
    |data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let origin = Name::from_text("fuzz.test.").expect("static name");
        if let Ok(built) = load_zone_text(&origin, "fuzz.zone", text) {
            assert!(built.zone.soa().is_some());
        }
    }
);
