//! crossbeam-channel's own tests/golang.rs, compiled unchanged but for its
//! imports, which `build.rs` points at `corun_sync::chan`. Its lints are
//! upstream's business: warnings a newer compiler or clippy finds in it are
//! not ours to fix.
#![allow(warnings, clippy::all)]

#[path = "support/one_test_at_a_time.rs"]
mod one_test_at_a_time;
mod support;

include!(concat!(env!("OUT_DIR"), "/golang.mod.rs"));
