//! With the process out of descriptors, the first socket that must wait
//! (and so create the poller) gets the OS error, not a panic; once
//! descriptors are free again, the next wait creates the poller and works.
//! Alone in its binary: it lowers the process's descriptor limit, and the
//! poller must not exist yet.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use corun_netpoll::{TcpListener, TcpStream};
use corun_runtime::go;

fn nofile() -> libc::rlimit {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: writes one rlimit into `r`.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    r
}

fn set_nofile(r: &libc::rlimit) {
    // SAFETY: reads one rlimit from `r`.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, r) }, 0);
}

/// Opens descriptors until the process has none left; returns them.
fn fill_descriptors() -> Vec<OwnedFd> {
    let mut held = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => held.push(OwnedFd::from(f)),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                return held;
            }
        }
    }
}

#[test]
fn the_first_wait_out_of_descriptors_fails_and_a_later_one_works() {
    // The runtime's own threads and descriptors first, so only the
    // poller's two are left to make under the limit.
    go!(|| ()).join().unwrap();
    // Only a coroutine's wait goes through the poller (a thread's polls
    // its descriptor alone).
    let listener = std::sync::Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();

    let saved = nofile();
    let max_fd = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.parse::<u64>().ok())
        .max()
        .unwrap();
    set_nofile(&libc::rlimit {
        rlim_cur: max_fd + 8,
        rlim_max: saved.rlim_max,
    });
    let mut held = fill_descriptors();
    // One free: the epoll descriptor fits, its eventfd does not.
    drop(held.pop());
    let l = listener.clone();
    let err = go!(move || l.accept().map(drop))
        .join()
        .unwrap()
        .expect_err("no descriptor for the poller, and nobody connects");
    assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");

    drop(held);
    set_nofile(&saved);
    let client = go!(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"hi").unwrap();
    });
    let got = go!(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut got = [0u8; 2];
        s.read_exact(&mut got).unwrap();
        got
    });
    assert_eq!(&got.join().unwrap(), b"hi");
    client.join().unwrap();
}
