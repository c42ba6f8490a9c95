//! The script tag's cache key and integrity hash.

use std::path::Path;
use std::process::Command;

/// The loader's line that names the wasm's content hash, which `build-sdk`
/// fills in.
const WASM_HASH: &str = "var WASM_HASH = '';";

/// 64-bit FNV-1a of `bytes` as 16 hex digits: the same content hash the
/// collector (`ingest/src/sdk_files.rs`) computes for its `ETag` and for deciding
/// that `/sdk.wasm?v=<hash>` is immutable.
pub fn content_hash(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// The loader with the wasm's content hash filled in: it fetches
/// `sdk.wasm?v=<hash>` and checks a preloaded `sdk.wasm`'s ETag against it.
pub fn name_wasm_by_hash(loader: &str, wasm: &[u8]) -> Result<String, String> {
    if !loader.contains(WASM_HASH) {
        return Err(format!("sdk/js/loader.js no longer contains `{WASM_HASH}`"));
    }
    Ok(loader.replace(
        WASM_HASH,
        &format!("var WASM_HASH = '{}';", content_hash(wasm)),
    ))
}

/// `sha384-…` of a file for the snippet's `integrity` attribute (by
/// `openssl`, as xtask has no dependencies).
pub fn sri(path: &Path) -> Result<String, String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("openssl dgst -sha384 -binary \"$1\" | openssl base64 -A")
        .arg("sh")
        .arg(path)
        .output()
        .map_err(|e| format!("openssl: {e}"))?;
    let digest = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() && digest.len() == 64 {
        Ok(format!("sha384-{digest}"))
    } else {
        Err(format!(
            "openssl could not hash {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
