//! The adversarial suite: what a hostile client, a hostile batch or a
//! failing disk can do to the collector, one submodule per area. Each test
//! shows a defect that could be exploited (or hit) and that it no longer can.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

mod admin;
mod deadletter;
mod exhausting;
mod hygiene;
mod network;
mod poisoning;
mod reads;
mod spool;
mod stores;
mod wedging;
