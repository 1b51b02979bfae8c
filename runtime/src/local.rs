//! `coroutine_local!`: values that belong to a coroutine and follow it
//! from thread to thread.
//!
//! Each coroutine carries a small map from key address to a boxed value,
//! created on first use and dropped when the coroutine finishes, on its own
//! stack. Outside coroutines the same key reads an ordinary thread-local,
//! so code using it works in both worlds.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::thread::LocalKey as ThreadKey;

use crate::tls;

/// Per-coroutine storage: key address and value.
#[derive(Default)]
pub(crate) struct LocalMap {
    entries: Vec<(usize, *mut dyn Any)>,
    /// Keys whose values the coroutine's end has dropped: they may not be
    /// initialised again (see `drop_current`).
    destroyed: Vec<usize>,
}

impl Drop for LocalMap {
    fn drop(&mut self) {
        // Later values may refer to earlier ones' effects; drop newest first.
        while let Some((_, value)) = self.entries.pop() {
            // SAFETY: made by `Box::into_raw` in `with`, dropped once here.
            drop(unsafe { Box::from_raw(value) });
        }
    }
}

/// Drops the running coroutine's locals (at its end, on its own stack).
///
/// Newest first, one value at a time, the map staying in place: a
/// destructor may use another local, which is still there or is created
/// afresh (and dropped in turn), but a key whose value was already dropped
/// cannot be initialised again, as a `thread_local!` cannot be during
/// thread exit: `with` panics. Without that, two locals whose destructors
/// each touch the other re-created each other for ever and the coroutine
/// never finished (its worker spinning).
///
/// Every value is dropped even if some destructors panic: the first panic
/// is resumed once all are gone (the coroutine's result reports it), later
/// ones are dropped. Letting the first unwind out of the map's `Drop`
/// leaked the values still in it, their destructors never run.
pub(crate) fn drop_current() {
    let task = tls::current_task_ptr();
    if task.is_null() {
        return;
    }
    let mut first: Option<Box<dyn Any + Send>> = None;
    loop {
        // SAFETY: we run as this task; only it touches its locals. The
        // borrow ends before the value's destructor runs (which may call
        // `with`, borrowing the map again).
        let next = unsafe {
            let slot = &mut *(*task).locals.get();
            let Some(map) = slot.as_mut() else { break };
            match map.entries.pop() {
                Some((key, value)) => {
                    map.destroyed.push(key);
                    value
                }
                None => break,
            }
        };
        // SAFETY: made by `Box::into_raw` in `with` and popped from the
        // map, so dropped once, here.
        let value = unsafe { Box::from_raw(next) };
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(move || drop(value))) {
            match first {
                None => first = Some(payload),
                Some(_) => crate::task::drop_caught(payload),
            }
        }
    }
    // SAFETY: as above; the map is empty now.
    drop(unsafe { (*(*task).locals.get()).take() });
    if let Some(payload) = first {
        panic::resume_unwind(payload);
    }
}

/// A key for a coroutine-local value, declared with [`coroutine_local!`](crate::coroutine_local).
///
/// ```
/// use std::cell::RefCell;
///
/// corun_runtime::coroutine_local! {
///     static REQUEST_ID: RefCell<Option<u64>> = RefCell::new(None);
/// }
/// let handles: Vec<_> = (0..4u64)
///     .map(|id| {
///         corun_runtime::go!(move || {
///             REQUEST_ID.with(|r| *r.borrow_mut() = Some(id));
///             corun_runtime::yield_now(); // others run on this thread meanwhile
///             REQUEST_ID.with(|r| *r.borrow())
///         })
///     })
///     .collect();
/// for (id, h) in handles.into_iter().enumerate() {
///     assert_eq!(h.join().unwrap(), Some(id as u64), "each coroutine has its own value");
/// }
/// ```
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
    thread: &'static ThreadKey<T>,
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T, thread: &'static ThreadKey<T>) -> LocalKey<T> {
        LocalKey { init, thread }
    }

    /// Calls `f` with this coroutine's value (initialised on first use), or
    /// with the calling thread's value outside coroutines.
    ///
    /// The reference stays valid across waits inside `f`: the value lives
    /// with the coroutine, not with the thread it happens to run on.
    ///
    /// ```
    /// use std::cell::Cell;
    ///
    /// corun_runtime::coroutine_local! {
    ///     static DEPTH: Cell<u32> = Cell::new(0);
    /// }
    /// let h = corun_runtime::go!(|| {
    ///     DEPTH.with(|d| d.set(d.get() + 1));
    ///     DEPTH.with(|d| d.get())
    /// });
    /// assert_eq!(h.join().unwrap(), 1);
    /// assert_eq!(h_main(), 0);
    /// fn h_main() -> u32 {
    ///     DEPTH.with(|d| d.get()) // outside coroutines: this thread's value
    /// }
    /// ```
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let task = tls::current_task_ptr();
        if task.is_null() {
            return self.thread.with(f);
        }
        let key = self as *const Self as usize;
        // SAFETY: only the running coroutine touches its locals, and we are
        // it. Values are boxed, so growing the map does not move them; they
        // are removed only when the coroutine ends, after `f` returned
        // (`drop_current` removes none while a destructor it runs, which
        // may call us, is running).
        let value: *const T = unsafe {
            let slot = &mut *(*task).locals.get();
            let map = slot.get_or_insert_with(Default::default);
            match map.entries.iter().find(|(k, _)| *k == key) {
                Some((_, v)) => (*v).cast::<T>(),
                None => {
                    assert!(
                        !map.destroyed.contains(&key),
                        "corun: a coroutine-local was used after the coroutine's end dropped it"
                    );
                    // Initialise outside any borrow of the map: `init` may
                    // use other coroutine-locals.
                    let fresh: *mut dyn Any = Box::into_raw(Box::new((self.init)()));
                    let slot = &mut *(*task).locals.get();
                    let map = slot.get_or_insert_with(Default::default);
                    map.entries.push((key, fresh));
                    fresh.cast::<T>()
                }
            }
        };
        // SAFETY: see above; shared access only, the value outlives `f`.
        f(unsafe { &*value })
    }
}

impl<T: 'static> std::fmt::Debug for LocalKey<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalKey { .. }")
    }
}

/// Declares coroutine-local statics, with `thread_local!`'s syntax.
///
/// ```
/// use std::cell::Cell;
/// corun_runtime::coroutine_local! {
///     static COUNT: Cell<u32> = Cell::new(0);
/// }
/// let h = corun_runtime::spawn(|| {
///     COUNT.with(|c| c.set(c.get() + 1));
///     corun_runtime::yield_now(); // may move to another thread
///     COUNT.with(|c| c.get())
/// });
/// assert_eq!(h.join().unwrap(), 1);
/// COUNT.with(|c| assert_eq!(c.get(), 0)); // this thread's own value
/// ```
#[macro_export]
macro_rules! coroutine_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $crate::coroutine_local!($(#[$attr])* $vis static $name: $t = $init);
        $crate::coroutine_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr) => {
        $(#[$attr])* $vis static $name: $crate::LocalKey<$t> = {
            fn __init() -> $t {
                $init
            }
            ::std::thread_local! {
                static __THREAD: $t = __init();
            }
            $crate::LocalKey::new(__init, &__THREAD)
        };
    };
}
