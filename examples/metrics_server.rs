//! Serves the runtime's metrics in the Prometheus text format on
//! `/metrics`, over corun's own TCP types, while a small workload runs.
//!
//! `cargo run --release --example metrics_server -- --addr 127.0.0.1:9090 --secs 0`
//! then `curl http://127.0.0.1:9090/metrics` (`--secs 0`: run until killed).

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use corun::net::{TcpListener, TcpStream};

fn main() {
    let mut addr = "127.0.0.1:9090".to_owned();
    let mut secs = 0.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--addr" => addr = value,
            "--secs" => {
                secs = value.parse().unwrap_or_else(|_| {
                    eprintln!("--secs wants a number of seconds, got {value:?}");
                    std::process::exit(2)
                })
            }
            _ => {
                eprintln!("usage: metrics_server [--addr HOST:PORT] [--secs S (0: forever)]");
                std::process::exit(2)
            }
        }
    }
    corun::run(move || {
        let listener = TcpListener::bind(&addr).unwrap_or_else(|e| {
            eprintln!("cannot listen on {addr}: {e}");
            std::process::exit(1)
        });
        println!(
            "serving metrics on http://{}/metrics",
            listener.local_addr().expect("local address")
        );
        // Something to measure: workers passing work through a channel.
        let (tx, rx) = corun::chan::bounded::<u64>(16);
        for _ in 0..4 {
            let rx = rx.clone();
            corun::go!(move || for n in rx.iter() {
                corun::sleep(Duration::from_micros(n % 500));
            });
        }
        corun::go!(move || {
            let mut n = 0u64;
            while tx.send(n).is_ok() {
                n += 1;
            }
        });
        corun::go!(move || {
            for conn in listener.incoming().flatten() {
                corun::go!(move || serve(conn));
            }
        });
        if secs > 0.0 {
            let end = Instant::now() + Duration::from_secs_f64(secs);
            corun::sleep_until(end);
            std::process::exit(0);
        }
        loop {
            corun::sleep(Duration::from_secs(3600));
        }
    });
}

/// A minimal HTTP/1.1 responder: `GET /metrics` gets the metrics, anything
/// else a 404. One request per connection.
fn serve(conn: TcpStream) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&conn);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let (status, kind, body) = if request.starts_with("GET /metrics ") {
        (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            corun::runtime::metrics_text(),
        )
    } else {
        ("404 Not Found", "text/plain", "try /metrics\n".to_owned())
    };
    let _ = write!(
        &conn,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
