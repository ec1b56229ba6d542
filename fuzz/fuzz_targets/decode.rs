//! Fuzzes the wire decoder: arbitrary bytes must give a message or an error, never a panic,
//! and whatever decodes must encode and decode to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshml_protocol::{decode, encode, Announcement, Request, Response, MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode::<Request>(data, MAX_FRAME) {
        let again = encode(&m, MAX_FRAME).expect("a decoded request re-encodes");
        assert_eq!(
            decode::<Request>(&again, MAX_FRAME).expect("and decodes"),
            m
        );
    }
    if let Ok(m) = decode::<Response>(data, MAX_FRAME) {
        let again = encode(&m, MAX_FRAME).expect("a decoded response re-encodes");
        assert_eq!(
            decode::<Response>(&again, MAX_FRAME).expect("and decodes"),
            m
        );
    }
    let _ = decode::<Announcement>(data, MAX_FRAME);
});
