//! Runs every example with small settings so none of them rots. `cargo
//! test` builds the examples next to this test binary.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built: `cargo test` builds the examples, `cargo test --test examples` alone does not",
        path.display()
    );
    path
}

fn run(name: &str, args: &[&str]) -> Output {
    let out = Command::new(example(name)).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{name} failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn echo_demo_reports_throughput_and_no_errors() {
    let out = stdout(&run(
        "echo",
        &["--conns", "10", "--secs", "1", "--size", "32"],
    ));
    assert!(out.contains("msg/s; latency p50"), "{out}");
    assert!(out.contains("errors 0"), "{out}");
    assert!(out.contains("stacks in use"), "{out}");
}

#[test]
fn echo_server_and_client_in_separate_processes() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Command::new(example("echo_server"))
        .args(["--addr", &addr, "--workers", "1"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it listens.
    let start = Instant::now();
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let client = Command::new(example("echo_client"))
        .args(["--addr", &addr, "--conns", "8", "--secs", "1"])
        .output()
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    let out = stdout(&client);
    assert!(
        client.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&client.stderr)
    );
    assert!(out.contains("errors 0"), "{out}");
}

#[test]
fn bad_arguments_get_a_usage_message() {
    let out = Command::new(example("echo"))
        .args(["--conns", "many"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad value \"many\" for --conns") && err.contains("usage:"),
        "{err}"
    );
}

#[test]
fn stacks_demo_runs() {
    let out = stdout(&run("stacks", &["20000"]));
    assert!(out.contains("woke and joined all"), "{out}");
}

#[test]
fn leak_example_finds_its_leak() {
    let out = stdout(&run("leak", &[]));
    assert!(
        out.contains("leak suspect: 200 coroutines spawned at examples/leak.rs"),
        "{out}"
    );
    assert!(out.contains("waiting on [chan receive]"), "{out}");
}

#[test]
fn metrics_endpoint_serves_prometheus_text() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut server = Command::new(example("metrics_server"))
        .args(["--addr", "127.0.0.1:0", "--secs", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("serving metrics on http://")
        .and_then(|s| s.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let scrape = |path: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response).unwrap();
        response
    };
    let response = scrape("/metrics");
    let missing = scrape("/nothing");
    server.kill().unwrap();
    server.wait().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("headers end");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(body.contains("# TYPE corun_coroutines gauge"), "{body}");
    assert!(
        body.contains("# TYPE corun_switches_total counter"),
        "{body}"
    );
    // The workload (4 workers, a producer, the acceptor, the scrape itself)
    // is visible, and every sample line is `name{labels} number`.
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit_once(' ').expect("sample").1;
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    let running_or_waiting: f64 = body
        .lines()
        .filter(|l| l.starts_with("corun_coroutines{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum();
    assert!(running_or_waiting >= 7.0, "{body}");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}
