//! What the collector's integration tests share; each test file takes it
//! with `mod support;` and uses the parts it needs.
//!
//! - [`app`]: the router in-process (`app()` without a socket) on a store and
//!   a clock the test holds, and the replies it gives.
//! - [`collector`]: the real `waymark` binary as a child process, and plain
//!   HTTP/1.1 to it.
//! - [`clickhouse`]: a real ClickHouse server on loopback ports.
//! - [`fake_clickhouse`]: a fake one that refuses the inserts a test says.
//! - [`stores`]: the SQLite and ClickHouse stores behind the router with an
//!   admin token, and `on_both_stores!`, one test body run on both.
//! - [`optional`]: whether the tests that need what a bare machine lacks (a
//!   ClickHouse server, the GeoIP database, chDB) run or skip: the
//!   `WAYMARK_TEST_CLICKHOUSE`, `WAYMARK_TEST_GEOIP` and `WAYMARK_TEST_CHDB`
//!   variables.

#![allow(dead_code)]

pub mod app;
pub mod clickhouse;
pub mod collector;
pub mod fake_clickhouse;
pub mod optional;
pub mod stores;
