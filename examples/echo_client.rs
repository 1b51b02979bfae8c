//! A standalone load client: `cargo run --release --example echo_client -- --addr 127.0.0.1:7007 --conns 100 --secs 5 --size 64`.

#[path = "support/echo.rs"]
mod support;

fn main() {
    let args = support::Args::parse(
        "echo_client [--addr HOST:PORT] [--conns N] [--secs S] [--size BYTES] [--workers N]",
    );
    if let Some(w) = args.workers {
        // SAFETY: single-threaded here: no runtime or other thread exists yet.
        unsafe { std::env::set_var("CORUN_WORKERS", w.to_string()) };
    }
    let addr = args.addr.parse().unwrap_or_else(|e| {
        eprintln!("--addr {:?}: {e}", args.addr);
        std::process::exit(2)
    });
    corun::run(move || {
        let report = support::load(addr, args.conns, args.secs, args.size);
        report.print();
        if report.errors > 0 {
            std::process::exit(1);
        }
    });
}
