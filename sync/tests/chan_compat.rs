//! Code in crossbeam-channel's style compiles and behaves the same with
//! only the import changed: the `select!` grammar, references and
//! temporaries as channels, control flow out of arms, iterator use.

use std::time::Duration;

use corun_sync::chan::{self, Receiver, Sender, after, bounded, never, tick, unbounded};

struct Worker {
    jobs: Receiver<u32>,
    results: Sender<u32>,
}

impl Worker {
    fn run(&self) -> Result<u32, chan::RecvError> {
        let mut n = 0;
        loop {
            chan::select! {
                recv(self.jobs) -> job => {
                    let job = job?;
                    self.results.send(job * 2).unwrap();
                    n += 1;
                    if n == 3 {
                        break;
                    }
                }
                recv(after(Duration::from_secs(10))) -> _ => panic!("timed out"),
            }
        }
        Ok(n)
    }
}

#[test]
fn grammar_and_control_flow() {
    let (s, r) = unbounded::<u32>();
    let (rs, rr) = bounded::<u32>(8);
    let w = Worker {
        jobs: r,
        results: rs,
    };
    for i in 1..=3 {
        s.send(i).unwrap();
    }
    assert_eq!(w.run(), Ok(3));
    assert_eq!(rr.try_iter().collect::<Vec<_>>(), [2, 4, 6]);

    // References, temporaries, trailing commas, blocks without commas,
    // expression bodies, a lone default.
    let (s1, r1) = bounded::<i32>(1);
    let r1_ref = &r1;
    s1.send(5).unwrap();
    let v = chan::select! {
        recv(r1_ref) -> m => m.unwrap(),
        recv(never::<i32>()) -> _ => unreachable!(),
        default(Duration::from_secs(1)) => 0,
    };
    assert_eq!(v, 5);
    let out = chan::select! {
        send(&s1, 6,) -> res => { res.unwrap(); "sent" }
        recv(&r1,) -> _ => "received"
    };
    assert_eq!(out, "sent");
    let v = chan::select! {
        recv(r1) -> m => m,
    };
    assert_eq!(v, Ok(6));
    chan::select! {
        default => {}
    }

    // The receiver can be moved out in the arm body.
    let (s2, r2) = unbounded::<i32>();
    s2.send(1).unwrap();
    let moved = chan::select! {
        recv(r2) -> m => {
            m.unwrap();
            r2
        }
    };
    drop(moved);

    // Facade-style root macro path too.
    let t = tick(Duration::from_millis(1));
    corun_sync::select! {
        recv(t) -> at => assert!(at.is_ok()),
    }
}

#[test]
fn channels_are_send_sync_and_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Sender<String>>();
    assert_send_sync::<Receiver<String>>();
    fn assert_unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
    assert_unwind_safe::<Sender<u8>>();
    assert_unwind_safe::<Receiver<u8>>();

    // A crossbeam-style worker pool on plain threads.
    let (s, r) = bounded::<u64>(0);
    let (ds, dr) = unbounded::<u64>();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let r = r.clone();
            let ds = ds.clone();
            std::thread::spawn(move || {
                for v in r {
                    ds.send(v * v).unwrap();
                }
            })
        })
        .collect();
    drop((r, ds));
    for i in 0..100 {
        s.send(i).unwrap();
    }
    drop(s);
    for w in workers {
        w.join().unwrap();
    }
    let sum: u64 = dr.iter().sum();
    assert_eq!(sum, (0..100).map(|i| i * i).sum());
}
