//! The surface every endpoint shares: CSV tables, a `400 invalid_query`
//! for every bad parameter, the admin token.

use axum::body::Body;
use axum::http::{Request, StatusCode};

use super::data::{D, DAY, HOUR, MIN};
use super::{get, range, TestApp};

pub async fn tables_answer_csv(app: &TestApp) {
    let r = range();
    let csv = |path: String| async move {
        let reply = get(app, &path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        assert_eq!(reply.header("content-type"), "text/csv; charset=utf-8");
        reply.text()
    };
    assert_eq!(
        csv(format!(
            "/v1/breakdown?{r}&dimension=utm_campaign&format=csv"
        ))
        .await,
        "key,visits,visitors,page_views,bounce_rate,avg_duration_ms\n\
         \"spring, \"\"big\"\" sale\",1,1,3,0.0,240000\n"
    );
    assert_eq!(
        csv(format!("/v1/breakdown?{r}&dimension=event_name&format=csv")).await,
        "key,visits,visitors,page_views,bounce_rate,avg_duration_ms,events,conversion_rate\n\
         signup,2,1,4,0.5,150000,3,0.4\n\
         purchase,1,1,3,0.0,240000,1,0.2\n"
    );
    assert_eq!(
        csv(format!(
            "/v1/breakdown?{r}&dimension=country&filter=country:JP&format=csv"
        ))
        .await,
        "key,visits,visitors,page_views,bounce_rate,avg_duration_ms\n",
        "no rows: the header alone"
    );
    assert_eq!(
        csv(format!("/v1/timeseries?{r}&interval=day&format=csv")).await,
        format!(
            "start,visits,visitors,page_views,bounce_rate,avg_duration_ms\n\
             {D},4,4,8,0.25,315000\n{},1,1,1,1.0,60000\n",
            D + DAY
        )
    );
    assert_eq!(
        csv(format!("/v1/funnel?{r}&step=event:signup&step=page:/pricing&format=csv")).await,
        "step,key,visits,visitors,conversion_rate\n1,event:signup,2,1,1.0\n2,page:/pricing,1,1,0.5\n"
    );
    assert_eq!(
        csv("/v1/realtime?site=shop&format=csv".to_owned()).await,
        "key,visitors\n/,1\n/checkout,1\n"
    );
    let header = "session_id,site,visitor_id,user_id,session_index,started_at,last_seen_at,\
        ended_at,end_reason,duration_ms,landing_page,exit_page,source,country,region,city,\
        browser,os,device_type,event_count,page_views,is_bot";
    let sessions = csv(format!("/v1/sessions?{r}&format=csv&limit=2")).await;
    let lines: Vec<&str> = sessions.lines().collect();
    assert_eq!(lines[0], header);
    assert_eq!(
        lines[1],
        format!(
            "s3,shop,v1,u-1,1,{start},{seen},,,60000,\
             https://shop.example/pricing?utm_source=ads&utm_medium=cpc,\
             https://shop.example/pricing?utm_source=ads&utm_medium=cpc,ads,DE,Lower Saxony,\
             Hanover,Chrome,macOS,desktop,2,1,false",
            start = D + DAY + 2 * HOUR,
            seen = D + DAY + 2 * HOUR + MIN
        )
    );
    assert_eq!(lines.len(), 3, "{sessions}");
    let profile = csv("/v1/users/u-1?site=shop&format=csv".to_owned()).await;
    let ids: Vec<&str> = profile
        .lines()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(ids, ["session_id", "s3", "s2"]);
    // A page's cursor comes in a header.
    let reply = get(app, &format!("/v1/sessions?{r}&format=csv&limit=2")).await;
    let cursor = reply.header("waymark-next-cursor").to_owned();
    let next = csv(format!(
        "/v1/sessions?{r}&format=csv&limit=2&cursor={cursor}"
    ))
    .await;
    assert!(lines[2].starts_with("cross,"), "{sessions}");
    assert!(next.lines().nth(1).unwrap().starts_with("bot1,"), "{next}");
}

pub async fn every_bad_parameter_is_400_invalid_query(app: &TestApp) {
    let r = range();
    let nine_steps = "&step=page:/".repeat(9);
    let long = format!("site=shop&from=0&to={}", 1200 * DAY);
    let cases: Vec<(String, &str)> = vec![
        (format!("/v1/breakdown?{r}"), "dimension is required"),
        (
            format!("/v1/breakdown?{r}&dimension=pages"),
            "unknown dimension \"pages\"",
        ),
        (
            format!("/v1/breakdown?{r}&dimension=page&filter=country"),
            "dimension:value",
        ),
        (
            format!("/v1/breakdown?{r}&dimension=page&filter=colour:red"),
            "unknown dimension \"colour\"",
        ),
        (
            format!("/v1/breakdown?{r}&dimension=page&filter=country:"),
            "needs a value",
        ),
        (
            format!("/v1/breakdown?{r}&dimension=page&limit=0"),
            "limit must be 1 to 1000",
        ),
        (
            format!("/v1/breakdown?{r}&dimension=page&limit=1001"),
            "limit must be 1 to 1000",
        ),
        (
            format!("/v1/breakdown?{r}&dimension=page&limit=ten"),
            "limit must be 1 to 1000",
        ),
        (
            format!("/v1/breakdown?{r}&dimension=page&dimension=os"),
            "dimension is given twice",
        ),
        (
            format!("/v1/breakdown?{r}&dimension=page&format=xml"),
            "format must be json or csv",
        ),
        (
            format!("/v1/breakdown?{r}&dimension=page&include_bots=maybe"),
            "include_bots must be true or false",
        ),
        (
            format!("/v1/breakdown?{r}&dimension=page&colour=red"),
            "unknown parameter \"colour\"",
        ),
        (
            "/v1/breakdown?site=shop&from=5&to=5&dimension=page".to_owned(),
            "from must be before to",
        ),
        (
            "/v1/breakdown?site=shop&from=-1&dimension=page".to_owned(),
            "from must be a non-negative integer",
        ),
        (
            format!("/v1/breakdown?{long}&dimension=page"),
            "at most 1100 days",
        ),
        (
            format!("/v1/timeseries?{r}&interval=week"),
            "interval must be hour or day",
        ),
        (
            format!(
                "/v1/timeseries?site=shop&from=0&to={}&interval=hour",
                500 * DAY
            ),
            "buckets",
        ),
        (
            format!("/v1/timeseries?{r}&dimension=page"),
            "unknown parameter \"dimension\"",
        ),
        (
            format!("/v1/stats?{r}&compare=last_year"),
            "compare must be previous_period",
        ),
        (format!("/v1/stats?{r}&format=csv"), "format=csv"),
        (format!("/v1/stats?{r}&filter=browser"), "dimension:value"),
        (format!("/v1/sessions?{r}&filter=os:"), "needs a value"),
        (
            "/v1/realtime?site=shop&filter=page".to_owned(),
            "dimension:value",
        ),
        (format!("/v1/realtime?{r}"), "unknown parameter \"from\""),
        (format!("/v1/funnel?{r}"), "2 to 8 steps"),
        (format!("/v1/funnel?{r}&step=page:/"), "2 to 8 steps"),
        (format!("/v1/funnel?{r}{nine_steps}"), "2 to 8 steps"),
        (
            format!("/v1/funnel?{r}&step=page:/&step=url:/x"),
            "page:/path or event:name",
        ),
        (
            format!("/v1/funnel?{r}&step=page:/&step=event:"),
            "page:/path or event:name",
        ),
        (
            format!("/v1/funnel?{r}&step=page:/&step=signup"),
            "page:/path or event:name",
        ),
        (
            "/v1/visitors/v1?limit=501".to_owned(),
            "limit must be 1 to 500",
        ),
        ("/v1/visitors/v1?cursor=nonsense".to_owned(), "cursor"),
        (
            "/v1/users/u-1?dimension=page".to_owned(),
            "unknown parameter \"dimension\"",
        ),
        (
            "/v1/users/u-1?from=9&to=3".to_owned(),
            "from must be before to",
        ),
    ];
    for (path, needle) in cases {
        let reply = get(app, &path).await;
        let body = reply.assert_error(StatusCode::BAD_REQUEST, "invalid_query");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(needle),
            "{path}: {message:?} lacks {needle:?}"
        );
    }
}

pub async fn every_endpoint_needs_the_admin_token(app: &TestApp) {
    for path in [
        "/v1/breakdown?dimension=page",
        "/v1/timeseries",
        "/v1/realtime",
        "/v1/funnel?step=page:/&step=page:/a",
        "/v1/visitors/v1",
        "/v1/users/u-1",
    ] {
        for auth in [None, Some("Bearer wrong")] {
            let mut request = Request::get(path);
            if let Some(auth) = auth {
                request = request.header("authorization", auth);
            }
            let reply = app.send(request.body(Body::empty()).unwrap()).await;
            reply.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }
}
