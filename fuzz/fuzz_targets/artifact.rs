//! Fuzzes the model artifact decoder (`ModelArtifact::from_bytes`, what `local predict`,
//! `model get` and every serving node read): arbitrary bytes, raw and as a payload behind a
//! valid header and checksum (so that the fuzzer reaches the MessagePack decoder), give a
//! model or an error, never a panic; a model that decodes predicts or refuses, never
//! panics.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use meshml_models::matrix::Matrix;
use meshml_models::traits::{Classifier, Model};
use meshml_models::ModelArtifact;

/// `payload` behind the header `to_bytes` writes: magic, format version, length, BLAKE3.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = b"MESHMLM\0".to_vec();
    out.extend_from_slice(&meshml_models::artifact::ARTIFACT_FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(blake3::hash(payload).as_bytes());
    out.extend_from_slice(payload);
    out
}

fuzz_target!(|data: &[u8]| {
    let _ = ModelArtifact::from_bytes(data, Path::new("raw.mlm"));
    let Ok(art) = ModelArtifact::from_bytes(&framed(data), Path::new("fuzz.mlm")) else {
        return;
    };
    let n = art.model.n_inputs();
    if n == 0 || n > 4096 {
        return;
    }
    let x = Matrix::from_vec(2, n, (0..2 * n).map(|i| i as f32 * 0.5).collect())
        .expect("a matrix");
    if art.model.is_regressor() {
        let _ = art.model.predict_values(&x);
    } else {
        let _ = art.model.predict(&x);
        let _ = art.model.predict_proba(&x);
    }
});
