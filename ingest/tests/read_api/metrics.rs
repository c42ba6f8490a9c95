//! What the visits of a range add up to — breakdowns by every dimension,
//! filters, stats with the previous period, the range boundary,
//! timeseries — each a function of the app so that every store runs the
//! same bodies; the expectations are worked out by hand from the table in
//! `data.rs`. Also the helpers the other scenario files share.

use serde_json::{json, Value};

use super::data::{D, DAY, HOUR};
use super::{answer, range, TestApp};

/// The five metrics: visits, visitors, page views, bounces (visits with at
/// most one page view) and the mean duration.
pub fn m(visits: u64, visitors: u64, page_views: u64, bounces: u64, avg: u64) -> Value {
    json!({
        "visits": visits,
        "visitors": visitors,
        "page_views": page_views,
        "bounce_rate": ratio(bounces, visits),
        "avg_duration_ms": avg,
    })
}

#[allow(clippy::cast_precision_loss)]
pub fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A breakdown row: its key and metrics.
pub fn row(key: &str, metrics: Value) -> Value {
    let mut row = json!({ "key": key });
    row.as_object_mut()
        .unwrap()
        .extend(metrics.as_object().unwrap().clone());
    row
}

/// A metrics object with more fields.
pub fn with(mut base: Value, more: Value) -> Value {
    base.as_object_mut()
        .unwrap()
        .extend(more.as_object().unwrap().clone());
    base
}

pub async fn rows(app: &TestApp, query: &str) -> Value {
    answer(app, &format!("/v1/breakdown?{query}")).await["rows"].clone()
}

pub async fn every_dimension_breaks_down_as_worked_out_by_hand(app: &TestApp) {
    let r = range();
    let expected = [
        (
            "page",
            vec![
                row("/pricing", m(3, 2, 3, 1, 140_000)),
                row("/", m(2, 2, 2, 1, 120_000)),
                row("/checkout", m(2, 2, 2, 0, 180_000)),
                row("/docs", m(1, 1, 1, 0, 900_000)),
                row("/docs/install", m(1, 1, 1, 0, 900_000)),
            ],
        ),
        (
            "entry_page",
            vec![
                row("/", m(2, 2, 4, 1, 120_000)),
                row("/pricing", m(2, 2, 3, 1, 90_000)),
                row("/docs", m(1, 1, 2, 0, 900_000)),
            ],
        ),
        (
            "exit_page",
            vec![
                row("/checkout", m(2, 2, 5, 0, 180_000)),
                row("/", m(1, 1, 1, 1, 0)),
                row("/docs/install", m(1, 1, 2, 0, 900_000)),
                row("/pricing", m(1, 1, 1, 1, 60_000)),
            ],
        ),
        (
            "source",
            vec![
                row("direct", m(2, 2, 3, 1, 450_000)),
                row("ads", m(1, 1, 1, 1, 60_000)),
                row("google.com", m(1, 1, 2, 0, 120_000)),
                row("news", m(1, 1, 3, 0, 240_000)),
            ],
        ),
        (
            "referrer",
            vec![
                row("google.com", m(1, 1, 2, 0, 120_000)),
                row("mail.example.com", m(1, 1, 3, 0, 240_000)),
            ],
        ),
        (
            "utm_source",
            vec![
                row("ads", m(1, 1, 1, 1, 60_000)),
                row("news", m(1, 1, 3, 0, 240_000)),
            ],
        ),
        (
            "utm_medium",
            vec![
                row("cpc", m(1, 1, 1, 1, 60_000)),
                row("email", m(1, 1, 3, 0, 240_000)),
            ],
        ),
        (
            "utm_campaign",
            vec![row("spring, \"big\" sale", m(1, 1, 3, 0, 240_000))],
        ),
        ("utm_term", vec![row("shoes", m(1, 1, 3, 0, 240_000))]),
        ("utm_content", vec![row("top", m(1, 1, 3, 0, 240_000))]),
        (
            "country",
            vec![
                row("DE", m(3, 2, 5, 2, 100_000)),
                row("FR", m(1, 1, 2, 0, 120_000)),
            ],
        ),
        (
            "region",
            vec![
                row("Lower Saxony", m(2, 1, 4, 1, 150_000)),
                row("Bavaria", m(1, 1, 1, 1, 0)),
                row("Île-de-France", m(1, 1, 2, 0, 120_000)),
            ],
        ),
        (
            "city",
            vec![
                row("Hanover", m(2, 1, 4, 1, 150_000)),
                row("Munich", m(1, 1, 1, 1, 0)),
                row("Paris", m(1, 1, 2, 0, 120_000)),
            ],
        ),
        (
            "browser",
            vec![
                row("Chrome", m(2, 1, 4, 1, 150_000)),
                row("Edge", m(1, 1, 2, 0, 900_000)),
                row("Firefox", m(1, 1, 2, 0, 120_000)),
                row("Safari", m(1, 1, 1, 1, 0)),
            ],
        ),
        (
            "os",
            vec![
                row("Windows", m(2, 2, 4, 0, 510_000)),
                row("macOS", m(2, 1, 4, 1, 150_000)),
                row("iOS", m(1, 1, 1, 1, 0)),
            ],
        ),
        (
            "device_type",
            vec![
                row("desktop", m(4, 3, 8, 1, 330_000)),
                row("mobile", m(1, 1, 1, 1, 0)),
            ],
        ),
        (
            "event_name",
            vec![
                row(
                    "signup",
                    with(
                        m(2, 1, 4, 1, 150_000),
                        json!({"events": 3, "conversion_rate": ratio(2, 5)}),
                    ),
                ),
                row(
                    "purchase",
                    with(
                        m(1, 1, 3, 0, 240_000),
                        json!({"events": 1, "conversion_rate": ratio(1, 5)}),
                    ),
                ),
            ],
        ),
    ];
    assert_eq!(expected.len(), 17, "every dimension of PRODUCT.md");
    for (dimension, rows) in expected {
        let answer = answer(app, &format!("/v1/breakdown?{r}&dimension={dimension}")).await;
        assert_eq!(
            answer,
            json!({
                "site": "shop", "from": D, "to": D + 2 * DAY,
                "dimension": dimension, "rows": rows,
            }),
            "{dimension}"
        );
    }
    // Largest first, `limit` of them.
    let top = rows(app, &format!("{r}&dimension=page&limit=2")).await;
    assert_eq!(
        top,
        json!([
            row("/pricing", m(3, 2, 3, 1, 140_000)),
            row("/", m(2, 2, 2, 1, 120_000))
        ])
    );
}

pub async fn filters_must_all_hold_and_pages_and_events_match_any(app: &TestApp) {
    let r = range();
    let source = |filters: &str| format!("{r}&dimension=source&{filters}");
    // A visit matches a page filter when any of its page views does.
    assert_eq!(
        rows(app, &source("filter=page:/checkout")).await,
        json!([
            row("google.com", m(1, 1, 2, 0, 120_000)),
            row("news", m(1, 1, 3, 0, 240_000)),
        ])
    );
    // Every filter must hold.
    assert_eq!(
        rows(
            app,
            &source("filter=page:/checkout&filter=event_name:signup")
        )
        .await,
        json!([row("news", m(1, 1, 3, 0, 240_000))])
    );
    assert_eq!(
        rows(app, &source("filter=country:DE")).await,
        json!([
            row("ads", m(1, 1, 1, 1, 60_000)),
            row("direct", m(1, 1, 1, 1, 0)),
            row("news", m(1, 1, 3, 0, 240_000)),
        ])
    );
    // A page filter given as a whole URL filters by its path.
    assert_eq!(
        rows(
            app,
            &format!(
                "{r}&dimension=entry_page&filter=page:https%3A%2F%2Fshop.example%2Fpricing%3Fx%3D1"
            )
        )
        .await,
        json!([
            row("/pricing", m(2, 2, 3, 1, 90_000)),
            row("/", m(1, 1, 3, 0, 240_000)),
        ])
    );
    for (filter, key, metrics) in [
        ("utm_medium:cpc", "ads", m(1, 1, 1, 1, 60_000)),
        ("referrer:google.com", "google.com", m(1, 1, 2, 0, 120_000)),
        ("entry_page:/docs", "direct", m(1, 1, 2, 0, 900_000)),
        (
            "utm_campaign:spring, \"big\" sale",
            "news",
            m(1, 1, 3, 0, 240_000),
        ),
    ] {
        let filter = url_encode(filter);
        assert_eq!(
            rows(app, &source(&format!("filter={filter}"))).await,
            json!([row(key, metrics)]),
            "{filter}"
        );
    }
    assert_eq!(
        rows(app, &source("filter=exit_page:/checkout&filter=os:Windows")).await,
        json!([row("google.com", m(1, 1, 2, 0, 120_000))])
    );
    assert_eq!(
        rows(app, &source("filter=country:JP")).await,
        json!([]),
        "nothing matches"
    );
    // The pages of the visits with a purchase: every page of s1, once each.
    assert_eq!(
        rows(
            app,
            &format!("{r}&dimension=page&filter=event_name:purchase")
        )
        .await,
        json!([
            row("/", m(1, 1, 1, 0, 240_000)),
            row("/checkout", m(1, 1, 1, 0, 240_000)),
            row("/pricing", m(1, 1, 1, 0, 240_000)),
        ])
    );
    // Conversion rates are of the filtered visits.
    assert_eq!(
        rows(app, &format!("{r}&dimension=event_name&filter=country:DE")).await,
        json!([
            row(
                "signup",
                with(
                    m(2, 1, 4, 1, 150_000),
                    json!({"events": 3, "conversion_rate": ratio(2, 3)})
                )
            ),
            row(
                "purchase",
                with(
                    m(1, 1, 3, 0, 240_000),
                    json!({"events": 1, "conversion_rate": ratio(1, 3)})
                )
            ),
        ])
    );
    // Bots only with include_bots.
    assert_eq!(
        rows(app, &source("filter=device_type:bot")).await,
        json!([])
    );
    assert_eq!(
        rows(app, &source("filter=device_type:bot&include_bots=true")).await,
        json!([row("direct", m(1, 1, 1, 1, 0))])
    );
}

pub fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

pub async fn stats_take_filters_and_the_previous_period(app: &TestApp) {
    let day_two = format!("site=shop&from={}&to={}", D + DAY, D + 2 * DAY);
    let stats = answer(app, &format!("/v1/stats?{day_two}&compare=previous_period")).await;
    let mut current = stats.clone();
    let previous = current.as_object_mut().unwrap().remove("previous").unwrap();
    for (field, value) in m(1, 1, 1, 1, 60_000).as_object().unwrap() {
        assert_eq!(&stats[field], value, "{field}: {stats}");
    }
    assert_eq!(
        previous,
        with(json!({"from": D, "to": D + DAY}), m(4, 4, 8, 1, 315_000))
    );
    // The overview's other fields, as before.
    assert_eq!(stats["sources"], json!([{"key": "ads", "count": 1}]));
    assert_eq!(stats["countries"], json!([{"key": "DE", "count": 1}]));
    assert_eq!(
        stats["top_pages"],
        json!([{"key": "https://shop.example/pricing", "count": 1}])
    );
    assert_eq!(stats["interval"], "hour");
    assert_eq!(stats["visits_over_time"].as_array().unwrap().len(), 24);
    // Without compare, no previous.
    let plain = answer(app, &format!("/v1/stats?{day_two}")).await;
    assert_eq!(plain, current);

    let de = answer(
        app,
        &format!("/v1/stats?{day_two}&compare=previous_period&filter=country:DE"),
    )
    .await;
    assert_eq!(de["visits"], 1);
    assert_eq!(
        de["previous"],
        with(json!({"from": D, "to": D + DAY}), m(2, 2, 4, 1, 120_000))
    );

    let r = range();
    let checkout = answer(app, &format!("/v1/stats?{r}&filter=page:/checkout")).await;
    for (field, value) in m(2, 2, 5, 0, 180_000).as_object().unwrap() {
        assert_eq!(&checkout[field], value, "{field}: {checkout}");
    }
    assert_eq!(
        checkout["top_pages"],
        json!([
            {"key": "https://shop.example/checkout", "count": 2},
            {"key": "https://shop.example/pricing", "count": 2},
            {"key": "https://shop.example/", "count": 1},
        ])
    );
    assert_eq!(
        checkout["sources"],
        json!([{"key": "google.com", "count": 1}, {"key": "news", "count": 1}])
    );
}

pub async fn a_visit_is_counted_by_its_start(app: &TestApp) {
    // `cross` starts five minutes before day two and goes on into it.
    let day_one = format!("site=shop&from={D}&to={}", D + DAY);
    let day_two = format!("site=shop&from={}&to={}", D + DAY, D + 2 * DAY);
    assert_eq!(
        rows(app, &format!("{day_two}&dimension=page")).await,
        json!([row("/pricing", m(1, 1, 1, 1, 60_000))]),
        "its pages of day two are not day two's"
    );
    assert_eq!(
        rows(
            app,
            &format!("{day_one}&dimension=exit_page&filter=entry_page:/docs")
        )
        .await,
        json!([row("/docs/install", m(1, 1, 2, 0, 900_000))]),
        "all of it is day one's"
    );
    let series = answer(app, &format!("/v1/timeseries?{day_two}&interval=day")).await;
    assert_eq!(
        series["buckets"],
        json!([with(json!({"start": D + DAY}), m(1, 1, 1, 1, 60_000))])
    );
}

pub async fn timeseries_buckets_by_hour_and_day(app: &TestApp) {
    let r = range();
    assert_eq!(
        answer(app, &format!("/v1/timeseries?{r}&interval=day")).await,
        json!({
            "site": "shop", "from": D, "to": D + 2 * DAY, "interval": "day",
            "buckets": [
                with(json!({"start": D}), m(4, 4, 8, 1, 315_000)),
                with(json!({"start": D + DAY}), m(1, 1, 1, 1, 60_000)),
            ],
        })
    );
    let hours = format!("site=shop&from={D}&to={}", D + 5 * HOUR);
    let bucket = |h: u64, metrics: Value| with(json!({"start": D + h * HOUR}), metrics);
    assert_eq!(
        answer(app, &format!("/v1/timeseries?{hours}&interval=hour")).await["buckets"],
        json!([
            bucket(0, m(0, 0, 0, 0, 0)),
            bucket(1, m(1, 1, 3, 0, 240_000)),
            bucket(2, m(1, 1, 2, 0, 120_000)),
            bucket(3, m(1, 1, 1, 1, 0)),
            bucket(4, m(0, 0, 0, 0, 0)),
        ])
    );
    assert_eq!(
        answer(
            app,
            &format!("/v1/timeseries?{hours}&interval=hour&include_bots=true&filter=page:/")
        )
        .await["buckets"],
        json!([
            bucket(0, m(0, 0, 0, 0, 0)),
            bucket(1, m(1, 1, 3, 0, 240_000)),
            bucket(2, m(0, 0, 0, 0, 0)),
            bucket(3, m(1, 1, 1, 1, 0)),
            bucket(4, m(1, 1, 1, 1, 0)),
        ])
    );
    assert_eq!(
        answer(
            app,
            &format!("/v1/timeseries?{r}&interval=day&filter=event_name:signup")
        )
        .await["buckets"],
        json!([
            with(json!({"start": D}), m(1, 1, 3, 0, 240_000)),
            with(json!({"start": D + DAY}), m(1, 1, 1, 1, 60_000)),
        ])
    );
    // Up to two days, hours by default.
    let default = answer(app, &format!("/v1/timeseries?{r}")).await;
    assert_eq!(default["interval"], "hour");
    assert_eq!(default["buckets"].as_array().unwrap().len(), 48);
}
