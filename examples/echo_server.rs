//! A standalone echo server: `cargo run --release --example echo_server -- --addr 127.0.0.1:7007 --workers 1`.
//! Runs until killed. Measure it with `echo_client` or `shared/anchors/echoload`.

#[path = "support/echo.rs"]
mod support;

use corun::net::TcpListener;

fn main() {
    let args = support::Args::parse("echo_server [--addr HOST:PORT] [--workers N]");
    let mut builder = corun::Runtime::builder().name("echo-server");
    if let Some(w) = args.workers {
        builder = builder.workers(w);
    }
    let rt = builder.build().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    rt.block_on(move || {
        let listener = TcpListener::bind(&args.addr).unwrap_or_else(|e| {
            eprintln!("cannot listen on {}: {e}", args.addr);
            std::process::exit(1)
        });
        println!(
            "echo server on {}",
            listener.local_addr().expect("local address")
        );
        support::serve(listener);
    });
}
