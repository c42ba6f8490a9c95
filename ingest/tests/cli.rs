//! The `waymark` binary's command line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn a_malformed_clickhouse_url_is_refused_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--store",
            "clickhouse://127.0.0.1:8123/not-a-name",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("database name"), "{stderr}");
}

#[test]
fn the_store_can_be_chosen_by_environment_too() {
    let output = Command::new(env!("CARGO_BIN_EXE_waymark"))
        .args(["--addr", "127.0.0.1:0"])
        .env("WAYMARK_STORE", "postgres")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown store"), "{stderr}");
}
