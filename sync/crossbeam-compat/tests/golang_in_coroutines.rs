//! crossbeam-channel's own tests/golang.rs with every test's body run in a
//! coroutine (see `build.rs`). A binary of its own: the file installs a
//! counting global allocator, which one binary can hold only once.
#![allow(warnings, clippy::all)]

mod support;

include!(concat!(env!("OUT_DIR"), "/golang_in_coroutines.mod.rs"));

/// One test at a time, for the reason given in `golang.rs`.
#[used]
#[link_section = ".init_array"]
static ONE_TEST_AT_A_TIME: extern "C" fn() = {
    extern "C" fn one_test_at_a_time() {
        if std::env::var_os("RUST_TEST_THREADS").is_none() {
            std::env::set_var("RUST_TEST_THREADS", "1");
        }
    }
    one_test_at_a_time
};
