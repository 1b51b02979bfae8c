//! stats(), coroutines() and dump() see every live coroutine as it is.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use corun_runtime::{Builder, Runtime, State, WaitReason, go};

#[test]
fn dump_lists_every_live_coroutine_with_its_wait_reason() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut hs = Vec::new();
    for i in 0..5 {
        let stop = stop.clone();
        hs.push(rt.block_on(move || {
            Builder::new()
                .name(format!("parker-{i}"))
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        corun_runtime::park(WaitReason::Park);
                    }
                })
                .unwrap()
        }));
    }
    let sleeper = rt.block_on(|| {
        Builder::new()
            .name("sleeper")
            .spawn(|| corun_runtime::sleep(Duration::from_secs(3600)))
            .unwrap()
    });
    let blocker_go = Arc::new(AtomicBool::new(false));
    let bg = blocker_go.clone();
    let blocker = rt.block_on(move || {
        Builder::new()
            .name("blocker")
            .spawn(move || {
                corun_runtime::blocking(|| {
                    while !bg.load(Ordering::Acquire) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            })
            .unwrap()
    });
    std::thread::sleep(Duration::from_millis(100));
    let infos = rt.block_on(corun_runtime::coroutines);
    let find = |name: &str| {
        infos
            .iter()
            .find(|c| c.name.as_deref() == Some(name))
            .unwrap()
            .clone()
    };
    for i in 0..5 {
        let c = find(&format!("parker-{i}"));
        assert_eq!(c.state, State::Waiting);
        assert_eq!(c.wait_reason, WaitReason::Park);
        assert!(
            c.spawn_site.file().ends_with("introspect.rs"),
            "{}",
            c.spawn_site
        );
    }
    assert_eq!(find("sleeper").wait_reason, WaitReason::Sleep);
    let b = find("blocker");
    assert_eq!(
        (b.state, b.wait_reason),
        (State::Syscall, WaitReason::Blocking)
    );
    // The dumping coroutine itself is running.
    assert!(
        infos
            .iter()
            .any(|c| c.state == State::Running && c.name.as_deref() == Some("main"))
    );

    let dump = rt.block_on(corun_runtime::dump);
    for i in 0..5 {
        assert!(dump.contains(&format!("\"parker-{i}\" [park]:")), "{dump}");
    }
    assert!(dump.contains("\"sleeper\" [sleep]:"), "{dump}");
    assert!(dump.contains("\"blocker\" [syscall]:"), "{dump}");
    assert!(dump.contains("created at "), "{dump}");

    let s = rt.stats();
    assert!(
        s.coroutines >= 7 && s.waiting >= 6 && s.syscall == 1,
        "{s:?}"
    );
    assert_eq!(s.ps, 2);

    blocker_go.store(true, Ordering::Release);
    blocker.join().unwrap();
    // The parkers and the sleeper are still parked: dropping the runtime
    // completes them with an error.
    drop(rt);
    for h in hs {
        assert!(h.join().is_err());
    }
    assert!(sleeper.join().is_err());
}

#[test]
fn finished_coroutines_leave_the_registry() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    rt.block_on(|| {
        let hs: Vec<_> = (0..1000).map(|_| go!(|| ())).collect();
        for h in hs {
            h.join().unwrap();
        }
    });
    let s = rt.stats();
    assert_eq!(s.coroutines, 0, "{s:?}");
    assert!(s.spawned >= 1001, "{s:?}");
}
