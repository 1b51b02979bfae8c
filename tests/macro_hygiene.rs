//! `go!`, `select!`, `select_biased!` and `coroutine_local!` used the way a
//! downstream crate uses them: through the facade only, under
//! `#![deny(warnings)]`, inside functions returning `Result` (`?` in arms),
//! next to user items that shadow prelude names, with local variables named
//! like the expansions' internals, and with crossbeam's arm syntax (block
//! and expression bodies, with and without trailing commas). Compiling this
//! file is most of the test.

#![deny(warnings)]
#![allow(dead_code)]
// Arms that `return` in tail position are the point of some cases here.
#![allow(clippy::needless_return)]

use std::time::Duration;

// User types that shadow prelude names the expansions might use unqualified.
struct Option;
struct Result;
struct Box;
struct Some;
struct None;
struct Ok;
struct Err;
struct Vec;
struct String;

type StdResult<T, E> = std::result::Result<T, E>;

#[derive(Debug)]
struct MyError;

impl From<corun::chan::RecvError> for MyError {
    fn from(_: corun::chan::RecvError) -> MyError {
        MyError
    }
}

impl From<corun::chan::SendError<i32>> for MyError {
    fn from(_: corun::chan::SendError<i32>) -> MyError {
        MyError
    }
}

corun::coroutine_local! {
    static COUNTER: std::cell::Cell<u32> = std::cell::Cell::new(0);
    pub(crate) static NAMED: std::cell::RefCell<std::string::String> =
        std::cell::RefCell::new(std::string::String::new())
}

corun::coroutine_local!(static CONST_INIT: std::cell::Cell<u8> = const { std::cell::Cell::new(7) });

fn question_mark_in_arms() -> StdResult<i32, MyError> {
    let (s, r) = corun::chan::bounded::<i32>(1);
    s.send(1)?;
    let v = corun::select! {
        recv(r) -> v => v?,
        default => 0,
    };
    let w = corun::select! {
        send(s, v + 1) -> res => { res?; 1 }
        recv(r) -> v => { v? }
    };
    let x = corun::select_biased! {
        recv(r) -> v => v? + w,
        default(Duration::from_millis(1)) => 0
    };
    StdResult::Ok(x)
}

#[test]
fn question_mark_and_shadowed_prelude_names() {
    let _shadows = (Option, Result, Box, Some, None, Ok, Err, Vec, String);
    assert_eq!(question_mark_in_arms().unwrap(), 3);
}

#[test]
fn locals_named_like_macro_internals() {
    // Names the expansions use for their own bindings.
    let __select_ref = 1;
    let __select_recv = 2;
    let __select_res = 3;
    let __select_oper = 4;
    let __select_op0 = 5;
    let __init = 6;
    #[allow(non_snake_case)]
    let __THREAD = 7;
    let (s, r) = corun::chan::unbounded::<i32>();
    s.send(10).unwrap();
    let got = corun::select! {
        recv(r) -> v => v.unwrap() + __select_ref + __select_recv + __select_res + __select_oper + __select_op0,
    };
    assert_eq!(got, 25);
    let got = corun::select! {
        send(s, __select_res) -> res => { res.unwrap(); __select_ref }
    };
    assert_eq!(got, 1);
    assert_eq!(r.recv(), std::result::Result::Ok(3));
    assert_eq!(__init + __THREAD, 13);
}

#[test]
fn arm_syntax_as_crossbeam_accepts() {
    let (s, r) = corun::chan::unbounded::<i32>();
    // Block bodies without commas, the last with one.
    corun::select! {
        send(s, 1) -> res => { res.unwrap() }
        recv(corun::chan::never::<i32>()) -> _ => {}
    }
    corun::select! {
        recv(r) -> v => { assert_eq!(v, std::result::Result::Ok(1)); },
    }
    // Expression bodies, trailing comma or not, trailing comma in the operation.
    s.send(2).unwrap();
    corun::select! {
        recv(r,) -> v => assert_eq!(v, std::result::Result::Ok(2)),
        send(s, 3,) -> res => res.unwrap()
    }
    // A reference to a channel, an or-pattern, a default with a timeout.
    let r2 = &r;
    while r.try_recv().is_ok() {}
    corun::select! {
        recv(r2) -> (std::result::Result::Ok(_) | std::result::Result::Err(_)) => panic!("empty"),
        default(Duration::from_millis(1)) => {}
    }
    // Only a default.
    let only = corun::select! { default => 5 };
    assert_eq!(only, 5);
}

#[test]
fn default_arm_emits_no_warnings() {
    // `default` bodies that diverge, and arms that all diverge: under
    // `deny(warnings)` an unreachable-code or unused-variable warning from
    // the expansion fails the build.
    let (_s, r) = corun::chan::bounded::<i32>(0);
    let out = loop {
        corun::select! {
            recv(r) -> _ => continue,
            default => break 9,
        }
    };
    assert_eq!(out, 9);
    let f = || -> i32 {
        corun::select! {
            recv(r) -> _ => return 1,
            default => return 2,
        }
    };
    assert_eq!(f(), 2);
    let g = || -> i32 {
        corun::select! {
            recv(r) -> _ => return 1,
            default(Duration::from_millis(1)) => return 2,
        }
    };
    assert_eq!(g(), 2);
    let h = || -> i32 {
        corun::select! {
            recv(corun::chan::after(Duration::from_millis(1))) -> _ => return 3,
        }
    };
    assert_eq!(h(), 3);
}

#[test]
fn go_through_the_facade() {
    let a = corun::go!(|| COUNTER.with(|c| {
        c.set(c.get() + 1);
        c.get()
    }));
    let b = corun::go!(corun::Builder::new().name("b"), move || {
        NAMED.with(|n| n.borrow_mut().push('x'));
        NAMED.with(|n| n.borrow().clone())
    },)
    .unwrap();
    let c = corun::go!(|| CONST_INIT.with(|c| c.get()),);
    assert_eq!(a.join().unwrap(), 1);
    assert_eq!(b.join().unwrap(), "x");
    assert_eq!(c.join().unwrap(), 7);
}

#[test]
fn go_with_question_mark_around() {
    fn spawn_two() -> std::io::Result<i32> {
        let h = corun::go!(corun::Builder::new().stack_size(64 * 1024), || 20)?;
        let j = corun::go!(corun::Builder::new(), || 22)?;
        std::io::Result::Ok(h.join().unwrap() + j.join().unwrap())
    }
    assert_eq!(spawn_two().unwrap(), 42);
}

#[no_implicit_prelude]
mod no_prelude {
    ::corun::coroutine_local! {
        static N: ::std::cell::Cell<u32> = ::std::cell::Cell::new(3);
    }

    pub fn all() -> u32 {
        let (s, r) = ::corun::chan::bounded::<u32>(1);
        ::corun::select! {
            send(s, 1) -> res => res.unwrap(),
            default => ::std::panic!("room for one"),
        }
        let got = ::corun::select! {
            recv(r) -> v => v.unwrap(),
            default(::std::time::Duration::from_millis(1)) => 0,
        };
        let h = ::corun::go!(move || N.with(|n| n.get()) + got);
        h.join().unwrap()
    }
}

#[test]
fn no_implicit_prelude_module() {
    assert_eq!(no_prelude::all(), 4);
}

#[test]
fn nested_and_wrapped_select() {
    macro_rules! my_select {
        ($($t:tt)*) => { corun::select! { $($t)* } };
    }
    let (s1, r1) = corun::chan::unbounded::<i32>();
    let (s2, r2) = corun::chan::unbounded::<i32>();
    s1.send(1).unwrap();
    s2.send(2).unwrap();
    let got = my_select! {
        recv(r1) -> a => corun::select! {
            recv(r2) -> b => a.unwrap() + b.unwrap(),
            default => 0,
        },
        recv(corun::chan::never::<i32>()) -> _ => 0,
    };
    assert_eq!(got, 3);
}
