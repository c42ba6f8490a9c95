//! Hostile conditions for the collector: disks that fail, files that are
//! damaged, servers that misbehave. Each module is one subject.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod spool;
