//! The `select!` and `select_biased!` macros.
//!
//! Expansion happens in three stages, all in `__select_internal!`:
//! `@list` normalises the cases (commas, blocks, the single `default`),
//! `@bind` evaluates each channel expression once and binds a reference to
//! it under a label taken from a fixed list (so at most 32 operations), and
//! `@run` builds the operation array, runs the selection and completes the
//! chosen operation, evaluating a send's message only when it is chosen.
//! Bodies are spliced in place, so `break`, `continue`, `return` and `?`
//! inside them act on the enclosing code, as with crossbeam-channel.

/// Waits on several channel operations and runs the arm of the one that
/// completes, with crossbeam-channel's syntax:
///
/// - `recv(r) -> res => body`: `res` is a `Result<T, RecvError>`;
/// - `send(s, msg) -> res => body`: `res` is a `Result<(), SendError<T>>`;
///   `msg` is evaluated only if this arm is chosen;
/// - `default => body`: run if no operation is ready right now;
/// - `default(timeout) => body`: run if none becomes ready within `timeout`.
///
/// Among ready operations one is chosen uniformly at random, as in Go. An
/// arm on a disconnected channel is ready (its result is an `Err`). A
/// blocked `select!` parks the coroutine with wait reason "select".
///
/// ```
/// use std::time::Duration;
/// use corun_sync::chan::{after, bounded, select, unbounded};
///
/// let (s1, r1) = unbounded::<i32>();
/// let (s2, r2) = bounded::<&str>(1);
/// s1.send(10).unwrap();
///
/// select! {
///     recv(r1) -> msg => assert_eq!(msg, Ok(10)),
///     send(s2, "hi") -> res => res.unwrap(),
/// }
///
/// // With a timeout, as Go's `case <-time.After(d)` or crossbeam's `default(d)`.
/// let (_s3, r3) = unbounded::<i32>();
/// select! {
///     recv(r3) -> _ => panic!("nothing was sent"),
///     recv(after(Duration::from_millis(1))) -> _ => {}
/// }
/// select! {
///     recv(r3) -> _ => panic!("nothing was sent"),
///     default(Duration::from_millis(1)) => {}
/// }
/// # drop(r2);
/// ```
#[macro_export]
macro_rules! select {
    ($($tokens:tt)*) => {
        $crate::__select_internal!(@list false () () ($($tokens)*))
    };
}

/// Like [`select!`], but when several operations are ready it picks the
/// first one listed instead of a random one.
///
/// ```
/// use corun_sync::chan::{select_biased, unbounded};
///
/// let (s1, r1) = unbounded::<i32>();
/// let (s2, r2) = unbounded::<i32>();
/// s1.send(1).unwrap();
/// s2.send(2).unwrap();
/// select_biased! {
///     recv(r1) -> v => assert_eq!(v, Ok(1)),
///     recv(r2) -> _ => panic!("r1 comes first"),
/// }
/// ```
#[macro_export]
macro_rules! select_biased {
    ($($tokens:tt)*) => {
        $crate::__select_internal!(@list true () () ($($tokens)*))
    };
}

/// crossbeam-channel's name for the machinery behind its `select!`, which
/// code written for it sometimes calls directly (crossbeam's own tests do,
/// to wrap `select!` in a macro of their own). Such callers define a
/// constant `_IS_BIASED` in scope, as crossbeam's `select!` does; this reads
/// it the same way.
#[doc(hidden)]
#[macro_export]
macro_rules! crossbeam_channel_internal {
    ($($tokens:tt)*) => {
        $crate::__select_internal!(@list (_IS_BIASED) () () ($($tokens)*))
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __select_internal {
    // ---- @list: normalise the cases ----
    (@list $b:tt $ops:tt $def:tt ()) => {
        $crate::__select_internal!(@bind $b $def $ops ((0 __select_op0) (1 __select_op1) (2 __select_op2) (3 __select_op3) (4 __select_op4) (5 __select_op5) (6 __select_op6) (7 __select_op7) (8 __select_op8) (9 __select_op9) (10 __select_op10) (11 __select_op11) (12 __select_op12) (13 __select_op13) (14 __select_op14) (15 __select_op15) (16 __select_op16) (17 __select_op17) (18 __select_op18) (19 __select_op19) (20 __select_op20) (21 __select_op21) (22 __select_op22) (23 __select_op23) (24 __select_op24) (25 __select_op25) (26 __select_op26) (27 __select_op27) (28 __select_op28) (29 __select_op29) (30 __select_op30) (31 __select_op31)) ())
    };
    (@list $b:tt $ops:tt ($($def:tt)+) (default $($rest:tt)*)) => {
        ::std::compile_error!("there can be only one `default` case in a `select!` block")
    };
    (@list $b:tt $ops:tt () (default => $($rest:tt)*)) => {
        $crate::__select_internal!(@list $b $ops () (default() => $($rest)*))
    };
    (@list $b:tt $ops:tt () (default($($t:expr)? $(,)?) => $body:block, $($rest:tt)*)) => {
        $crate::__select_internal!(@list $b $ops (($($t)?) $body) ($($rest)*))
    };
    (@list $b:tt $ops:tt () (default($($t:expr)? $(,)?) => $body:block $($rest:tt)*)) => {
        $crate::__select_internal!(@list $b $ops (($($t)?) $body) ($($rest)*))
    };
    (@list $b:tt $ops:tt () (default($($t:expr)? $(,)?) => $body:expr, $($rest:tt)*)) => {
        $crate::__select_internal!(@list $b $ops (($($t)?) { $body }) ($($rest)*))
    };
    (@list $b:tt $ops:tt () (default($($t:expr)? $(,)?) => $body:expr)) => {
        $crate::__select_internal!(@list $b $ops (($($t)?) { $body }) ())
    };
    (@list $b:tt ($($ops:tt)*) $def:tt (recv($r:expr $(,)?) -> $res:pat => $body:block, $($rest:tt)*)) => {
        $crate::__select_internal!(@list $b ($($ops)* (recv ($r) ($res) $body)) $def ($($rest)*))
    };
    (@list $b:tt ($($ops:tt)*) $def:tt (recv($r:expr $(,)?) -> $res:pat => $body:block $($rest:tt)*)) => {
        $crate::__select_internal!(@list $b ($($ops)* (recv ($r) ($res) $body)) $def ($($rest)*))
    };
    (@list $b:tt ($($ops:tt)*) $def:tt (recv($r:expr $(,)?) -> $res:pat => $body:expr, $($rest:tt)*)) => {
        $crate::__select_internal!(@list $b ($($ops)* (recv ($r) ($res) { $body })) $def ($($rest)*))
    };
    (@list $b:tt ($($ops:tt)*) $def:tt (recv($r:expr $(,)?) -> $res:pat => $body:expr)) => {
        $crate::__select_internal!(@list $b ($($ops)* (recv ($r) ($res) { $body })) $def ())
    };
    (@list $b:tt ($($ops:tt)*) $def:tt (send($s:expr, $m:expr $(,)?) -> $res:pat => $body:block, $($rest:tt)*)) => {
        $crate::__select_internal!(@list $b ($($ops)* (send ($s) ($m) ($res) $body)) $def ($($rest)*))
    };
    (@list $b:tt ($($ops:tt)*) $def:tt (send($s:expr, $m:expr $(,)?) -> $res:pat => $body:block $($rest:tt)*)) => {
        $crate::__select_internal!(@list $b ($($ops)* (send ($s) ($m) ($res) $body)) $def ($($rest)*))
    };
    (@list $b:tt ($($ops:tt)*) $def:tt (send($s:expr, $m:expr $(,)?) -> $res:pat => $body:expr, $($rest:tt)*)) => {
        $crate::__select_internal!(@list $b ($($ops)* (send ($s) ($m) ($res) { $body })) $def ($($rest)*))
    };
    (@list $b:tt ($($ops:tt)*) $def:tt (send($s:expr, $m:expr $(,)?) -> $res:pat => $body:expr)) => {
        $crate::__select_internal!(@list $b ($($ops)* (send ($s) ($m) ($res) { $body })) $def ())
    };
    (@list $b:tt $ops:tt $def:tt ($($rest:tt)*)) => {
        ::std::compile_error!(::std::concat!(
            "invalid `select!` case; expected `recv(r) -> res => body`, ",
            "`send(s, msg) -> res => body`, `default => body` or `default(timeout) => body`, found: ",
            ::std::stringify!($($rest)*)
        ))
    };

    // ---- @bind: evaluate each channel once, bind it to a label ----
    (@bind $b:tt $def:tt ($op:tt $($ops:tt)*) () $bound:tt) => {
        ::std::compile_error!("too many operations in a `select!` block (at most 32)")
    };
    (@bind $b:tt $def:tt ((recv ($r:expr) $res:tt $body:tt) $($ops:tt)*) (($i:tt $h:ident) $($labels:tt)*) ($($bound:tt)*)) => {
        match $r {
            ref __select_ref => {
                let __select_recv: &$crate::chan::Receiver<_> = __select_ref;
                let $h = $crate::chan::__private::RecvArm::new(__select_recv);
                $crate::__select_internal!(@bind $b $def ($($ops)*) ($($labels)*) ($($bound)* (recv $i $h $res $body)))
            }
        }
    };
    (@bind $b:tt $def:tt ((send ($s:expr) $m:tt $res:tt $body:tt) $($ops:tt)*) (($i:tt $h:ident) $($labels:tt)*) ($($bound:tt)*)) => {
        match $s {
            ref __select_ref => {
                let $h: &$crate::chan::Sender<_> = __select_ref;
                $crate::__select_internal!(@bind $b $def ($($ops)*) ($($labels)*) ($($bound)* (send $i $h $m $res $body)))
            }
        }
    };
    (@bind $b:tt $def:tt () $labels:tt $bound:tt) => {
        $crate::__select_internal!(@run $b $def $bound __select_oper)
    };

    // ---- @run: select, then complete the chosen operation ----
    (@run $b:tt () ($(($kind:ident $i:tt $h:ident $($x:tt)*))*) $oper:ident) => {{
        let $oper = $crate::chan::__private::select(
            &mut [$($crate::__select_internal!(@op $kind $h $i)),*],
            $b,
        );
        $crate::__select_internal!(@complete $oper ($(($kind $i $h $($x)*))*))
    }};
    (@run $b:tt (() $dbody:tt) ($(($kind:ident $i:tt $h:ident $($x:tt)*))*) $oper:ident) => {{
        match $crate::chan::__private::try_select(
            &mut [$($crate::__select_internal!(@op $kind $h $i)),*],
            $b,
        ) {
            ::std::option::Option::None => $dbody,
            ::std::option::Option::Some($oper) => {
                $crate::__select_internal!(@complete $oper ($(($kind $i $h $($x)*))*))
            }
        }
    }};
    (@run $b:tt (($t:expr) $dbody:tt) ($(($kind:ident $i:tt $h:ident $($x:tt)*))*) $oper:ident) => {{
        match $crate::chan::__private::select_timeout(
            &mut [$($crate::__select_internal!(@op $kind $h $i)),*],
            $t,
            $b,
        ) {
            ::std::option::Option::None => $dbody,
            ::std::option::Option::Some($oper) => {
                $crate::__select_internal!(@complete $oper ($(($kind $i $h $($x)*))*))
            }
        }
    }};

    (@op recv $h:ident $i:tt) => {
        $crate::chan::__private::Op::recv_arm(&$h, $i)
    };
    (@op send $h:ident $i:tt) => {
        $crate::chan::__private::Op::send($h, $i)
    };

    (@complete $oper:ident ()) => {{
        let _ = $oper;
        ::std::unreachable!("select! picked an operation it does not have")
    }};
    (@complete $oper:ident ((recv $i:tt $h:ident ($res:pat) $body:tt) $($rest:tt)*)) => {
        if $oper.index() == $i {
            let __select_res = $oper.recv($h.receiver());
            let $res = __select_res;
            $body
        } else {
            $crate::__select_internal!(@complete $oper ($($rest)*))
        }
    };
    (@complete $oper:ident ((send $i:tt $h:ident ($m:expr) ($res:pat) $body:tt) $($rest:tt)*)) => {
        if $oper.index() == $i {
            let __select_res = $oper.send($h, $m);
            let $res = __select_res;
            $body
        } else {
            $crate::__select_internal!(@complete $oper ($($rest)*))
        }
    };
}
