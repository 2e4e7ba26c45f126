//! Races on one request: a hundred accepts, a cancel against an accept, and an accept, a
//! cancel and the window end at once; each ends in exactly one outcome.

use super::*;

#[tokio::test]
async fn a_hundred_concurrent_accepts_start_exactly_one_session() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let hash = domain::password::hash("listen-well-1").await.expect("hash");
    let mut mitras = Vec::new();
    for n in 0..100 {
        let email = format!("m{n}-{}@bestie.test", &Uuid::new_v4().simple().to_string()[..8]);
        let account = domain::accounts::store::NewAccount {
            email: &email,
            display_name: "Bestie",
            password_hash: &hash,
        };
        let id = app.store.insert_mitra_if_absent(account).await.expect("mitra").expect("new mitra");
        mitras.push(go_online(&app, id, app.token_for(id, Role::Mitra)).await);
    }
    let rani = customer(&app).await;
    let payment = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
    let (_, request) = start_blast(&app, &rani.token, &payment).await;
    let request_id = id_of(&request);
    assert_eq!(activity(pool, &request_id).await.len(), 100);

    let attempts = mitras.iter().map(|mitra| accept(&app, &mitra.token, &request_id));
    let outcomes = futures::future::join_all(attempts).await;
    let won: Vec<_> = outcomes.iter().filter(|(status, _)| *status == 200).collect();
    assert_eq!(won.len(), 1, "exactly one accept wins");
    let lost = outcomes
        .iter()
        .filter(|(status, body)| *status == 409 && body["error"]["code"] == "chat_request_taken");
    assert_eq!(lost.count(), 99, "{outcomes:?}");
    let sessions = sessions_of(pool, &payment).await;
    assert_eq!(sessions, 1);
    let responses = activity(pool, &request_id).await;
    assert_eq!(responses.iter().filter(|r| r.1.as_deref() == Some("accepted")).count(), 1);
    assert_eq!(responses.iter().filter(|r| r.1.as_deref() == Some("missed")).count(), 99);
    assert_eq!(payment_status(pool, &payment).await, "consumed");
}

#[tokio::test]
async fn a_cancel_racing_an_accept_has_one_consistent_outcome() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    let operator = app.sign_in_operator().await;
    let (mut accepted, mut cancelled) = (0, 0);
    for _ in 0..8 {
        // A new mitra each round: accepted rounds fill a mitra's capacity.
        let ayu = new_online_mitra(&app, &operator).await;
        let rani = customer(&app).await;
        let payment = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
        let (_, request) = start_blast(&app, &rani.token, &payment).await;
        let request_id = id_of(&request);
        let cancel_url = app.public_url("/api/client/chat-requests/cancel");
        let cancel = app.post(&cancel_url, Some(&rani.token), json!({"payment_session_id": payment["id"]}));
        let ((accept_status, accept_body), (cancel_status, cancel_body)) =
            tokio::join!(accept(&app, &ayu.token, &request_id), cancel);
        let sessions = sessions_of(pool, &payment).await;
        match (accept_status, cancel_status) {
            (200, 409) => {
                assert_eq!(cancel_body["error"]["code"], "already_paired");
                assert_eq!(payment_status(pool, &payment).await, "consumed");
                assert!(ledger(pool, &payment).await.is_empty());
                assert_eq!(sessions, 1);
                accepted += 1;
            }
            (409, 200) => {
                assert_eq!(accept_body["error"]["code"], "chat_request_cancelled");
                assert_eq!(payment_status(pool, &payment).await, "failed_pairing");
                assert_eq!(
                    ledger(pool, &payment).await,
                    vec![("customer_cancelled".into(), "failed_pairing".into())]
                );
                assert_eq!(sessions, 0);
                cancelled += 1;
            }
            other => panic!("inconsistent outcome {other:?}: {accept_body} / {cancel_body}"),
        }
    }
    assert_eq!(accepted + cancelled, 8);
}

#[tokio::test]
async fn an_accept_a_cancel_and_the_window_end_at_once_have_one_outcome() {
    use bestie::ServiceRole;
    use workers::timers::TimerKind;
    // No worker: the window's timer runs when this test fires it, at the same time as the rest.
    let app = TestApp::spawn_roles([ServiceRole::Api, ServiceRole::Hub].into(), |_| {}).await;
    let pool = app.store.pg_pool();
    let operator = app.sign_in_operator().await;
    let mut outcomes = std::collections::BTreeMap::<&str, u32>::new();
    for round in 0..12u64 {
        let ayu = new_online_mitra(&app, &operator).await;
        let rani = customer(&app).await;
        let payment = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
        let (_, request) = start_blast(&app, &rani.token, &payment).await;
        let request_id = id_of(&request);
        // The window ends now or within a few ms: the three meet at its edge.
        let due_at: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
            "UPDATE pairing_requests SET expires_at = now() + make_interval(secs => $2::double precision)
             WHERE id = $1::uuid RETURNING expires_at",
        )
        .bind(&request_id)
        .bind((round % 4) as f64 * 0.005)
        .fetch_one(pool)
        .await
        .expect("move the window's end");
        let due_ms = u64::try_from(due_at.timestamp_millis()).expect("positive");
        let cancel_url = app.public_url("/api/client/chat-requests/cancel");
        let cancel = app.post(&cancel_url, Some(&rani.token), json!({"payment_session_id": payment["id"]}));
        let ((accept_status, _), (cancel_status, _), ()) = tokio::join!(
            accept(&app, &ayu.token, &request_id),
            cancel,
            crate::sessions::fire(&app, TimerKind::ClosePairingRequest, &request_id, due_ms),
        );
        let status = payment_status(pool, &payment).await;
        let (sessions, ledger) = (sessions_of(pool, &payment).await, ledger(pool, &payment).await);
        // Cancelling is idempotent: after the window ended it answers 200 with the failed payment.
        let cause = ledger.first().map(|(cause, _)| cause.as_str());
        let outcome = match (accept_status, cancel_status, status.as_str(), cause) {
            (200, 409, "consumed", None) if sessions == 1 => "accepted",
            (409, 200, "failed_pairing", Some("customer_cancelled")) if sessions == 0 => "cancelled",
            (409, 200, "failed_pairing", Some("no_mitra_available")) if sessions == 0 => "window ended",
            other => panic!("inconsistent outcome {other:?}: sessions {sessions}, ledger {ledger:?}"),
        };
        assert!(ledger.len() <= 1, "one failure recorded at most: {ledger:?}");
        *outcomes.entry(outcome).or_default() += 1;
    }
    eprintln!("outcomes of 12 three-way races: {outcomes:?}");
    assert_eq!(outcomes.values().sum::<u32>(), 12);
}
