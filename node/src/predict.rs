//! `meshml predict`, `meshml models`, `meshml model`: moved to
//! [`meshml_client::predict`]; re-exported here.

pub use meshml_client::predict::*;
