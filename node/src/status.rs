//! `meshml status` and the raw HTTP helpers: moved to [`meshml_client::status`] and
//! [`meshml_client::http`]; re-exported here for the node's tests, benchmarks and the
//! simulator.

pub use meshml_client::http::{http_call, http_download, http_get, Body};
pub use meshml_client::status::*;
