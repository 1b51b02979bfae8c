//! Test-only package: runs crossbeam-channel's own test suite against
//! `corun_sync::chan`, with only the imports changed (see `build.rs`).
//! It has no library code; the tests are the point.
