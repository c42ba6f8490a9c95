//! The SDK's files precompressed for the collector, which serves the copy
//! the browser accepts (`ingest/src/sdk_files.rs`): `<file>.br` (brotli,
//! quality 11, the largest window) and `<file>.gz` (gzip, level 9) beside
//! each file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Result;

/// Sizes of one file: as built, brotli, gzip.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub raw: usize,
    pub brotli: usize,
    pub gzip: usize,
}

/// Writes `<file>.br` and `<file>.gz` beside `file`.
pub fn precompress(file: &Path) -> Result<Sizes> {
    let bytes = fs::read(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    let brotli = brotli(&bytes)?;
    let gzip = gzip(&bytes)?;
    fs::write(beside(file, "br"), &brotli).map_err(|e| e.to_string())?;
    fs::write(beside(file, "gz"), &gzip).map_err(|e| e.to_string())?;
    Ok(Sizes {
        raw: bytes.len(),
        brotli: brotli.len(),
        gzip: gzip.len(),
    })
}

fn beside(file: &Path, extension: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".");
    name.push(extension);
    PathBuf::from(name)
}

fn brotli(bytes: &[u8]) -> Result<Vec<u8>> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 24,
        size_hint: bytes.len(),
        ..Default::default()
    };
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params)
        .map_err(|e| format!("brotli: {e}"))?;
    Ok(out)
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).map_err(|e| format!("gzip: {e}"))?;
    gz.finish().map_err(|e| format!("gzip: {e}"))
}
