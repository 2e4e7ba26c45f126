//! Charges: once per idempotency key, however often or concurrently the job runs.

use std::sync::Arc;
use std::time::Duration;

use bestie::ServiceRole;
use domain::charges::{ChargeRequest, ChargeStatus, MockProvider};
use domain::ids::PaymentId;
use uuid::Uuid;
use workers::charge_payment::ChargePayment;

use crate::harness::TestApp;
use crate::schema;

async fn payment(app: &TestApp) -> Uuid {
    let pool = app.store.pg_pool();
    let customer = schema::customer(pool).await;
    schema::confirmed_payment(pool, customer).await
}

#[tokio::test]
async fn a_repeated_charge_returns_the_first_without_calling_the_provider_again() {
    let app = TestApp::spawn_roles([ServiceRole::Api].into(), |_| {}).await;
    let provider = MockProvider::default();
    let request = ChargeRequest {
        idempotency_key: format!("confirm:{}", Uuid::new_v4()),
        payment_session_id: payment(&app).await,
        amount: 15_000,
    };
    let first = domain::charges::charge(&app.store, &provider, &request).await.expect("charge");
    let second = domain::charges::charge(&app.store, &provider, &request).await.expect("charge again");
    assert_eq!(first, second);
    assert_eq!(first.status, ChargeStatus::Succeeded);
    assert_eq!((provider.calls(), provider.charges_made()), (1, 1));
    assert_eq!(app.store.charges_of(PaymentId(request.payment_session_id)).await.expect("ledger").len(), 1);
}

#[tokio::test]
async fn concurrent_twins_of_a_charge_leave_one_charge() {
    let app = TestApp::spawn_roles([ServiceRole::Api].into(), |_| {}).await;
    let provider = Arc::new(MockProvider::default());
    let request = ChargeRequest {
        idempotency_key: format!("confirm:{}", Uuid::new_v4()),
        payment_session_id: payment(&app).await,
        amount: 15_000,
    };
    let twins = (0..20).map(|_| {
        let (store, provider, request) = (app.store.clone(), provider.clone(), request.clone());
        tokio::spawn(async move { domain::charges::charge(&store, provider.as_ref(), &request).await })
    });
    let results = futures::future::join_all(twins).await;
    assert!(results.iter().all(|r| matches!(r, Ok(Ok(_)))));
    let ledger = app.store.charges_of(PaymentId(request.payment_session_id)).await.expect("ledger");
    assert_eq!(ledger.len(), 1, "{ledger:?}");
    assert_eq!(ledger[0].status, ChargeStatus::Succeeded);
    assert_eq!(provider.charges_made(), 1);
}

#[tokio::test]
async fn a_charge_left_pending_by_a_crash_is_completed_by_the_retry() {
    let app = TestApp::spawn_roles([ServiceRole::Api].into(), |_| {}).await;
    let payment = payment(&app).await;
    let key = format!("confirm:{payment}");
    // The crashed run claimed the charge and never recorded the provider's answer.
    let claimed = app.store.claim_charge(&key, PaymentId(payment), 15_000, "mock").await.expect("claim");
    assert_eq!(claimed.status, ChargeStatus::Pending);

    let provider = MockProvider::default();
    let request = ChargeRequest { idempotency_key: key, payment_session_id: payment, amount: 15_000 };
    let completed = domain::charges::charge(&app.store, &provider, &request).await.expect("retry");
    assert_eq!((completed.id, completed.status.as_str()), (claimed.id, "succeeded"));
    assert_eq!(app.store.charges_of(PaymentId(payment)).await.expect("ledger").len(), 1);
}

#[tokio::test]
async fn a_charge_queued_twice_is_charged_once_by_the_worker() {
    let app = TestApp::spawn().await;
    let payment = payment(&app).await;
    let job = ChargePayment {
        payment_session_id: payment,
        amount: 15_000,
        idempotency_key: format!("confirm:{payment}"),
    };
    let mut storage = workers::charge_payment::storage(&app.store);
    workers::charge_payment::enqueue(&mut storage, job.clone()).await.expect("enqueue");
    workers::charge_payment::enqueue(&mut storage, job).await.expect("enqueue again");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ledger = app.store.charges_of(PaymentId(payment)).await.expect("ledger");
        if ledger.first().is_some_and(|row| row.status == ChargeStatus::Succeeded) {
            assert_eq!(ledger.len(), 1);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the charge job did not run: {ledger:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE idempotency_key = $1")
        .bind(format!("charge_payment:confirm:{payment}"))
        .fetch_one(app.store.pg_pool())
        .await
        .expect("count");
    assert_eq!(jobs, 1);
}
