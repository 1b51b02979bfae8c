//! A minimal HTTP/1.1 "hello" server for load generators such as `wrk`:
//! `cargo run --release --example http_hello -- --listen 127.0.0.1:8080 --workers 2`,
//! then `wrk -t2 -c100 -d10s http://127.0.0.1:8080/`.
//! Without `--listen` it checks itself: `--clients 50 --requests 200`
//! keep-alive clients on a local port, every response verified.
//!
//! One coroutine per connection, keep-alive, pipelining-safe (requests are
//! answered in order from one read buffer). It parses only what a hello
//! server needs (the request line and `Connection: close`); bodies are
//! not supported and a request with one gets `411`/`400` and a close.

#[path = "support/flags.rs"]
mod flags;

use std::io::{BufReader, Read, Write};

use corun::go;
use corun::net::{TcpListener, TcpStream};
use flags::flag;

const BODY: &str = "Hello, World!\n";

/// Index just past the `\r\n\r\n` ending the request head in `buf`.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Appends the response to `out`; false if the connection must close.
fn respond(out: &mut Vec<u8>, head: &[u8]) -> bool {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let request = lines.next().unwrap_or("");
    let mut parts = request.split(' ');
    let (method, version) = (parts.next().unwrap_or(""), parts.nth(1).unwrap_or(""));
    let mut close = version == "HTTP/1.0";
    let mut has_body = false;
    for h in lines {
        let lower = h.to_ascii_lowercase();
        if lower == "connection: close" {
            close = true;
        } else if lower == "connection: keep-alive" {
            close = false;
        } else if lower.starts_with("content-length:") && lower.trim_end() != "content-length: 0"
            || lower.starts_with("transfer-encoding:")
        {
            has_body = true;
        }
    }
    let (status, body) = if !version.starts_with("HTTP/1.") {
        close = true;
        ("400 Bad Request", "bad request\n")
    } else if has_body {
        close = true;
        ("400 Bad Request", "request bodies are not supported\n")
    } else if method == "GET" || method == "HEAD" {
        ("200 OK", BODY)
    } else {
        ("405 Method Not Allowed", "only GET\n")
    };
    let _ = write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{}",
        body.len(),
        if close { "Connection: close\r\n" } else { "" },
        if method == "HEAD" { "" } else { body }
    );
    !close
}

fn serve(conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match (&conn).read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut keep = true;
        // Answer every complete request in the buffer (pipelining).
        while let Some(end) = head_end(&buf) {
            keep = respond(&mut out, &buf[..end]);
            buf.drain(..end);
            if !keep {
                break;
            }
        }
        if !out.is_empty() && (&conn).write_all(&out).is_err() {
            return;
        }
        out.clear();
        if !keep || buf.len() > 64 * 1024 {
            return; // closed by request, or a head too large
        }
    }
}

fn accept_loop(listener: TcpListener) {
    for conn in listener.incoming() {
        match conn {
            Ok(conn) => {
                go!(move || serve(conn));
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}

fn self_check(clients: usize, requests: usize) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    go!(move || accept_loop(listener));
    let start = std::time::Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            go!(move || {
                let conn = TcpStream::connect(addr).unwrap();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let expected = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{BODY}",
                    BODY.len()
                );
                let mut got = vec![0u8; expected.len()];
                for _ in 0..requests {
                    (&conn).write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
                    reader.read_exact(&mut got).unwrap();
                    assert_eq!(got, expected.as_bytes());
                }
                // The last one asks to close; the server must.
                (&conn).write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
                let mut rest = String::new();
                reader.read_to_string(&mut rest).unwrap();
                assert!(rest.contains("Connection: close") && rest.ends_with(BODY), "{rest}");
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total = clients * requests;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "http_hello: {total} keep-alive requests from {clients} clients in {:.0} ms ({:.0} req/s), every response checked",
        secs * 1e3,
        total as f64 / secs
    );
    println!("ok");
}

fn main() {
    let listen: String = flag("listen", String::new());
    let workers: usize = flag("workers", 0);
    let clients: usize = flag("clients", 50);
    let requests: usize = flag("requests", 200);
    let mut builder = corun::Runtime::builder();
    if workers > 0 {
        builder = builder.workers(workers);
    }
    let rt = builder.build().expect("runtime");
    rt.block_on(move || {
        if listen.is_empty() {
            return self_check(clients, requests);
        }
        let listener = TcpListener::bind(&listen).unwrap_or_else(|e| {
            eprintln!("cannot listen on {listen}: {e}");
            std::process::exit(1)
        });
        println!("http_hello on http://{}/", listener.local_addr().unwrap());
        accept_loop(listener);
    });
}
