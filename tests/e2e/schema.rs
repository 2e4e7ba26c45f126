//! The constraints that make business rules hold in the database itself, whatever code
//! runs against it. Each test breaks one rule with raw SQL and expects Postgres to refuse.

use sqlx::PgPool;
use uuid::Uuid;

use crate::harness::TestApp;

/// A customer, a mitra, a confirmed payment and a pending general pairing request.
pub struct Fixture {
    pub customer: Uuid,
    pub mitra: Uuid,
    pub payment: Uuid,
    pub request: Uuid,
}

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

pub async fn customer(pool: &PgPool) -> Uuid {
    let phone = format!("+62812{}", &Uuid::new_v4().as_u128().to_string()[..8]);
    sqlx::query_scalar("INSERT INTO customers (phone, call_name) VALUES ($1, 'Rani') RETURNING id")
        .bind(phone)
        .fetch_one(pool)
        .await
        .expect("insert customer")
}

pub async fn mitra(pool: &PgPool) -> Uuid {
    let email = format!("m{}@bestie.test", Uuid::new_v4().simple());
    sqlx::query_scalar(
        "INSERT INTO mitras (email, display_name, password_hash) VALUES ($1, 'Bestie', $2) RETURNING id",
    )
    .bind(email)
    .bind(HASH)
    .fetch_one(pool)
    .await
    .expect("insert mitra")
}

pub async fn confirmed_payment(pool: &PgPool, customer: Uuid) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO payment_sessions (customer_id, duration_minutes, amount, status, expires_at, confirmed_at)
         VALUES ($1, 15, 15000, 'confirmed', now() + interval '20 minutes', now()) RETURNING id",
    )
    .bind(customer)
    .fetch_one(pool)
    .await
    .expect("insert payment")
}

pub async fn pending_request(pool: &PgPool, customer: Uuid, payment: Uuid) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO pairing_requests (payment_session_id, customer_id, request_type, expires_at)
         VALUES ($1, $2, 'general', now() + interval '60 seconds') RETURNING id",
    )
    .bind(payment)
    .bind(customer)
    .fetch_one(pool)
    .await
}

pub async fn fixture(pool: &PgPool) -> Fixture {
    let customer = customer(pool).await;
    let mitra = mitra(pool).await;
    let payment = confirmed_payment(pool, customer).await;
    let request = pending_request(pool, customer, payment).await.expect("insert request");
    Fixture { customer, mitra, payment, request }
}

/// The name of the constraint Postgres reported, or a panic when the statement succeeded.
fn violated(result: Result<impl std::fmt::Debug, sqlx::Error>) -> String {
    match result {
        Err(sqlx::Error::Database(e)) => e.constraint().unwrap_or("<none>").to_owned(),
        other => panic!("expected a constraint violation, got {other:?}"),
    }
}

#[tokio::test]
async fn a_second_accept_of_one_request_is_refused() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let f = fixture(pool).await;
    let second_mitra = mitra(pool).await;
    for m in [f.mitra, second_mitra] {
        sqlx::query("INSERT INTO chat_request_notifications (pairing_request_id, mitra_id, active_session_count) VALUES ($1, $2, 0)")
            .bind(f.request)
            .bind(m)
            .execute(pool)
            .await
            .expect("notify");
    }
    let accept = "UPDATE chat_request_notifications SET response = 'accepted', responded_at = now()
                  WHERE pairing_request_id = $1 AND mitra_id = $2";
    sqlx::query(accept).bind(f.request).bind(f.mitra).execute(pool).await.expect("first accept");
    let second = sqlx::query(accept).bind(f.request).bind(second_mitra).execute(pool).await;
    assert_eq!(violated(second), "chat_request_notifications_one_accept_idx");
}

#[tokio::test]
async fn one_payment_runs_one_search_at_a_time_and_starts_one_session() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let f = fixture(pool).await;
    let second_search = pending_request(pool, f.customer, f.payment).await;
    assert_eq!(violated(second_search), "pairing_requests_one_pending_per_payment_idx");

    let start =
        "INSERT INTO chat_sessions (customer_id, mitra_id, payment_session_id, pairing_request_id, ends_at)
                 VALUES ($1, $2, $3, $4, now() + interval '15 minutes')";
    sqlx::query(start)
        .bind(f.customer)
        .bind(f.mitra)
        .bind(f.payment)
        .bind(f.request)
        .execute(pool)
        .await
        .expect("start");
    let again =
        sqlx::query(start).bind(f.customer).bind(f.mitra).bind(f.payment).bind(f.request).execute(pool).await;
    assert_eq!(violated(again), "chat_sessions_payment_session_id_key");
}

#[tokio::test]
async fn a_message_is_stored_once_per_sender_and_client_id() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let f = fixture(pool).await;
    let session: Uuid = sqlx::query_scalar(
        "INSERT INTO chat_sessions (customer_id, mitra_id, payment_session_id, pairing_request_id, ends_at)
         VALUES ($1, $2, $3, $4, now() + interval '15 minutes') RETURNING id",
    )
    .bind(f.customer)
    .bind(f.mitra)
    .bind(f.payment)
    .bind(f.request)
    .fetch_one(pool)
    .await
    .expect("session");
    let insert =
        "INSERT INTO chat_messages (chat_session_id, seq, sender_role, sender_id, client_msg_id, body)
                  VALUES ($1, $2, 'customer', $3, 'c-1', 'halo')";
    sqlx::query(insert).bind(session).bind(1_i64).bind(f.customer).execute(pool).await.expect("first");
    let resend = sqlx::query(insert).bind(session).bind(2_i64).bind(f.customer).execute(pool).await;
    assert_eq!(violated(resend), "chat_messages_sender_client_msg_key");

    let too_long = "x".repeat(4001);
    let long = sqlx::query(
        "INSERT INTO chat_messages (chat_session_id, seq, sender_role, sender_id, client_msg_id, body)
         VALUES ($1, 3, 'mitra', $2, 'm-1', $3)",
    )
    .bind(session)
    .bind(f.mitra)
    .bind(too_long)
    .execute(pool)
    .await;
    assert_eq!(violated(long), "chat_messages_body_check");
}

#[tokio::test]
async fn states_outside_the_machines_are_refused() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let f = fixture(pool).await;

    let pending: Uuid = sqlx::query_scalar(
        "INSERT INTO payment_sessions (customer_id, duration_minutes, amount, expires_at)
         VALUES ($1, 15, 15000, now() + interval '20 minutes') RETURNING id",
    )
    .bind(f.customer)
    .fetch_one(pool)
    .await
    .expect("pending payment");
    let unknown = sqlx::query("UPDATE payment_sessions SET status = 'paid' WHERE id = $1")
        .bind(pending)
        .execute(pool)
        .await;
    assert_eq!(violated(unknown), "payment_sessions_status_check");

    // Consumed without a consumption time: the state and its timestamps move together.
    let half =
        sqlx::query("UPDATE payment_sessions SET status = 'consumed', resolved_at = now() WHERE id = $1")
            .bind(f.payment)
            .execute(pool)
            .await;
    assert_eq!(violated(half), "payment_sessions_consumed_at_matches_status");

    // An accepted request must name the mitra who accepted.
    let anonymous =
        sqlx::query("UPDATE pairing_requests SET status = 'accepted', resolved_at = now() WHERE id = $1")
            .bind(f.request)
            .execute(pool)
            .await;
    assert_eq!(violated(anonymous), "pairing_requests_accepted_names_mitra");
}

#[tokio::test]
async fn a_free_trial_is_never_an_extension_and_never_costs_money() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let customer = customer(pool).await;
    let priced_trial = sqlx::query(
        "INSERT INTO payment_sessions (customer_id, duration_minutes, amount, is_free_trial, expires_at)
         VALUES ($1, 15, 15000, true, now() + interval '20 minutes')",
    )
    .bind(customer)
    .execute(pool)
    .await;
    assert_eq!(violated(priced_trial), "payment_sessions_trial_is_free_and_never_an_extension");
}

#[tokio::test]
async fn a_customer_holds_one_free_trial() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let customer = customer(pool).await;
    let trial = "INSERT INTO payment_sessions (customer_id, duration_minutes, amount, is_free_trial, status, expires_at, confirmed_at)
                 VALUES ($1, 15, 0, true, 'confirmed', now() + interval '20 minutes', now())";
    sqlx::query(trial).bind(customer).execute(pool).await.expect("first trial");
    let second = sqlx::query(trial).bind(customer).execute(pool).await;
    assert_eq!(violated(second), "payment_sessions_one_free_trial_idx");
}

#[tokio::test]
async fn an_operator_action_on_a_failure_is_attributed() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let f = fixture(pool).await;
    let failure: Uuid = sqlx::query_scalar(
        "INSERT INTO pairing_failures (payment_session_id, customer_id, cause_tag, amount)
         VALUES ($1, $2, 'no_mitra_available', 15000) RETURNING id",
    )
    .bind(f.payment)
    .bind(f.customer)
    .fetch_one(pool)
    .await
    .expect("failure");
    let unattributed = sqlx::query("UPDATE pairing_failures SET operator_action = 'refunded' WHERE id = $1")
        .bind(failure)
        .execute(pool)
        .await;
    assert_eq!(violated(unattributed), "pairing_failures_action_is_attributed");
    let unknown_cause = sqlx::query(
        "INSERT INTO pairing_failures (payment_session_id, customer_id, cause_tag, amount) VALUES ($1, $2, 'bad_luck', 1)",
    )
    .bind(f.payment)
    .bind(f.customer)
    .execute(pool)
    .await;
    assert_eq!(violated(unknown_cause), "pairing_failures_cause_tag_check");
}

/// The names the CHECK constraints of a column allow (`col IN ('a', 'b', ...)`, as Postgres
/// prints it back: `ANY (ARRAY['a'::text, ...])`).
async fn allowed_names(pool: &PgPool, table: &str, column: &str) -> std::collections::BTreeSet<String> {
    let definitions: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
         WHERE c.conrelid = $1::regclass AND c.contype = 'c'",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .expect("constraints");
    // The column's own list: a constraint that ties it to another column may also name a
    // few of its values (`status IN ('failed', 'cancelled') = (failure_cause IS NOT NULL)`),
    // and another column's values besides.
    definitions
        .iter()
        .filter(|d| d.starts_with(&format!("CHECK (({column} = ANY")))
        .map(|d| {
            d.split('\'').skip(1).step_by(2).map(str::to_owned).collect::<std::collections::BTreeSet<_>>()
        })
        .max_by_key(std::collections::BTreeSet::len)
        .unwrap_or_else(|| panic!("no list check on {table}.{column}: {definitions:?}"))
}

fn names(all: &[impl std::fmt::Display]) -> std::collections::BTreeSet<String> {
    all.iter().map(ToString::to_string).collect()
}

/// The database and the code agree on every name they share: operator roles, failure causes,
/// request types, request states, payment states and session states.
#[tokio::test]
async fn the_database_allows_exactly_the_names_the_code_knows() {
    use domain::pairing::store::{RequestState, RequestType};
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let operator_roles: std::collections::BTreeSet<String> = names(domain::auth::AccountRole::ALL)
        .into_iter()
        .filter(|role| role != domain::auth::AccountRole::Mitra.as_str())
        .collect();
    assert_eq!(allowed_names(pool, "cc_users", "role").await, operator_roles);
    let causes = names(domain::failures::FailureCause::ALL);
    assert_eq!(allowed_names(pool, "pairing_failures", "cause_tag").await, causes);
    assert_eq!(allowed_names(pool, "pairing_requests", "failure_cause").await, causes);
    assert_eq!(allowed_names(pool, "pairing_requests", "request_type").await, names(RequestType::ALL));
    assert_eq!(allowed_names(pool, "pairing_requests", "status").await, names(RequestState::ALL));
    let payment_states = names(domain::payment::store::PaymentStatus::ALL);
    assert_eq!(allowed_names(pool, "payment_sessions", "status").await, payment_states);
    let session_states = names(domain::chat::store::SessionStatus::ALL);
    assert_eq!(allowed_names(pool, "chat_sessions", "status").await, session_states);
    use domain::extension::{ExtensionReason, ExtensionStatus};
    assert_eq!(allowed_names(pool, "extension_requests", "status").await, names(ExtensionStatus::ALL));
    let reasons = names(ExtensionReason::ALL);
    assert_eq!(allowed_names(pool, "extension_requests", "resolution_reason").await, reasons);
    let kinds = names(domain::chat::store::ClosureKind::ALL);
    assert_eq!(allowed_names(pool, "session_closures", "kind").await, kinds);
    let initiators = names(domain::chat::store::ClosureInitiator::ALL);
    assert_eq!(allowed_names(pool, "session_closures", "initiated_by").await, initiators);
    let charge_states = names(domain::charges::ChargeStatus::ALL);
    assert_eq!(allowed_names(pool, "charges", "status").await, charge_states);
    let senders = names(&[domain::auth::Role::Customer, domain::auth::Role::Mitra]);
    assert_eq!(allowed_names(pool, "chat_messages", "sender_role").await, senders);
    let actions = names(domain::failures::OperatorAction::ALL);
    assert_eq!(allowed_names(pool, "pairing_failures", "operator_action").await, actions);
}
