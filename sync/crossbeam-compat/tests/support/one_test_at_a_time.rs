//! Runs a test binary's tests one at a time: included by the runners of
//! `golang.rs`, whose `select2` test compares the process's live
//! allocations (counted by upstream's own global allocator) before and
//! after a second round, so it fails whenever another test allocates beside
//! it: upstream's own build of this file failed it in 2 of 30 runs on this
//! 2-core machine, ours in 1 of 10; alone, 0 of 30. libtest reads
//! `RUST_TEST_THREADS` as it starts, and functions in `.init_array` run
//! before `main`, while the process has one thread. An explicit
//! `--test-threads` still wins.

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
