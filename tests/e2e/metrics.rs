//! `/metrics` after real flows: the sampled gauges (readiness, pools, mitras online and
//! available), availability polls by answer, resumes and replayed events, delivery latency
//! by event type and the inbox lag, the job queue depth the workers sample, and label values
//! that no client input can add to.

use std::time::Duration;

use domain::auth::Role;
use domain::event::{Event, TypingData};
use domain::ids::{MitraId, UserId};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::harness::{TestApp, WsClient, eventually, ws_url_with_token};

/// The value of the sample line `series` (name and labels exactly as rendered), if any.
fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn the_sampled_gauges_report_readiness_pools_and_mitras_online_and_available() {
    let app = TestApp::spawn().await;
    let metrics = &app.services.metrics;
    // Two mitras switched on and connected; one of them at the cap (online, not available).
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let mitra = Uuid::new_v4();
        let token = app.token_for(mitra, Role::Mitra);
        let (status, body) =
            app.post(&app.public_url("/api/mitra/status"), Some(&token), json!({"online": true})).await;
        assert_eq!(status, 200, "{body}");
        sockets.push((mitra, WsClient::connect_welcomed(&ws_url_with_token(app.public, &token)).await));
    }
    let at_cap = sockets[0].0;
    app.store.set_mitra_sessions(MitraId(at_cap), 3, 3).await.expect("sessions");

    domain::sampler::sample(&app.store, metrics).await;
    let text = app.metrics().await;
    for (series, expected) in [
        ("bestie_ready", 1.0),
        (r#"bestie_dependency_up{dependency="postgres"}"#, 1.0),
        (r#"bestie_dependency_up{dependency="redis"}"#, 1.0),
        ("bestie_mitras_online", 2.0),
        ("bestie_mitras_available", 1.0),
        ("bestie_postgres_pool_max_connections", f64::from(app.settings.database.max_connections)),
        (r#"bestie_redis_pool_connections{state="connected"}"#, app.settings.redis.pool_size as f64),
    ] {
        assert_eq!(value(&text, series), Some(expected), "{series} in:\n{text}");
    }
    let in_use = value(&text, r#"bestie_postgres_pool_connections{state="in_use"}"#).expect("in use");
    let idle = value(&text, r#"bestie_postgres_pool_connections{state="idle"}"#).expect("idle");
    assert!(in_use + idle >= 1.0, "the pool holds connections after the flows: {text}");
    assert!(value(&text, r#"bestie_dependency_check_seconds{dependency="redis"}"#).is_some_and(|s| s > 0.0));

    // The process's own stores gone: not ready, and the gauge says which one.
    domain::store::database::drop(app.settings.database.url.expose()).await.expect("drop database");
    domain::sampler::sample(&app.store, metrics).await;
    let text = app.metrics().await;
    assert_eq!(value(&text, "bestie_ready"), Some(0.0), "{text}");
    assert_eq!(value(&text, r#"bestie_dependency_up{dependency="postgres"}"#), Some(0.0), "{text}");
    assert_eq!(value(&text, r#"bestie_dependency_up{dependency="redis"}"#), Some(1.0), "{text}");
}

#[tokio::test]
async fn availability_polls_are_counted_by_their_answer() {
    let app = TestApp::spawn().await;
    let customer = app.token_for(Uuid::new_v4(), Role::Customer);
    let url = app.public_url("/api/client/mitra-availability");
    for _ in 0..3 {
        let (status, body) = app.call(Method::GET, &url, Some(&customer), None).await;
        assert_eq!((status, &body["available"]), (200, &json!(false)), "{body}");
    }
    let text = app.metrics().await;
    assert_eq!(value(&text, r#"bestie_availability_polls_total{answer="none"}"#), Some(3.0), "{text}");
    assert_eq!(value(&text, r#"bestie_availability_polls_total{answer="available"}"#), Some(0.0), "{text}");
    let route = r#"bestie_http_requests_total{listener="public",method="GET",route="/api/client/mitra-availability",status="2xx"}"#;
    assert_eq!(value(&text, route), Some(3.0), "{text}");
}

#[tokio::test]
async fn resumes_count_replayed_events_and_delivery_is_timed_by_event_type() {
    let app = TestApp::spawn().await;
    let user = Uuid::new_v4();
    let publish = |n: i64| {
        let event = crate::harness::message_event(n, "hai");
        let (store, hub) = (app.store.clone(), app.settings.hub.clone());
        async move { domain::broker::publish(&store, &hub, UserId(user), &event).await.expect("publish").id }
    };
    let first = publish(1).await;
    publish(2).await;
    publish(3).await;
    let url = format!(
        "{}&last_event_id={first}",
        ws_url_with_token(app.public, &app.token_for(user, Role::Customer))
    );
    let mut socket = WsClient::connect_welcomed(&url).await;
    for expected in ["chat_message", "chat_message", "resumed"] {
        assert_eq!(socket.next_json().await["type"], expected);
    }
    let typing = Event::Typing(TypingData {
        session_id: domain::ids::SessionId(Uuid::new_v4()),
        by: Role::Mitra,
        expires_in_ms: 5_000,
    });
    domain::broker::publish_ephemeral(&app.store, UserId(user), &typing).await.expect("typing");
    assert_eq!(socket.next_json().await["type"], "typing");
    publish(4).await;
    assert_eq!(socket.next_json().await["data"]["message"]["seq"], 4);

    let text = app.metrics().await;
    assert_eq!(value(&text, r#"bestie_hub_resumes_total{outcome="replayed"}"#), Some(1.0), "{text}");
    assert_eq!(value(&text, "bestie_hub_replayed_events_total"), Some(2.0), "{text}");
    // Replayed events are not live deliveries: only the live ones are timed.
    let delivered = r#"bestie_hub_delivery_seconds_count{type="chat_message"}"#;
    assert_eq!(value(&text, delivered), Some(1.0), "{text}");
    assert_eq!(value(&text, r#"bestie_hub_delivery_seconds_count{type="typing"}"#), Some(1.0), "{text}");
    assert!(value(&text, "bestie_hub_stream_lag_seconds_count").is_some_and(|n| n >= 2.0), "{text}");
}

#[tokio::test]
async fn the_job_queue_depth_counts_jobs_due_and_not_started() {
    // No worker role: a queued push stays in the queue.
    let app = TestApp::spawn_roles([bestie::ServiceRole::Api].into(), |_| {}).await;
    let push = domain::jobs::Push {
        role: Role::Customer,
        account: Uuid::new_v4(),
        message: domain::push::PushMessage {
            title: "t".into(),
            body: "b".into(),
            data: Default::default(),
            collapse_key: None,
            preview: None,
        },
    };
    for _ in 0..2 {
        app.services.jobs.push(push.clone()).await.expect("queued");
    }
    let depths = app.store.job_queue_depths().await.expect("depths");
    let push_type = std::any::type_name::<domain::jobs::Push>();
    let (_, depth, oldest_s) = depths.iter().find(|(job, _, _)| job == push_type).expect("the push queue");
    assert_eq!(*depth, 2, "{depths:?}");
    assert!((0.0..60.0).contains(oldest_s), "{depths:?}");
}

/// The series `/metrics` renders, without their values.
fn series(metrics: &str) -> std::collections::BTreeSet<String> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

/// What a client writes (the method, the path, the close code) never names a series: after
/// one request of each kind, a hundred more with other invented methods, paths and close
/// codes add no series.
#[tokio::test]
async fn invented_methods_paths_and_close_codes_add_no_series() {
    let app = TestApp::spawn().await;
    let customer = app.token_for(Uuid::new_v4(), Role::Customer);
    // Request `n`'s three requests: an invented method on a path no route has and on a
    // route's path, and a known method on a path no route has; with the statuses expected.
    let requests = |n: usize| {
        let method = Method::from_bytes(format!("BREW{n}").as_bytes()).expect("a valid method");
        let unknown = format!("/no/such/path/{n}");
        [
            (method.clone(), unknown.clone(), 404),
            (method, "/api/client/mitra-availability".to_owned(), 405),
            (Method::GET, unknown, 404),
        ]
    };
    let send = |n: usize| {
        let (app, customer) = (&app, &customer);
        async move {
            for (method, path, expected) in requests(n) {
                let response = app.http.request(method.clone(), app.public_url(&path)).bearer_auth(customer);
                let status = response.send().await.expect("answered").status().as_u16();
                assert_eq!(status, expected, "{method} {path}");
            }
        }
    };
    let close = |code: u16| {
        let url = ws_url_with_token(app.public, &app.token_for(Uuid::new_v4(), Role::Customer));
        async move { WsClient::connect_welcomed(&url).await.close_with(code).await }
    };
    let closed_other = |count: f64| {
        let app = &app;
        move || async move {
            value(&app.metrics().await, r#"bestie_hub_connections_closed_total{code="other"}"#) == Some(count)
        }
    };

    send(0).await;
    close(4321).await;
    eventually(Duration::from_secs(5), "the first invented close code counted", closed_other(1.0)).await;
    let before = series(&app.metrics().await);
    assert!(before.iter().any(|s| s.contains(r#"method="other""#) && s.contains(r#"route="unmatched""#)));

    for n in 1..=100 {
        send(n).await;
    }
    for code in [3000, 3999, 4000, 4999] {
        close(code).await;
    }
    eventually(Duration::from_secs(5), "every invented close code counted", closed_other(5.0)).await;
    let after = series(&app.metrics().await);
    let added: Vec<_> = after.difference(&before).collect();
    assert!(added.is_empty(), "series added by client input: {added:#?}");
    assert!(!after.iter().any(|s| s.contains("BREW") || s.contains("/no/such")), "{after:#?}");
}
