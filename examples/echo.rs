//! The main demo: an echo server and a corun load client in one process.
//!
//! `cargo run --release --example echo [-- --conns 100 --secs 5 --size 64 --workers N]`
//!
//! The server accepts on a loopback port with one coroutine per
//! connection; the client keeps one message in flight per connection for
//! the duration, checks every echo, prints progress each second, then
//! throughput, latency percentiles, errors and memory.

#[path = "support/echo.rs"]
mod support;

use corun::net::TcpListener;

fn main() {
    let args = support::Args::parse(
        "echo [--conns N] [--secs S] [--size BYTES] [--workers N] (--addr is ignored: a free loopback port is used)",
    );
    if let Some(w) = args.workers {
        // The global runtime reads this when it starts, just below.
        // SAFETY: single-threaded here: no runtime or other thread exists yet.
        unsafe { std::env::set_var("CORUN_WORKERS", w.to_string()) };
    }
    corun::run(move || {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        corun::go!(move || support::serve(listener));
        println!(
            "echo server on {addr}, {} workers; {} connections x {}-byte messages for {} s",
            corun::runtime::stats().ps,
            args.conns,
            args.size,
            args.secs
        );
        let report = support::load(addr, args.conns, args.secs, args.size);
        report.print();
        support::print_memory();
    });
}
