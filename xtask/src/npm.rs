//! `cargo xtask build-npm`: the npm package `waymark` in `target/npm/waymark/`.
//!
//! wasm-pack builds the SDK twice with the `wasm-release` profile: `--target
//! web` (what the package's own entry, `sdk/npm/index.js`, loads, and the
//! `waymark/web` subpath) and `--target bundler` (the `waymark/bundler`
//! subpath, for bundlers with WebAssembly ES-module integration). binaryen's
//! `wasm-opt -Oz` from `target/tools/` then shrinks each `.wasm` (wasm-pack
//! would download its own binaryen, so it runs with `--no-opt`). Both are
//! built without the SDK's default `std` feature, like the script tag.

use super::{root, run, setup, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasm-pack targets packed, each in a folder of the same name.
const TARGETS: [&str; 2] = ["web", "bundler"];

/// The package folder `build` fills.
pub fn package_dir() -> PathBuf {
    target_dir().join("npm/waymark")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

pub fn build() -> Result {
    let staging = target_dir().join("npm/wasm-pack");
    let package = package_dir();
    if package.exists() {
        fs::remove_dir_all(&package).map_err(|e| format!("removing {}: {e}", package.display()))?;
    }
    for target in TARGETS {
        let out = staging.join(target);
        run(Command::new("wasm-pack")
            .args([
                "build",
                "sdk",
                "--profile",
                "wasm-release",
                "--target",
                target,
            ])
            .args(["--no-opt", "--no-pack", "--out-dir"])
            .arg(&out))?;
        copy_build(&out, &package.join(target))?;
    }
    let source = root().join("sdk/npm");
    for name in ["index.js", "index.d.ts", "README.md"] {
        copy(&source.join(name), &package.join(name))?;
    }
    let manifest = package.join("package.json");
    fs::write(&manifest, package_json(env!("CARGO_PKG_VERSION")))
        .map_err(|e| format!("writing {}: {e}", manifest.display()))?;

    let web = package.join("web");
    let sizes = [
        package.join("index.js"),
        web.join("waymark_sdk.js"),
        web.join("waymark_sdk_bg.wasm"),
    ]
    .iter()
    .map(|p| {
        let (raw, gz) = sizes(p);
        format!(
            "{} {raw} B ({gz} B gzipped)",
            p.strip_prefix(&package).unwrap_or(p).display()
        )
    })
    .collect::<Vec<_>>();
    eprintln!("xtask: built {}: {}", package.display(), sizes.join(", "));
    Ok(())
}

/// Copies wasm-pack's output (its `snippets/` of inline JavaScript included),
/// optimising the `.wasm` on the way; leaves out its `.gitignore`.
fn copy_build(from: &Path, to: &Path) -> Result {
    fs::create_dir_all(to).map_err(|e| format!("creating {}: {e}", to.display()))?;
    for entry in fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.is_dir() {
            copy_build(&path, &to.join(name))?;
        } else if name.ends_with(".wasm") {
            optimize(&path, &to.join(name))?;
        } else if name.ends_with(".js") || name.ends_with(".d.ts") {
            copy(&path, &to.join(name))?;
        }
    }
    Ok(())
}

/// `wasm-opt -Oz` with the features wasm-bindgen's output uses (as for the
/// script tag, without renaming imports and exports: the glue keeps its names).
fn optimize(input: &Path, output: &Path) -> Result {
    run(Command::new(setup::wasm_opt())
        .arg(input)
        .args(setup::WASM_OPT_FLAGS)
        .args(super::WASM_OPT_MORE_FLAGS)
        .arg("-o")
        .arg(output))
}

fn copy(from: &Path, to: &Path) -> Result {
    fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}

/// A file's size and its size gzipped (`gzip -9`; 0 when gzip is missing).
fn sizes(path: &Path) -> (u64, usize) {
    let raw = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let gz = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .map(|out| out.stdout.len())
        .unwrap_or(0);
    (raw, gz)
}

/// The package's manifest. The entry and `web/` have no side effects at
/// import time; `bundler/` instantiates the wasm when imported.
fn package_json(version: &str) -> String {
    format!(
        r#"{{
  "name": "waymark",
  "version": "{version}",
  "description": "Waymark web analytics: a Rust/WebAssembly tracker that keeps the visitor's session in browser storage and beacons events to a Waymark collector.",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "./index.js",
  "module": "./index.js",
  "types": "./index.d.ts",
  "exports": {{
    ".": {{
      "types": "./index.d.ts",
      "import": "./index.js",
      "browser": "./index.js",
      "default": "./index.js"
    }},
    "./web": {{
      "types": "./web/waymark_sdk.d.ts",
      "import": "./web/waymark_sdk.js",
      "default": "./web/waymark_sdk.js"
    }},
    "./bundler": {{
      "types": "./bundler/waymark_sdk.d.ts",
      "import": "./bundler/waymark_sdk.js",
      "default": "./bundler/waymark_sdk.js"
    }},
    "./package.json": "./package.json"
  }},
  "sideEffects": [
    "./bundler/waymark_sdk.js"
  ],
  "files": [
    "index.js",
    "index.d.ts",
    "web/",
    "bundler/",
    "README.md"
  ],
  "keywords": ["analytics", "web-analytics", "tracker", "sessions", "wasm"]
}}
"#
    )
}
