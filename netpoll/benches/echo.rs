//! One echo round trip over loopback TCP between two coroutines (64 bytes
//! out, 64 bytes back), on a 2-worker runtime: the cost of a read and a
//! write on each side plus the poller's wake-ups.

use std::io::{Read, Write};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use corun_netpoll::{TcpListener, TcpStream};
use corun_runtime::Runtime;
use criterion::{Criterion, criterion_group, criterion_main};

fn rt() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| Runtime::builder().workers(2).build().expect("runtime"))
}

fn echo_round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("netpoll");
    g.measurement_time(Duration::from_secs(3)).sample_size(20);
    g.bench_function("tcp_echo_round_trip_64b", |b| {
        b.iter_custom(|iters| {
            rt().block_on(move || {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let server = corun_runtime::spawn(move || {
                    let (mut s, _) = listener.accept().unwrap();
                    s.set_nodelay(true).unwrap();
                    let mut buf = [0u8; 64];
                    while s.read_exact(&mut buf).is_ok() {
                        s.write_all(&buf).unwrap();
                    }
                });
                let mut c = TcpStream::connect(addr).unwrap();
                c.set_nodelay(true).unwrap();
                let msg = [7u8; 64];
                let mut back = [0u8; 64];
                let start = Instant::now();
                for _ in 0..iters {
                    c.write_all(&msg).unwrap();
                    c.read_exact(&mut back).unwrap();
                }
                let t = start.elapsed();
                assert_eq!(back, msg);
                drop(c);
                server.join().unwrap();
                t
            })
        })
    });
    g.finish();
}

criterion_group!(benches, echo_round_trip);
criterion_main!(benches);
