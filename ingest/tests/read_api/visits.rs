//! Realtime, funnels, profiles, the sessions list's filters, sites kept
//! apart and the default range, each a function of the app so that every
//! store runs the same bodies.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::data::{D, DAY, HOUR, MIN, NOW};
use super::metrics::{m, ratio, row, rows, with};
use super::{answer, get, range, TestApp};

pub async fn realtime_counts_the_last_five_minutes(app: &TestApp) {
    assert_eq!(
        answer(app, "/v1/realtime?site=shop").await,
        json!({
            "site": "shop", "since": NOW - 5 * MIN, "visitors": 2,
            "pages": [{"key": "/", "visitors": 1}, {"key": "/checkout", "visitors": 1}],
        })
    );
    let bots = answer(app, "/v1/realtime?site=shop&include_bots=true").await;
    assert_eq!(bots["visitors"], 3);
    assert_eq!(
        bots["pages"],
        json!([{"key": "/", "visitors": 2}, {"key": "/checkout", "visitors": 1}])
    );
    let pricing = answer(app, "/v1/realtime?site=shop&filter=page:/pricing").await;
    assert_eq!(pricing["visitors"], 1);
    assert_eq!(
        pricing["pages"],
        json!([{"key": "/checkout", "visitors": 1}])
    );
    let blog = answer(app, "/v1/realtime?site=blog").await;
    assert_eq!((&blog["visitors"], &blog["pages"]), (&json!(0), &json!([])));
}

pub fn step(n: u64, key: &str, visits: u64, visitors: u64, first: u64) -> Value {
    json!({
        "step": n, "key": key, "visits": visits, "visitors": visitors,
        "conversion_rate": ratio(visits, first),
    })
}

pub async fn funnel_steps_count_in_order_only(app: &TestApp) {
    let r = range();
    assert_eq!(
        answer(
            app,
            &format!("/v1/funnel?{r}&step=page:/pricing&step=event:signup&step=page:/checkout")
        )
        .await,
        json!({
            "site": "shop", "from": D, "to": D + 2 * DAY,
            "steps": [
                step(1, "page:/pricing", 3, 2, 3),
                step(2, "event:signup", 1, 1, 3),
                step(3, "page:/checkout", 1, 1, 3),
            ],
        })
    );
    // s1 signs up after /pricing and s3 before it: each reaches the second
    // step of one order only.
    assert_eq!(
        answer(
            app,
            &format!("/v1/funnel?{r}&step=event:signup&step=page:/pricing")
        )
        .await["steps"],
        json!([
            step(1, "event:signup", 2, 1, 2),
            step(2, "page:/pricing", 1, 1, 2),
        ])
    );
    // A step's page may be given as a URL; filters narrow the visits.
    assert_eq!(
        answer(
            app,
            &format!(
                "/v1/funnel?{r}&step=page:https%3A%2F%2Fshop.example%2Fpricing%3Fa%3Db\
                 &step=page:/checkout&filter=country:FR"
            )
        )
        .await["steps"],
        json!([
            step(1, "page:/pricing", 1, 1, 1),
            step(2, "page:/checkout", 1, 1, 1),
        ])
    );
    // A step repeated must happen again.
    assert_eq!(
        answer(
            app,
            &format!("/v1/funnel?{r}&step=event:signup&step=event:signup")
        )
        .await["steps"],
        json!([
            step(1, "event:signup", 2, 1, 2),
            step(2, "event:signup", 1, 1, 2),
        ])
    );
    assert_eq!(
        answer(
            app,
            &format!("/v1/funnel?{r}&step=event:refund&step=page:/")
        )
        .await["steps"],
        json!([step(1, "event:refund", 0, 0, 0), step(2, "page:/", 0, 0, 0)])
    );
}

pub fn session_ids(answer: &Value) -> Vec<&str> {
    answer["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect()
}

pub async fn profiles_link_visitors_and_users_with_paged_sessions(app: &TestApp) {
    let v1 = answer(app, "/v1/visitors/v1?site=shop").await;
    assert_eq!(session_ids(&v1), ["s3", "s1"], "newest first");
    let mut totals = v1.clone();
    totals.as_object_mut().unwrap().remove("sessions");
    assert_eq!(
        totals,
        json!({
            "visitor_id": "v1", "site": "shop",
            "first_seen": D + HOUR, "last_seen": D + DAY + 2 * HOUR + MIN,
            "visits": 2, "page_views": 4, "events": 8, "duration_ms": 300_000,
            "user_ids": ["u-1"], "next_cursor": null,
        })
    );
    let s3 = &v1["sessions"][0];
    assert_eq!(
        (&s3["site"], &s3["landing_page"], &s3["source"]),
        (
            &json!("shop"),
            &json!("https://shop.example/pricing?utm_source=ads&utm_medium=cpc"),
            &json!("ads")
        )
    );

    // Pages of one session.
    let first = answer(app, "/v1/visitors/v1?site=shop&limit=1").await;
    assert_eq!(session_ids(&first), ["s3"]);
    assert_eq!(first["visits"], 2, "totals are of every session");
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = answer(
        app,
        &format!("/v1/visitors/v1?site=shop&limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(session_ids(&second), ["s1"]);
    assert_eq!(second["next_cursor"], Value::Null);

    // Every site's sessions without `site`.
    let everywhere = answer(app, "/v1/visitors/v1").await;
    assert_eq!(everywhere["site"], Value::Null);
    assert_eq!(everywhere["visits"], 3);
    assert_eq!(session_ids(&everywhere), ["s3", "s1", "s1"]);

    let u1 = answer(app, "/v1/users/u-1?site=shop").await;
    assert_eq!(session_ids(&u1), ["s3", "s2"]);
    let mut totals = u1.clone();
    totals.as_object_mut().unwrap().remove("sessions");
    assert_eq!(
        totals,
        json!({
            "user_id": "u-1", "site": "shop",
            "first_seen": D + 2 * HOUR, "last_seen": D + DAY + 2 * HOUR + MIN,
            "visits": 2, "page_views": 3, "events": 4, "duration_ms": 180_000,
            "visitor_ids": ["v1", "v2"], "next_cursor": null,
        })
    );
    // A range narrows the sessions and the totals.
    let day_one = answer(
        app,
        &format!("/v1/users/u-1?site=shop&from={D}&to={}", D + DAY),
    )
    .await;
    assert_eq!(session_ids(&day_one), ["s2"]);
    assert_eq!(day_one["visitor_ids"], json!(["v2"]));

    for path in [
        "/v1/visitors/nobody",
        "/v1/users/nobody",
        "/v1/users/u-1?site=blog",
    ] {
        get(app, path)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
}

pub async fn sessions_take_filters(app: &TestApp) {
    let r = range();
    let signup = answer(app, &format!("/v1/sessions?{r}&filter=event_name:signup")).await;
    assert_eq!(session_ids(&signup), ["s3", "s1"]);
    let both = answer(
        app,
        &format!("/v1/sessions?{r}&filter=page:/checkout&filter=browser:Firefox"),
    )
    .await;
    assert_eq!(session_ids(&both), ["s2"]);
}

pub async fn sites_are_kept_apart(app: &TestApp) {
    let blog = format!("site=blog&from={D}&to={}", D + 2 * DAY);
    assert_eq!(
        rows(app, &format!("{blog}&dimension=page")).await,
        json!([row("/pricing", m(1, 1, 1, 1, 60_000))])
    );
    assert_eq!(
        rows(app, &format!("{blog}&dimension=event_name")).await,
        json!([row(
            "signup",
            with(
                m(1, 1, 1, 1, 60_000),
                json!({"events": 1, "conversion_rate": 1.0})
            )
        )])
    );
    let r = range();
    assert_eq!(
        answer(
            app,
            &format!("/v1/funnel?{r}&step=page:/pricing&step=event:signup")
        )
        .await["steps"],
        json!([
            step(1, "page:/pricing", 3, 2, 3),
            step(2, "event:signup", 1, 1, 3),
        ]),
        "blog's s1 is not shop's"
    );
}

pub async fn the_default_range_is_the_last_seven_days(app: &TestApp) {
    let answer = answer(app, "/v1/breakdown?site=shop&dimension=exit_page").await;
    assert_eq!(
        (&answer["from"], &answer["to"]),
        (&json!(NOW - 7 * DAY), &json!(NOW))
    );
    // The range's five visits, plus the three around now.
    let visits: u64 = answer["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["visits"].as_u64().unwrap())
        .sum();
    assert_eq!(visits, 8, "{answer}");
}
