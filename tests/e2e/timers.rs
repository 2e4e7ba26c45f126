//! Durable, punctual timers: never early, once in effect, across a killed worker and with
//! several workers.

use std::time::Duration;

use bestie::ServiceRole;
use uuid::Uuid;
use workers::timers::{FireTimer, TimerKind, now_ms};

use crate::harness::{BestieProcess, TestApp};

/// Schedules `count` probes due evenly over `spread_ms` starting `start_in_ms` from now.
async fn schedule_probes(app: &TestApp, count: u64, start_in_ms: u64, spread_ms: u64) -> Vec<FireTimer> {
    let start = now_ms() + start_in_ms;
    let timers: Vec<FireTimer> = (0..count)
        .map(|n| FireTimer {
            kind: TimerKind::Probe,
            key: Uuid::new_v4(),
            due_at_ms: start + n * spread_ms / count.max(1),
        })
        .collect();
    let probes: Vec<_> = timers
        .iter()
        .map(|t| {
            (
                domain::ids::ProbeId(t.key),
                chrono::DateTime::from_timestamp_millis(t.due_at_ms as i64).expect("time"),
            )
        })
        .collect();
    app.store.insert_probes(&probes).await.expect("probes");
    let mut storage = workers::timers::storage(&app.store);
    workers::timers::schedule_many(&mut storage, timers.clone()).await.expect("schedule");
    timers
}

/// Waits until no timer job is waiting or running, so a duplicate would have run by now.
async fn wait_for_idle_timers(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND status NOT IN ('Done', 'Killed')",
        )
        .bind(std::any::type_name::<FireTimer>())
        .fetch_one(app.store.pg_pool())
        .await
        .expect("count");
        if busy == 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{busy} timer jobs still pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every probe created since `since` fired (up to `limit`), then reports.
async fn report_when_fired(
    app: &TestApp,
    since: chrono::DateTime<chrono::Utc>,
    limit: Duration,
) -> domain::jobs::store::ProbeReport {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let report = app.store.probe_report(since).await.expect("report");
        if report.fired == report.scheduled {
            return report;
        }
        assert!(tokio::time::Instant::now() < deadline, "not every probe fired: {report:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn timers_never_fire_early_and_fire_once() {
    let app = TestApp::spawn().await;
    let since = chrono::Utc::now();
    schedule_probes(&app, 200, 1_500, 2_000).await;
    let report = report_when_fired(&app, since, Duration::from_secs(15)).await;
    assert_eq!((report.scheduled, report.early, report.repeated), (200, 0, 0), "{report:?}");
}

#[tokio::test]
async fn scheduling_the_same_timer_twice_is_one_timer() {
    let app = TestApp::spawn().await;
    let since = chrono::Utc::now();
    let timers = schedule_probes(&app, 1, 1_500, 0).await;
    let mut storage = workers::timers::storage(&app.store);
    let again = &timers[0];
    workers::timers::schedule(&mut storage, again.kind, again.key, again.due_at_ms)
        .await
        .expect("idempotent");
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE idempotency_key LIKE $1")
        .bind(format!("probe:{}:%", again.key))
        .fetch_one(app.store.pg_pool())
        .await
        .expect("count");
    assert_eq!(jobs, 1);
    let report = report_when_fired(&app, since, Duration::from_secs(10)).await;
    wait_for_idle_timers(&app).await;
    let report_after = app.store.probe_report(since).await.expect("report");
    assert_eq!((report.fired, report_after.repeated), (1, 0));
}

#[tokio::test]
async fn timers_due_while_the_worker_was_dead_fire_once_within_2_s_of_the_restart() {
    // The api runs here; the only worker is a separate process we can kill -9.
    let app = TestApp::spawn_roles([ServiceRole::Api].into(), |_| {}).await;
    let mut worker = BestieProcess::serve_with(app.settings.clone(), &["--role", "worker"]).await;
    let since = chrono::Utc::now();
    // Due 1.5 to 3.5 s from now: the worker already holds the first ones when it dies.
    let timers = schedule_probes(&app, 100, 1_500, 2_000).await;
    // Kill the worker once it holds timers (fetched, sleeping until due).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND status IN ('Queued', 'Running')",
        )
        .bind(std::any::type_name::<FireTimer>())
        .fetch_one(app.store.pg_pool())
        .await
        .expect("count");
        if held > 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the worker never took a timer");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.child.kill().expect("kill -9");
    let _ = worker.child.wait();

    // Everything falls due while no worker runs.
    let last_due = timers.iter().map(|t| t.due_at_ms).max().expect("timers");
    tokio::time::sleep(Duration::from_millis(last_due.saturating_sub(now_ms()) + 500)).await;
    let while_dead = app.store.probe_report(since).await.expect("report");
    assert_eq!(while_dead.fired, 0, "nothing can fire with no worker: {while_dead:?}");

    let restarted = BestieProcess::serve_with(app.settings.clone(), &["--role", "worker"]).await;
    let ready_at = chrono::Utc::now();
    let report = report_when_fired(&app, since, Duration::from_secs(10)).await;
    assert_eq!((report.fired, report.early, report.repeated), (100, 0, 0), "{report:?}");
    let last_fired: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT max(fired_at) FROM timer_probes")
            .fetch_one(app.store.pg_pool())
            .await
            .expect("max");
    let after_ready = last_fired - ready_at;
    assert!(
        after_ready <= chrono::Duration::seconds(2),
        "last timer fired {after_ready} after the worker was ready"
    );
    drop(restarted);
}

#[tokio::test]
async fn two_worker_processes_fire_each_timer_once() {
    let app = TestApp::spawn_roles([ServiceRole::Api].into(), |_| {}).await;
    let _first = BestieProcess::serve_with(app.settings.clone(), &["--role", "worker"]).await;
    let _second = BestieProcess::serve_with(app.settings.clone(), &["--role", "worker"]).await;
    let since = chrono::Utc::now();
    schedule_probes(&app, 300, 1_500, 2_000).await;
    report_when_fired(&app, since, Duration::from_secs(15)).await;
    wait_for_idle_timers(&app).await;
    let report = app.store.probe_report(since).await.expect("report");
    assert_eq!((report.fired, report.early, report.repeated), (300, 0, 0), "{report:?}");
}

#[tokio::test]
async fn a_payment_session_expires_at_its_own_timer_not_before() {
    let app = TestApp::spawn_with(|s| s.worker.repair_interval_s = 3_600).await;
    let pool = app.store.pg_pool();
    let customer = crate::schema::customer(pool).await;
    let expires_ms = now_ms() + 2_000;
    let expires_at = chrono::DateTime::from_timestamp_millis(expires_ms as i64).expect("time");
    let payment: Uuid = sqlx::query_scalar(
        "INSERT INTO payment_sessions (customer_id, duration_minutes, amount, expires_at) VALUES ($1, 15, 15000, $2) RETURNING id",
    )
    .bind(customer)
    .bind(expires_at)
    .fetch_one(pool)
    .await
    .expect("payment");
    let mut storage = workers::timers::storage(&app.store);
    workers::timers::schedule(&mut storage, TimerKind::ExpirePaymentSession, payment, expires_ms)
        .await
        .expect("schedule");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, resolved_at): (String, Option<chrono::DateTime<chrono::Utc>>) =
            sqlx::query_as("SELECT status, resolved_at FROM payment_sessions WHERE id = $1")
                .bind(payment)
                .fetch_one(pool)
                .await
                .expect("row");
        if status == "expired" {
            assert!(resolved_at.expect("resolved") >= expires_at);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the expiry timer did not fire");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
