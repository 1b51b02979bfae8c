//! Pinned coroutines never migrate; coroutine-locals follow their coroutine.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use corun_runtime::{Builder, Runtime, coroutine_local, go};

/// How long a test waits for something the OS decides (which thread runs
/// what) before it reports a failure.
const LIVENESS: Duration = Duration::from_secs(20);

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
    // (which is what makes pinning necessary). Which thread runs what is the
    // OS's call, so the coroutines go on past their 500 sleeps until two
    // threads have been seen (or a generous bound passes).
    let rt = Runtime::builder().workers(2).build().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(HashSet::new()));
    let start = Instant::now();
    let hs: Vec<_> = (0..16)
        .map(|_| {
            let seen = seen.clone();
            rt.spawn(move || {
                let mut step = 0;
                loop {
                    let threads = {
                        let mut seen = seen.lock().unwrap();
                        seen.insert(std::thread::current().id());
                        seen.len()
                    };
                    if step >= 500 && (threads >= 2 || start.elapsed() >= LIVENESS) {
                        break;
                    }
                    corun_runtime::sleep(Duration::from_micros(20));
                    step += 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert!(
        seen.lock().unwrap().len() >= 2,
        "every coroutine ran on one thread"
    );
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
        self.0.fetch_add(1, Ordering::SeqCst);
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
    assert_eq!(drops.load(Ordering::SeqCst), 10);
}

static INITS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

coroutine_local! {
    static ONCE_PER_COROUTINE: Cell<u64> = {
        INITS.fetch_add(1, Ordering::SeqCst);
        Cell::new(0)
    };
}

#[test]
fn coroutine_locals_initialise_once_per_coroutine_across_migrations() {
    // Whether a coroutine moves is up to the OS scheduling the two workers:
    // on a loaded machine one worker can run everything for a while. So every
    // coroutine keeps going past its 500 steps until some coroutine has moved
    // (or a generous bound passes, and the assertion below reports it).
    static SOME_MOVED: AtomicBool = AtomicBool::new(false);
    let rt = Runtime::builder().workers(2).build().unwrap();
    let start = Instant::now();
    let hs: Vec<_> = (0..200u64)
        .map(|i| {
            rt.spawn(move || {
                let mut threads = HashSet::new();
                let mut step = 0;
                while step < 500
                    || (!SOME_MOVED.load(Ordering::Relaxed) && start.elapsed() < LIVENESS)
                {
                    ONCE_PER_COROUTINE.with(|c| {
                        assert_eq!(c.get(), step * i, "coroutine {i} lost its value");
                        c.set(c.get() + i);
                    });
                    threads.insert(std::thread::current().id());
                    if threads.len() > 1 {
                        SOME_MOVED.store(true, Ordering::Relaxed);
                    }
                    if step % 2 == 0 {
                        corun_runtime::yield_now();
                    } else {
                        corun_runtime::sleep(Duration::from_micros(20));
                    }
                    step += 1;
                }
                threads.len()
            })
        })
        .collect();
    let migrated = hs
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&n| n > 1)
        .count();
    assert_eq!(INITS.load(Ordering::SeqCst), 200);
    assert!(migrated > 0, "no coroutine moved between threads");
}

/// Counts drops that ran inside a coroutine (on its own stack).
struct DropsOnCoroutine;
impl Drop for DropsOnCoroutine {
    fn drop(&mut self) {
        if corun_runtime::is_coroutine() {
            LATE_DROPS_ON_COROUTINE.fetch_add(1, Ordering::SeqCst);
        }
    }
}

static LATE_DROPS_ON_COROUTINE: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

struct TouchesOtherLocal;
impl Drop for TouchesOtherLocal {
    fn drop(&mut self) {
        // Creates a local while the coroutine's locals are being dropped.
        LATE.with(|l| l.set(Some(DropsOnCoroutine)));
    }
}

coroutine_local! {
    static FIRST: RefCell<Option<TouchesOtherLocal>> = RefCell::new(None);
    static LATE: Cell<Option<DropsOnCoroutine>> = Cell::new(None);
}

#[test]
fn locals_created_by_destructors_are_dropped_on_the_coroutine() {
    go!(|| FIRST.with(|f| *f.borrow_mut() = Some(TouchesOtherLocal)))
        .join()
        .unwrap();
    assert_eq!(LATE_DROPS_ON_COROUTINE.load(Ordering::SeqCst), 1);
}

/// Spawns `f` as a pinned coroutine of `rt`.
fn spawn_pinned<T: Send + 'static>(
    rt: &Runtime,
    f: impl FnOnce() -> T + Send + 'static,
) -> corun_runtime::JoinHandle<T> {
    rt.block_on(move || Builder::new().pinned(true).spawn(f).unwrap())
}

/// Joins `h` on a helper thread; `None` if it has not returned within `d`.
fn join_within<T: Send + 'static>(
    h: corun_runtime::JoinHandle<T>,
    d: Duration,
) -> Option<std::thread::Result<T>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(h.join());
    });
    rx.recv_timeout(d).ok()
}

/// A pinned coroutine woken while its runtime shuts down is both in its
/// home and claimable by shutdown: exactly one of the two may have it.
#[test]
fn pinned_coroutine_woken_during_shutdown_is_abandoned_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let start = std::time::Instant::now();
    let mut rounds = 0;
    while rounds < 20 || (rounds < 200 && start.elapsed() < Duration::from_secs(3)) {
        rounds += 1;
        let rt = Runtime::builder().workers(1).build().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let h = spawn_pinned(&rt, move || {
            tx.send(corun_runtime::unparker()).unwrap();
            loop {
                corun_runtime::park(corun_runtime::WaitReason::Park);
            }
        });
        let waker = rx.recv().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let waking = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    waker.unpark();
                    std::thread::yield_now();
                }
            })
        };
        std::thread::sleep(Duration::from_micros(300));
        drop(rt);
        stop.store(true, Ordering::Relaxed);
        waking.join().unwrap();
        let joined = join_within(h, Duration::from_secs(5));
        let joined = joined.unwrap_or_else(|| panic!("round {rounds}: join hung"));
        let err = joined.expect_err("abandoned, not finished");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("shut down"), "round {rounds}: {msg}");
    }
}

/// A pinned coroutine busy while its runtime shuts down is passed over
/// then; when it parks afterwards it is abandoned, so its joiner returns.
#[test]
fn pinned_coroutine_running_at_shutdown_releases_its_joiner() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = spawn_pinned(&rt, move || {
        tx.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        corun_runtime::sleep(Duration::from_millis(1));
    });
    rx.recv().unwrap();
    drop(rt);
    let joined = join_within(h, Duration::from_secs(5)).expect("join hung");
    assert!(joined.is_err(), "abandoned at its park");
}

/// A pinned coroutine parked when its runtime is dropped is abandoned;
/// the OS thread it lived on must exit too, not sleep forever.
#[test]
fn pinned_thread_of_a_parked_coroutine_exits_at_shutdown() {
    use std::sync::mpsc;
    thread_local! {
        // Dropped when the pinned thread exits.
        static ALIVE: RefCell<Option<mpsc::Sender<()>>> = const { RefCell::new(None) };
    }
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (alive, exits) = mpsc::channel::<()>();
    let (parking, parked) = mpsc::channel::<()>();
    let hs: Vec<_> = (0..3)
        .map(|_| {
            let (alive, parking) = (alive.clone(), parking.clone());
            spawn_pinned(&rt, move || {
                // Kept by the thread, not by the frames shutdown leaks.
                ALIVE.with(|a| *a.borrow_mut() = Some(alive));
                parking.send(()).unwrap();
                drop(parking);
                loop {
                    corun_runtime::park(corun_runtime::WaitReason::Park);
                }
            })
        })
        .collect();
    drop((alive, parking));
    for _ in 0..3 {
        parked
            .recv_timeout(LIVENESS)
            .expect("pinned coroutine started");
    }
    // Let them reach their park.
    std::thread::sleep(Duration::from_millis(20));
    drop(rt);
    for h in hs {
        assert!(h.join().is_err(), "abandoned");
    }
    assert_eq!(
        exits.recv_timeout(Duration::from_secs(5)),
        Err(mpsc::RecvTimeoutError::Disconnected),
        "a pinned coroutine's thread is still alive after shutdown"
    );
}

/// Counts its drops; the one made with `true` panics in its destructor.
struct CountsDrop(&'static std::sync::atomic::AtomicUsize, bool);
impl Drop for CountsDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
        if self.1 {
            panic!("a coroutine-local's destructor panics");
        }
    }
}

static PANICKY_DROPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

coroutine_local! {
    static OLDER: RefCell<Option<CountsDrop>> = RefCell::new(None);
    static NEWER: RefCell<Option<CountsDrop>> = RefCell::new(None);
}

/// One local's destructor panicking (the newest, dropped first) must not
/// leak the others: their destructors still run, and the coroutine's
/// result reports the panic.
#[test]
fn a_panicking_local_destructor_does_not_skip_the_others() {
    let h = go!(|| {
        OLDER.with(|o| *o.borrow_mut() = Some(CountsDrop(&PANICKY_DROPS, false)));
        NEWER.with(|n| *n.borrow_mut() = Some(CountsDrop(&PANICKY_DROPS, true)));
    });
    let err = h
        .join()
        .expect_err("the destructor's panic is the coroutine's");
    assert_eq!(
        err.downcast_ref::<&str>(),
        Some(&"a coroutine-local's destructor panics")
    );
    assert_eq!(
        PANICKY_DROPS.load(Ordering::SeqCst),
        2,
        "the older local was never dropped"
    );
}

struct TouchesPong;
struct TouchesPing;
impl Drop for TouchesPong {
    fn drop(&mut self) {
        PONG.with(|p| p.set(Some(TouchesPing)));
    }
}
impl Drop for TouchesPing {
    fn drop(&mut self) {
        PING.with(|p| p.set(Some(TouchesPong)));
    }
}

coroutine_local! {
    static PING: Cell<Option<TouchesPong>> = Cell::new(None);
    static PONG: Cell<Option<TouchesPing>> = Cell::new(None);
}

/// Two locals whose destructors each set the other: as with
/// `thread_local!` at thread exit, a key already dropped cannot come back,
/// so the coroutine ends (reporting the refused access as its panic)
/// instead of re-creating the pair for ever on its worker.
#[test]
fn locals_whose_destructors_recreate_each_other_still_end() {
    let h = go!(|| PING.with(|p| p.set(Some(TouchesPong))));
    let joined = join_within(h, Duration::from_secs(10)).expect("the coroutine never finished");
    let err = joined.expect_err("the refused re-creation is the coroutine's panic");
    let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(
        msg.contains("after the coroutine's end dropped it"),
        "{msg}"
    );
}
