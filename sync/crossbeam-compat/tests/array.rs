//! crossbeam-channel's own tests/array.rs, compiled unchanged but for its
//! imports, which `build.rs` points at `corun_sync::chan`. Its lints are
//! upstream's business: warnings a newer compiler or clippy finds in it are
//! not ours to fix.
#![allow(warnings, clippy::all)]

mod support;

include!(concat!(env!("OUT_DIR"), "/array.mod.rs"));
