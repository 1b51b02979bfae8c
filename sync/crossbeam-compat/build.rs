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
        assert!(
            manifest_dir
                .join("tests")
                .join(format!("{name}.rs"))
                .is_file(),
            "upstream test file {name}.rs has no tests/{name}.rs here to run it"
        );
        let text = fs::read_to_string(tests.join(format!("{name}.rs"))).unwrap();
        let file = out.join(format!("{name}.rs"));
        fs::write(&file, repoint_imports(&text)).unwrap();
        // `tests/{name}.rs` includes this; a module file (unlike the text
        // of an `include!`) may open with inner attributes.
        let module = format!(
            "#[path = {:?}]\nmod upstream;\n",
            file.display().to_string()
        );
        fs::write(out.join(format!("{name}.mod.rs")), module).unwrap();
    }
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
