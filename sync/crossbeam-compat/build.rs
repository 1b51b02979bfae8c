//! Prepares crossbeam-channel's own tests to run against `corun_sync::chan`.
//!
//! Reads the `tests/` folder of the exact upstream release (a build
//! dependency, so Cargo has downloaded and unpacked it) and writes each file
//! to `OUT_DIR` with one change: every `use crossbeam_channel...` line
//! imports from `corun_sync::chan` instead. Nothing else in the file is
//! touched, which is the acceptance bar of corun's channels: code written
//! for crossbeam-channel compiles and behaves the same after changing only
//! the import. The upstream release itself is not linked into the tests
//! (its crate name here is `upstream_crossbeam_channel`), so a reference
//! left unchanged would fail to compile rather than test the wrong crate.
//!
//! Each file is written a second time with every test's body run in a
//! coroutine (`support::in_coroutine`): the test's own sends, receives and
//! selects then park a coroutine while the threads it spawns stay OS
//! threads, so the suite also covers channels shared between the two. The
//! wrapping is textual and relies on upstream's rustfmt layout (a `#[test]`
//! function opens with `fn name() {` and closes with `}` at the same
//! indentation); a file laid out otherwise fails the build, not the test.

use std::fs;
use std::path::{Path, PathBuf};

/// Keep in step with the pinned build dependency in Cargo.toml.
const UPSTREAM: &str = "crossbeam-channel-0.5.17";
/// Overrides the search (vendored or relocated sources).
const OVERRIDE: &str = "CORUN_CROSSBEAM_CHANNEL_SRC";

fn main() {
    println!("cargo::rerun-if-env-changed={OVERRIDE}");
    let src = upstream_dir().unwrap_or_else(|| {
        panic!(
            "the sources of {UPSTREAM} were not found in Cargo's registry \
             (CARGO_HOME/registry/src/*/); set {OVERRIDE} to the unpacked crate"
        )
    });
    let tests = src.join("tests");
    println!("cargo::rerun-if-changed={}", tests.display());
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let mut names: Vec<String> = fs::read_dir(&tests)
        .unwrap_or_else(|e| panic!("reading {}: {e}", tests.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|f| f.strip_suffix(".rs").map(str::to_owned))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "{} holds no tests", tests.display());
    for name in names {
        let runner = |suffix: &str| {
            let file = format!("{name}{suffix}.rs");
            assert!(
                manifest_dir.join("tests").join(&file).is_file(),
                "upstream test file {name}.rs has no tests/{file} here to run it"
            );
        };
        runner("");
        let text = repoint_imports(&fs::read_to_string(tests.join(format!("{name}.rs"))).unwrap());
        let plain = out.join(format!("{name}.rs"));
        fs::write(&plain, &text).unwrap();
        let wrapped = out.join(format!("{name}.in_coroutines.rs"));
        fs::write(&wrapped, bodies_in_coroutines(&text, &name)).unwrap();
        // `tests/{name}.rs` includes this; a module file (unlike the text
        // of an `include!`) may open with inner attributes.
        let mut modules = module("upstream", &plain);
        // A file with its own global allocator cannot be compiled twice
        // into one binary: its coroutine run gets a binary of its own.
        if text.contains("#[global_allocator]") {
            runner("_in_coroutines");
            let own = module("in_coroutines", &wrapped);
            fs::write(out.join(format!("{name}_in_coroutines.mod.rs")), own).unwrap();
        } else {
            modules.push_str(&module("in_coroutines", &wrapped));
        }
        fs::write(out.join(format!("{name}.mod.rs")), modules).unwrap();
    }
}

fn module(name: &str, file: &Path) -> String {
    format!("#[path = {:?}]\nmod {name};\n", file.display().to_string())
}

/// The file with the body of every `#[test]` function wrapped in
/// `crate::support::in_coroutine(|| { ... })`.
fn bodies_in_coroutines(text: &str, name: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4096);
    let mut tests = 0;
    let mut wrapped = 0;
    // The indentation of a `#[test]` whose function has not opened yet.
    let mut pending: Option<&str> = None;
    // The line that closes the function being wrapped.
    let mut closing: Option<String> = None;
    for line in text.lines() {
        let code = line.trim_start();
        let indent = &line[..line.len() - code.len()];
        if closing.as_deref() == Some(line) {
            out.push_str(indent);
            out.push_str("}) }");
            closing = None;
        } else if code == "#[test]" {
            tests += 1;
            pending = Some(indent);
            out.push_str(line);
        } else if let Some(at) = pending {
            if !code.starts_with("#[") {
                assert!(
                    indent == at && code.starts_with("fn ") && code.ends_with("() {"),
                    "{name}.rs: a #[test] opens with `{line}`, not `fn name() {{`"
                );
                out.push_str(line);
                out.push_str(" crate::support::in_coroutine(|| {");
                closing = Some(format!("{indent}}}"));
                pending = None;
                wrapped += 1;
            } else {
                out.push_str(line);
            }
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert!(
        closing.is_none() && pending.is_none(),
        "{name}.rs: a #[test] function never closes"
    );
    assert_eq!(tests, wrapped, "{name}.rs: every #[test] is wrapped");
    out
}

/// The file with its `crossbeam_channel` imports pointed at corun.
fn repoint_imports(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    for line in text.lines() {
        let code = line.trim_start();
        match code.strip_prefix("use crossbeam_channel") {
            Some(rest) => {
                out.push_str(&line[..line.len() - code.len()]);
                out.push_str("use corun_sync::chan");
                out.push_str(rest);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// `$CORUN_CROSSBEAM_CHANNEL_SRC`, else the release unpacked in Cargo's
/// registry.
fn upstream_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(OVERRIDE) {
        return Some(PathBuf::from(dir));
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    fs::read_dir(cargo_home.join("registry").join("src"))
        .ok()?
        .filter_map(Result::ok)
        .map(|index| index.path().join(UPSTREAM))
        .find(|dir| dir.join("tests").is_dir())
}
