//! Static assertions: the public types carry the auto traits and the
//! formatting impls their std / crossbeam-channel counterparts have, so code
//! moving from `std::thread`, `std::sync`, `std::net` or crossbeam-channel
//! keeps compiling. Compiling this file is the test.

#![allow(dead_code)]

use std::cell::Cell;
use std::fmt::{Debug, Display};
use std::panic::{RefUnwindSafe, UnwindSafe};

/// `T: !Send` etc.: ambiguous (a compile error) if `$t` implements `$tr`.
macro_rules! assert_not_impl {
    ($t:ty: $tr:path) => {
        const _: fn() = || {
            trait AmbiguousIfImpl<A> {
                fn some_item() {}
            }
            impl<T: ?Sized> AmbiguousIfImpl<()> for T {}
            struct Invalid;
            impl<T: ?Sized + $tr> AmbiguousIfImpl<Invalid> for T {}
            let _ = <$t as AmbiguousIfImpl<_>>::some_item;
        };
    };
}

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn send_sync<T: Send + Sync>() {}
fn unwind<T: UnwindSafe + RefUnwindSafe>() {}
fn debug<T: Debug>() {}
fn display<T: Display>() {}

/// `Send` but not `Sync`, as `std::thread::JoinHandle` and crossbeam's
/// channels accept.
type SendOnly = Cell<u32>;

#[test]
fn runtime_types() {
    // std::thread::JoinHandle<T> is Send + Sync for every T; join needs
    // `&mut`/ownership to reach the T, so `T: Send` is enough for both.
    send_sync::<corun::JoinHandle<u32>>();
    send_sync::<corun::JoinHandle<SendOnly>>();
    debug::<corun::JoinHandle<SendOnly>>();
    send_sync::<corun::Coroutine>();
    unwind::<corun::Coroutine>();
    debug::<corun::Coroutine>();
    send_sync::<corun::Builder>();
    debug::<corun::Builder>();
    send_sync::<corun::Runtime>();
    debug::<corun::Runtime>();
    send_sync::<corun::RuntimeBuilder>();
    send_sync::<corun::LocalKey<std::cell::RefCell<u32>>>();
    send_sync::<corun::runtime::Stats>();
    send_sync::<corun::runtime::CoroutineInfo>();
}

#[test]
fn channel_types() {
    use corun::chan::*;
    // crossbeam-channel: Sender/Receiver are Send + Sync when T: Send.
    send_sync::<Sender<SendOnly>>();
    send_sync::<Receiver<SendOnly>>();
    unwind::<Sender<SendOnly>>();
    unwind::<Receiver<SendOnly>>();
    debug::<Sender<SendOnly>>();
    debug::<Receiver<SendOnly>>();
    send_sync::<IntoIter<SendOnly>>();
    send_sync::<Select<'static>>();
    debug::<Select<'static>>();
    // Errors: Send + Sync as their payload, std::error::Error when T: Send.
    fn error<E: std::error::Error + Send + Sync + 'static>() {}
    error::<SendError<u32>>();
    error::<TrySendError<u32>>();
    error::<SendTimeoutError<u32>>();
    error::<RecvError>();
    error::<TryRecvError>();
    error::<RecvTimeoutError>();
    error::<TrySelectError>();
    error::<SelectTimeoutError>();
    error::<TryReadyError>();
    error::<ReadyTimeoutError>();
    // Boxing a channel error into a `Box<dyn Error + Send + Sync>` with `?`.
    fn boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let (s, r) = bounded::<u32>(1);
        drop(r);
        s.send(1)?;
        Ok(())
    }
    assert!(boxed().is_err());
}

#[test]
fn sync_types() {
    use corun::sync::*;
    send_sync::<Mutex<SendOnly>>();
    send_sync::<RwLock<u32>>();
    send::<RwLock<SendOnly>>();
    unwind::<Mutex<SendOnly>>();
    unwind::<RwLock<SendOnly>>();
    send_sync::<Condvar>();
    unwind::<Condvar>();
    send_sync::<Barrier>();
    unwind::<Barrier>();
    send_sync::<Once>();
    unwind::<Once>();
    send_sync::<OnceLock<u32>>();
    unwind::<OnceLock<u32>>();
    send_sync::<Semaphore>();
    unwind::<Semaphore>();
    send_sync::<WaitGroup>();
    unwind::<WaitGroup>();
    send_sync::<SemaphorePermit<'static>>();
    send_sync::<OwnedSemaphorePermit>();

    // Guards: Sync as `&T` / `&mut T` would be; never Sync for a !Sync T.
    sync::<MutexGuard<'static, u32>>();
    assert_not_impl!(MutexGuard<'static, SendOnly>: Sync);
    sync::<RwLockReadGuard<'static, u32>>();
    assert_not_impl!(RwLockReadGuard<'static, SendOnly>: Sync);
    sync::<RwLockWriteGuard<'static, u32>>();
    assert_not_impl!(RwLockWriteGuard<'static, SendOnly>: Sync);
    // (corun's guards are Send: docs/sync.md explains why.)

    // std's exclusive guards are unwind safe for every T (poisoning covers
    // them); a read guard is as unwind safe as `&T`.
    unwind::<MutexGuard<'static, SendOnly>>();
    unwind::<RwLockWriteGuard<'static, SendOnly>>();
    unwind::<RwLockReadGuard<'static, u32>>();

    // std formats every lock guard with Debug and Display.
    debug::<MutexGuard<'static, u32>>();
    display::<MutexGuard<'static, u32>>();
    debug::<RwLockReadGuard<'static, u32>>();
    display::<RwLockReadGuard<'static, u32>>();
    debug::<RwLockWriteGuard<'static, u32>>();
    display::<RwLockWriteGuard<'static, u32>>();
    debug::<Mutex<u32>>();
    debug::<RwLock<u32>>();
    debug::<Condvar>();
    debug::<Barrier>();
    debug::<BarrierWaitResult>();
    debug::<WaitTimeoutResult>();
    debug::<Once>();
    debug::<OnceState>();
    debug::<OnceLock<u32>>();
    debug::<WaitGroup>();
    debug::<Semaphore>();
}

#[test]
fn guard_formatting_matches_std() {
    let m = corun::sync::Mutex::new(5);
    let l = corun::sync::RwLock::new(6);
    let (sm, sl) = (std::sync::Mutex::new(5), std::sync::RwLock::new(6));
    fn both<T: Debug + Display>(g: T) -> std::string::String {
        format!("{g:?} {g}")
    }
    assert_eq!(both(m.lock().unwrap()), both(sm.lock().unwrap()));
    assert_eq!(both(l.read().unwrap()), both(sl.read().unwrap()));
    assert_eq!(both(l.write().unwrap()), both(sl.write().unwrap()));
}

#[test]
fn context_types() {
    use corun::context::*;
    send_sync::<Context>();
    send_sync::<CancelFn>();
    send_sync::<ErrGroup<std::io::Error>>();
    debug::<Context>();
    debug::<CancelFn>();
    debug::<ErrGroup<std::io::Error>>();
}

#[test]
fn net_types() {
    use corun::net::*;
    fn std_like<T: Send + Sync + UnwindSafe + RefUnwindSafe + Debug>() {}
    std_like::<TcpListener>();
    std_like::<TcpStream>();
    std_like::<UdpSocket>();
    std_like::<UnixListener>();
    std_like::<UnixStream>();
    std_like::<UnixDatagram>();
    fn read_write<T>()
    where
        T: std::io::Read + std::io::Write,
        for<'a> &'a T: std::io::Read + std::io::Write,
    {
    }
    read_write::<TcpStream>();
    read_write::<UnixStream>();
    fn fd<
        T: std::os::fd::AsRawFd
            + std::os::fd::AsFd
            + std::os::fd::IntoRawFd
            + std::os::fd::FromRawFd
            + Into<std::os::fd::OwnedFd>
            + From<std::os::fd::OwnedFd>,
    >() {
    }
    fd::<TcpListener>();
    fd::<TcpStream>();
    fd::<UdpSocket>();
    fd::<UnixListener>();
    fd::<UnixStream>();
    fd::<UnixDatagram>();
}
