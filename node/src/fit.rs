//! `meshml fit`, `meshml jobs`, `meshml job show|cancel`: moved to [`meshml_client::fit`];
//! re-exported here for the node's own callers (the demo, the simulator, benchmarks).

pub use meshml_client::dataset::put_dataset;
pub use meshml_client::fit::*;
pub use meshml_client::progress::follow_with;
pub use meshml_client::NodeApi;
