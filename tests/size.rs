//! The script-tag SDK stays within the size budget written in the SDK's
//! documentation (`docs/sdk.md`, section Size).
//!
//! Reads `www/pkg/sdk.wasm` and `www/pkg/sdk.js` as `cargo xtask build-sdk`
//! left them, compresses each with gzip at level 9 (what a server or CDN
//! sends) and compares the sum with that page's `Budget: N KB gzipped` line;
//! and compares the brotli copies build-sdk wrote beside them (what the
//! collector sends a browser) with its `Wire budget: N KB brotli` line
//! (1 KB = 1000 bytes).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn gzipped_len(path: &Path) -> usize {
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (build it with `cargo xtask build-sdk`)",
            path.display()
        )
    });
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(&bytes).unwrap();
    gz.finish().unwrap().len()
}

/// A budget in bytes, from the `<prefix>N KB …` line of `docs/sdk.md`.
fn budget_line(prefix: &str) -> usize {
    let page = std::fs::read_to_string(root().join("docs/sdk.md")).unwrap();
    let line = page
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("docs/sdk.md has a `{prefix}N KB …` line"));
    let kb: f64 = line
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("the budget line starts with a number of KB");
    (kb * 1000.0) as usize
}

/// The budget in bytes, from the `Budget: N KB gzipped` line of `docs/sdk.md`.
fn budget() -> usize {
    budget_line("Budget: ")
}

#[test]
fn script_tag_sdk_fits_the_budget() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let pkg = root().join("www/pkg");
    let wasm = gzipped_len(&pkg.join("sdk.wasm"));
    let js = gzipped_len(&pkg.join("sdk.js"));
    let budget = budget();
    println!(
        "sdk.wasm {wasm} B + sdk.js {js} B gzipped = {} B; budget {budget} B",
        wasm + js
    );
    assert!(
        wasm + js <= budget,
        "the script-tag SDK is {} bytes gzipped (sdk.wasm {wasm}, sdk.js {js}), over the budget of {budget} in docs/sdk.md",
        wasm + js
    );
}

#[test]
fn the_sdk_on_the_wire_fits_the_brotli_budget() {
    if !waymark_e2e::e2e_wanted() {
        return;
    }
    let pkg = root().join("www/pkg");
    let len = |name: &str| {
        std::fs::metadata(pkg.join(name))
            .unwrap_or_else(|e| panic!("www/pkg/{name}: {e} (run `cargo xtask build-sdk`)"))
            .len() as usize
    };
    let (wasm, js) = (len("sdk.wasm.br"), len("sdk.js.br"));
    let budget = budget_line("Wire budget: ");
    println!(
        "sdk.wasm.br {wasm} B + sdk.js.br {js} B = {} B; budget {budget} B",
        wasm + js
    );
    assert!(
        wasm + js <= budget,
        "the SDK is {} bytes on the wire (brotli: sdk.wasm {wasm}, sdk.js {js}), over the budget of {budget} in docs/sdk.md",
        wasm + js
    );
}
