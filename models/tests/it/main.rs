//! The models crate's integration tests, linked as one binary (`cargo test -p meshml-models
//! --test it`): parity with scikit-learn's reference numbers and format compatibility.

mod binning_parity;
mod cluster_parity;
mod common;
mod compat;
mod hgb_parity;
mod meta_parity;
mod more_parity;
mod parallel;
mod sgd_parity;
mod sklearn_parity;
mod tables_parity;
