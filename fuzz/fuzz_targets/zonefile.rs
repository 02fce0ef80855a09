//! Any text as a master file: the loader returns a zone or errors, never panics; a zone that
//! loads has its SOA.
#![no_main]

use anyns_wire::Name;
use anyns_zone::load_zone_text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Name::from_text("fuzz.test.").expect("static name");
    if let Ok(built) = load_zone_text(&origin, "fuzz.zone", text) {
        assert!(built.zone.soa().is_some());
    }
});
