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

#[test]
fn worker_pool_scales_up_and_back_down() {
    let out = stdout(&run(
        "worker_pool",
        &["--jobs", "600", "--max-workers", "6"],
    ));
    assert!(out.contains("ok: every result checked"), "{out}");
    let peak: usize = out
        .split("peak ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no peak in {out}"));
    assert!((1..=6).contains(&peak), "{out}");
    assert!(out.contains(" -> 1 after idling"), "{out}");
}

#[test]
fn producer_consumer_counts_every_item_once() {
    let out = stdout(&run("producer_consumer", &["--items", "20000"]));
    assert!(
        out.contains("ok: every item received exactly once"),
        "{out}"
    );
}

#[test]
fn pipeline_completes_and_propagates_the_first_error() {
    let out = stdout(&run("pipeline", &["--items", "3000"]));
    assert!(out.contains("ok: complete and checked"), "{out}");
    let out = stdout(&run("pipeline", &["--items", "3000", "--fail-at", "777"]));
    assert!(out.contains("item 777 cannot be processed"), "{out}");
    assert!(out.contains("every stage stopped"), "{out}");
}

#[test]
fn deadlines_chain_through_context() {
    let out = stdout(&run("deadlines", &[]));
    assert!(out.contains("slow request: Err(DeadlineExceeded)"), "{out}");
    assert!(out.contains("silent peer: TimedOut"), "{out}");
    assert!(out.contains("cancelled request: Err(Canceled)"), "{out}");
}

#[test]
fn errgroup_limits_and_returns_the_first_error() {
    let out = stdout(&run("errgroup", &["--tasks", "40", "--limit", "5"]));
    assert!(
        out.contains("40 finished") && out.contains("Ok(())"),
        "{out}"
    );
    let out = stdout(&run(
        "errgroup",
        &["--tasks", "40", "--limit", "5", "--fail", "9"],
    ));
    assert!(out.contains("Err(\"task 9 failed\")"), "{out}");
}

#[test]
fn rate_limiter_never_exceeds_its_rate() {
    let out = stdout(&run(
        "rate_limiter",
        &["--rate", "1000", "--burst", "10", "--requests", "200"],
    ));
    assert!(out.contains("ok: never above the limit"), "{out}");
}

#[test]
fn chat_broadcasts_every_line_to_every_client() {
    let out = stdout(&run("chat", &["--clients", "30", "--messages", "10"]));
    assert!(out.contains("received all 300 broadcasts"), "{out}");
}

#[test]
fn http_hello_answers_keep_alive_requests() {
    let out = stdout(&run("http_hello", &["--clients", "20", "--requests", "50"]));
    assert!(out.contains("1000 keep-alive requests"), "{out}");
}

#[test]
fn graceful_shutdown_drains_on_sigterm() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut server = Command::new(example("graceful_shutdown"))
        .args(["--addr", "127.0.0.1:0", "--work-ms", "300"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    let mut busy = std::net::TcpStream::connect(&addr).unwrap();
    let mut idle = std::net::TcpStream::connect(&addr).unwrap();
    busy.write_all(b"in flight\n").unwrap();
    std::thread::sleep(Duration::from_millis(50)); // the request is running
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(server.id() as i32, libc::SIGTERM) }, 0);
    let mut reply = String::new();
    busy.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    busy.read_to_string(&mut reply).unwrap();
    assert_eq!(
        reply, "done: in flight\n",
        "the request in flight is finished"
    );
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    assert_eq!(
        idle.read(&mut [0; 8]).unwrap(),
        0,
        "idle connections are closed"
    );
    let status = server.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(rest.iter().any(|l| l.starts_with("signal 15")), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.starts_with("drained: 1 request")),
        "{rest:?}"
    );
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "no longer accepting"
    );
}
