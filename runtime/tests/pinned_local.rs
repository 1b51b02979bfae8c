//! Pinned coroutines never migrate; coroutine-locals follow their coroutine.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::time::Duration;

use corun_runtime::{Builder, Runtime, coroutine_local, go};

#[test]
fn pinned_coroutine_stays_on_its_thread() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let hs: Vec<_> = (0..4)
        .map(|_| {
            rt.block_on(|| {
                Builder::new()
                    .pinned(true)
                    .spawn(|| {
                        let mut seen = HashSet::new();
                        // A !Send value held across every kind of wait.
                        let rc = std::rc::Rc::new(Cell::new(0));
                        for i in 0..200 {
                            seen.insert(std::thread::current().id());
                            match i % 3 {
                                0 => corun_runtime::yield_now(),
                                1 => corun_runtime::sleep(Duration::from_micros(50)),
                                _ => go!(|| ()).join().unwrap(),
                            }
                            rc.set(rc.get() + 1);
                        }
                        (seen.len(), rc.get())
                    })
                    .unwrap()
            })
        })
        .collect();
    for h in hs {
        assert_eq!(h.join().unwrap(), (1, 200));
    }
}

#[test]
fn unpinned_coroutines_do_migrate() {
    // The counterpart: without pinning, work really moves between threads
    // (which is what makes pinning necessary).
    let rt = Runtime::builder().workers(2).build().unwrap();
    let seen = rt.block_on(|| {
        let hs: Vec<_> = (0..16)
            .map(|_| {
                go!(|| {
                    let mut seen = HashSet::new();
                    for _ in 0..500 {
                        seen.insert(std::thread::current().id());
                        corun_runtime::sleep(Duration::from_micros(20));
                    }
                    seen
                })
            })
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<HashSet<_>>()
    });
    assert!(seen.len() >= 2);
}

coroutine_local! {
    static NAME: RefCell<String> = RefCell::new(String::new());
    static COUNTER: Cell<u64> = Cell::new(0);
}

#[test]
fn coroutine_locals_are_isolated_and_follow_the_coroutine() {
    let hs: Vec<_> = (0..50u64)
        .map(|i| {
            go!(move || {
                NAME.with(|n| *n.borrow_mut() = format!("c{i}"));
                for _ in 0..20 {
                    COUNTER.with(|c| c.set(c.get() + i));
                    corun_runtime::sleep(Duration::from_micros(10));
                }
                (NAME.with(|n| n.borrow().clone()), COUNTER.with(Cell::get))
            })
        })
        .collect();
    for (i, h) in hs.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), (format!("c{i}"), 20 * i as u64));
    }
    // Outside coroutines the key reads this thread's own value.
    assert_eq!(COUNTER.with(Cell::get), 0);
}

struct DropCount(std::sync::Arc<std::sync::atomic::AtomicUsize>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

coroutine_local! {
    static GUARD: RefCell<Option<DropCount>> = RefCell::new(None);
}

#[test]
fn coroutine_locals_drop_when_the_coroutine_ends() {
    let drops = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hs: Vec<_> = (0..10)
        .map(|_| {
            let d = drops.clone();
            go!(move || GUARD.with(|g| *g.borrow_mut() = Some(DropCount(d))))
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(drops.load(std::sync::atomic::Ordering::SeqCst), 10);
}
