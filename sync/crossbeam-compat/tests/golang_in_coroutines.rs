//! crossbeam-channel's own tests/golang.rs with every test's body run in a
//! coroutine (see `build.rs`). A binary of its own: the file installs a
//! counting global allocator, which one binary can hold only once.
#![allow(warnings, clippy::all)]

#[path = "support/one_test_at_a_time.rs"]
mod one_test_at_a_time;
mod support;

include!(concat!(env!("OUT_DIR"), "/golang_in_coroutines.mod.rs"));
