//! meshml end-to-end tests, gathered in one binary. One module per area; regressions are
//! named after their issue.

mod small_data;
