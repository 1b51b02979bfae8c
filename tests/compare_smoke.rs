//! A smoke run of `scripts/compare` (tiny sizes, corun and tokio peers):
//! the comparison tooling builds, every workload of corun's peer produces
//! a figure, and a report comes out. The figures mean nothing at these
//! sizes; `scripts/compare` without `--smoke` makes the real report.

use std::path::Path;
use std::process::Command;

#[test]
fn compare_script_smoke_run_writes_a_report() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if Command::new("python3").arg("--version").output().is_err() {
        // The only tool outside the Rust toolchain this needs.
        eprintln!("NOT RUN: python3 is not installed, scripts/compare needs it");
        return;
    }
    // Cargo's folder for integration tests' files, which follows
    // CARGO_TARGET_DIR: `root/target` may not exist.
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compare-smoke");
    let _ = std::fs::remove_file(out_dir.join("performance.md"));
    let out = Command::new("python3")
        .arg(root.join("scripts/compare"))
        .args(["--smoke", "--peers", "corun,tokio", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/compare --smoke failed:\n{stderr}"
    );
    let report = std::fs::read_to_string(out_dir.join("performance.md")).unwrap();
    for row in [
        "spawn + join",
        "ping-pong",
        "select over 4",
        "parked coroutine RSS",
    ] {
        let line = report
            .lines()
            .find(|l| l.contains(row))
            .unwrap_or_else(|| panic!("no `{row}` row in the report:\n{report}"));
        let corun_cell = line.split('|').nth(2).unwrap().trim();
        assert!(
            corun_cell.replace(',', "").parse::<f64>().is_ok(),
            "corun has no figure in `{line}`"
        );
    }
}
