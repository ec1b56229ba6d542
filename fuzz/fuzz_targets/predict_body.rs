//! Fuzzes the bodies of online prediction (`POST /v1/models/{name}/predict`) as the node
//! decodes them, JSON and MessagePack: arbitrary bytes give a request or an error, never a
//! panic, and a request that decodes encodes and decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshml_client::api::PredictRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<PredictRequest>(data) {
        let again = serde_json::to_vec(&r).expect("a decoded request re-encodes");
        let back: PredictRequest = serde_json::from_slice(&again).expect("and decodes");
        // NaN is not JSON: only compare what round-trips exactly.
        if format!("{back:?}") == format!("{r:?}") {
            assert_eq!(back, r);
        }
    }
    if let Ok(r) = rmp_serde::from_slice::<PredictRequest>(data) {
        let again = rmp_serde::to_vec_named(&r).expect("a decoded request re-encodes");
        let back: Result<PredictRequest, _> = rmp_serde::from_slice(&again);
        assert!(back.is_ok(), "{r:?}");
    }
});
