//! A session's life: timers scheduled at the start, the ending-soon warning, time up →
//! closing with goodbyes, grace end → completed (capacity back), early ends gated by the
//! configuration, and the sweep for lost timers.
//!
//! The processes here run no worker, so the tests run each timer's job themselves (the
//! sessions last at least a minute) after moving the session's clock with SQL.

use bestie::ServiceRole;
use domain::ids::MitraId;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;
use workers::timers::{FireTimer, TimerKind};

use crate::chat::{Paired, paired};
use crate::harness::TestApp;
use crate::pairing::{next_event, set_config};

async fn app() -> TestApp {
    TestApp::spawn_roles([ServiceRole::Api, ServiceRole::Hub].into(), |_| {}).await
}

pub async fn fire(app: &TestApp, kind: TimerKind, session: &str, due_at_ms: u64) {
    let ctx = workers::JobContext::new(app.services.clone());
    let timer = FireTimer { kind, key: session.parse().expect("uuid"), due_at_ms };
    workers::fire_timer::run(&timer, &ctx).await.expect("timer runs");
}

/// Moves the session's end to `seconds` from now (negative: in the past).
pub async fn end_in(pool: &PgPool, session: &str, seconds: i64) -> u64 {
    let ends_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "UPDATE chat_sessions SET started_at = now() - interval '20 minutes',
                ends_at = now() + make_interval(secs => $2::double precision)
         WHERE id = $1::uuid RETURNING ends_at",
    )
    .bind(session)
    .bind(seconds as f64)
    .fetch_one(pool)
    .await
    .expect("move the end");
    u64::try_from(ends_at.timestamp_millis()).expect("positive")
}

async fn session_view(app: &TestApp, token: &str, session: &str) -> Value {
    let url = app.public_url(&format!("/api/shared/chat-sessions/{session}"));
    let (status, body) = app.call(Method::GET, &url, Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The ids and statuses of the mitra's sessions that have not completed.
async fn mitra_active(app: &TestApp, token: &str) -> Vec<(String, String)> {
    let url = app.public_url("/api/mitra/chat-sessions/active");
    let (status, body) = app.call(Method::GET, &url, Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    let sessions = body["sessions"].as_array().expect("sessions");
    sessions
        .iter()
        .map(|s| (s["id"].as_str().expect("id").to_owned(), s["status"].as_str().expect("status").to_owned()))
        .collect()
}

#[tokio::test]
async fn a_session_warns_closes_on_time_takes_goodbyes_and_completes() {
    let app = app().await;
    let pool = app.store.pg_pool();
    let Paired { mut customer, mut mitra, session } = paired(&app).await;
    assert_eq!(mitra_active(&app, &mitra.token).await, vec![(session.clone(), "active".to_owned())]);
    let url = app.public_url("/api/mitra/chat-sessions/active");
    let (status, body) = app.call(Method::GET, &url, Some(&customer.token), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("wrong_role")), "mitras only");

    // The start scheduled the warning (60 s before the end) and the time-up.
    let ends_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT ends_at FROM chat_sessions WHERE id = $1::uuid")
            .bind(&session)
            .fetch_one(pool)
            .await
            .expect("ends_at");
    let end_ms = u64::try_from(ends_at.timestamp_millis()).expect("positive");
    let timers: Vec<(String, i64)> = sqlx::query_as(
        "SELECT convert_from(job, 'UTF8')::jsonb ->> 'kind', (convert_from(job, 'UTF8')::jsonb ->> 'due_at_ms')::bigint
         FROM apalis.jobs WHERE job_type = $1 AND convert_from(job, 'UTF8')::jsonb ->> 'key' = $2 ORDER BY 2",
    )
    .bind(std::any::type_name::<FireTimer>())
    .bind(&session)
    .fetch_all(pool)
    .await
    .expect("timers");
    assert_eq!(
        timers,
        vec![
            ("warn_session_ending".to_owned(), (end_ms - 60_000) as i64),
            ("end_session_time".to_owned(), end_ms as i64)
        ]
    );

    let end_ms = end_in(pool, &session, 30).await;
    fire(&app, TimerKind::WarnSessionEnding, &session, end_ms - 60_000).await;
    for socket in [&mut customer.socket, &mut mitra.socket] {
        let warning = next_event(socket, "session_ending_warning").await;
        assert!(warning["seconds_left"].as_i64().is_some_and(|s| (25..=30).contains(&s)), "{warning}");
    }

    let end_ms = end_in(pool, &session, -1).await;
    fire(&app, TimerKind::EndSessionTime, &session, end_ms).await;
    for socket in [&mut customer.socket, &mut mitra.socket] {
        let closing = next_event(socket, "session_closing").await;
        assert_eq!(
            (closing["reason"].as_str(), closing["can_extend"].as_bool()),
            (Some("time_up"), Some(true))
        );
    }
    assert_eq!(session_view(&app, &customer.token, &session).await["status"], "closing");
    assert_eq!(
        mitra_active(&app, &mitra.token).await,
        vec![(session.clone(), "closing".to_owned())],
        "a closing session is still on the mitra's list"
    );
    // No more chat messages, but each side leaves one goodbye.
    let url = app.public_url(&format!("/api/shared/chat-sessions/{session}/messages"));
    let (status, body) =
        app.post(&url, Some(&customer.token), json!({"client_msg_id": "late", "body": "masih?"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["status"].as_str()),
        (409, Some("chat_session_not_open"), Some("closing"))
    );
    let goodbye = app.public_url(&format!("/api/shared/chat-sessions/{session}/closing-message"));
    let (status, _) =
        app.post(&goodbye, Some(&customer.token), json!({"message": "Makasih ya, lega banget"})).await;
    assert_eq!(status, 200);
    assert_eq!(next_event(&mut mitra.socket, "closing_message").await["message"], "Makasih ya, lega banget");
    let (status, body) = app.post(&goodbye, Some(&customer.token), json!({"message": "sekali lagi"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("closing_message_already_left")));
    let (status, _) = app.post(&goodbye, Some(&mitra.token), json!({"message": "Semangat terus!"})).await;
    assert_eq!(status, 200);

    // A repeated time-up changes nothing; the grace end completes it.
    fire(&app, TimerKind::EndSessionTime, &session, end_ms).await;
    assert_eq!(app.store.mitra_presence(MitraId(mitra.id), 3).await.expect("presence").active_sessions, 1);
    let grace_ms: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "UPDATE chat_sessions SET grace_ends_at = now() - interval '1 second' WHERE id = $1::uuid RETURNING grace_ends_at",
    )
    .bind(&session)
    .fetch_one(pool)
    .await
    .expect("grace");
    fire(&app, TimerKind::CompleteSession, &session, u64::try_from(grace_ms.timestamp_millis()).expect("ms"))
        .await;
    for socket in [&mut customer.socket, &mut mitra.socket] {
        assert_eq!(next_event(socket, "session_completed").await["session_id"], session.as_str());
    }
    let view = session_view(&app, &mitra.token, &session).await;
    assert_eq!(view["status"], "completed");
    assert_eq!(mitra_active(&app, &mitra.token).await, vec![], "a completed session leaves the list");
    assert_eq!(
        view["closing_messages"],
        json!({"customer": "Makasih ya, lega banget", "mitra": "Semangat terus!"})
    );
    assert_eq!(
        app.store.mitra_presence(MitraId(mitra.id), 3).await.expect("presence").active_sessions,
        0,
        "capacity is back"
    );
    let (_, card) = app
        .call(Method::GET, &app.public_url("/api/client/chat-sessions/active"), Some(&customer.token), None)
        .await;
    assert_eq!(card, json!({"session": null}));
}

#[tokio::test]
async fn early_ends_follow_the_configuration_and_a_mitra_over_the_cap_is_flagged() {
    let app = app().await;
    let pool = app.store.pg_pool();
    let Paired { mut customer, mitra, session } = paired(&app).await;
    let mitra_end = app.public_url(&format!("/api/mitra/chat-requests/sessions/{session}/end"));
    let customer_end = app.public_url(&format!("/api/client/chat-sessions/{session}/end"));
    let reason = json!({"reason_code": "customer_abusive", "reason_text": "kata-kata kasar"});

    for (url, token) in [(&mitra_end, &mitra.token), (&customer_end, &customer.token)] {
        let (status, body) = app.post(url, Some(token), reason.clone()).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("feature_disabled")));
    }
    assert_eq!(session_view(&app, &customer.token, &session).await["status"], "active");

    set_config(pool, "early_end_mitra_enabled", json!(true)).await;
    set_config(pool, "early_end_mitra_daily_cap", json!(0)).await;
    let (status, body) = app.post(&mitra_end, Some(&mitra.token), json!({"reason_code": "Bad Code!"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_reason_code")));
    let (status, body) = app.post(&mitra_end, Some(&customer.token), reason.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("wrong_role")));
    let (status, body) = app.post(&mitra_end, Some(&mitra.token), reason.clone()).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("closing")), "{body}");
    let closing = next_event(&mut customer.socket, "session_closing").await;
    assert_eq!(
        (closing["reason"].as_str(), closing["by"].as_str(), closing["can_extend"].as_bool()),
        (Some("early_end"), Some("mitra"), Some(false))
    );
    let (status, body) = app.post(&mitra_end, Some(&mitra.token), reason.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("chat_session_not_open")));

    let stored: (String, String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT kind, initiated_by, reason_code, reason FROM session_closures WHERE chat_session_id = $1::uuid",
    )
    .bind(&session)
    .fetch_one(pool)
    .await
    .expect("closure");
    assert_eq!(
        stored,
        ("early_end".into(), "mitra".into(), Some("customer_abusive".into()), Some("kata-kata kasar".into()))
    );
    let flags: Vec<(Uuid, i32)> =
        sqlx::query_as("SELECT mitra_id, count FROM mitra_review_flags WHERE reason = 'early_end_daily_cap'")
            .fetch_all(pool)
            .await
            .expect("flags");
    assert_eq!(flags, vec![(mitra.id, 1)], "over a cap of 0: flagged for review, not blocked");

    let (status, config) = app.call(Method::GET, &app.public_url("/api/shared/config"), None, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (config["early_end_mitra_enabled"].as_bool(), config["early_end_customer_enabled"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(config["price_tiers"].as_array().is_some_and(|tiers| !tiers.is_empty()));
}

#[tokio::test]
async fn the_sweep_moves_sessions_whose_timers_were_lost() {
    let app = app().await;
    let pool = app.store.pg_pool();
    let Paired { mut customer, session, .. } = paired(&app).await;
    end_in(pool, &session, -120).await;
    app.run_repair("sweep").await;
    assert_eq!(next_event(&mut customer.socket, "session_closing").await["reason"], "time_up");
    sqlx::query("UPDATE chat_sessions SET grace_ends_at = now() - interval '2 minutes' WHERE id = $1::uuid")
        .bind(&session)
        .execute(pool)
        .await
        .expect("grace");
    app.run_repair("sweep").await;
    next_event(&mut customer.socket, "session_completed").await;
    assert_eq!(session_view(&app, &customer.token, &session).await["status"], "completed");
}
