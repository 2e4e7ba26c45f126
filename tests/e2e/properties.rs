//! Property test of the money and pairing state machines: random sequences of what
//! customers, mitras and timers do to a payment, its searches, its session and the
//! session's extensions, run through the real routes and the real timer jobs. After every
//! sequence no call has answered 5xx and the rows agree with each other: nothing charged
//! that was not served or owed, every consumed payment served exactly once, every accepted
//! search with its one session, every approved extension paid and every other one not.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use workers::timers::{FireTimer, TimerKind};

use crate::harness::{TestApp, WsClient, unique_phone};
use crate::pairing::{go_online, set_config};

/// One thing that happens in a case. Mitra indexes pick one of the case's two mitras.
#[derive(Clone, Debug)]
enum Op {
    Pay,
    Confirm,
    CancelPayment,
    Blast,
    Returning(usize),
    Accept(usize),
    Decline(usize),
    CancelSearch,
    WindowEnds,
    PayExtension,
    AskExtension,
    ApproveExtension(usize),
    RejectExtension(usize),
    ExtensionWindowEnds,
    CustomerEnds,
    MitraEnds(usize),
    TimeUp,
    GraceEnds,
    PaymentExpires,
}

fn op() -> impl Strategy<Value = Op> {
    let mitra = 0..2usize;
    prop_oneof![
        3 => Just(Op::Pay),
        3 => Just(Op::Confirm),
        1 => Just(Op::CancelPayment),
        3 => Just(Op::Blast),
        1 => mitra.clone().prop_map(Op::Returning),
        4 => mitra.clone().prop_map(Op::Accept),
        1 => mitra.clone().prop_map(Op::Decline),
        1 => Just(Op::CancelSearch),
        1 => Just(Op::WindowEnds),
        2 => Just(Op::PayExtension),
        2 => Just(Op::AskExtension),
        2 => mitra.clone().prop_map(Op::ApproveExtension),
        1 => mitra.clone().prop_map(Op::RejectExtension),
        1 => Just(Op::ExtensionWindowEnds),
        1 => Just(Op::CustomerEnds),
        1 => mitra.prop_map(Op::MitraEnds),
        1 => Just(Op::TimeUp),
        1 => Just(Op::GraceEnds),
        1 => Just(Op::PaymentExpires),
    ]
}

/// A case starts somewhere along the way to an extension (a random number of these
/// steps), then random events follow, so deep states are reached as often as shallow ones.
fn sequence() -> impl Strategy<Value = Vec<Op>> {
    let happy = [Op::Pay, Op::Confirm, Op::Blast, Op::Accept(0), Op::PayExtension, Op::AskExtension];
    (0..=happy.len(), prop::collection::vec(op(), 2..12))
        .prop_map(move |(steps, rest)| happy[..steps].iter().cloned().chain(rest).collect())
}

/// Sequences that reach the deep states every run, whatever the random ones draw: each
/// with the event that must succeed in it.
fn deep_sequences() -> Vec<(Vec<Op>, Op)> {
    let asked = [Op::Pay, Op::Confirm, Op::Blast, Op::Accept(0), Op::PayExtension, Op::AskExtension];
    let with = |tail: &[Op]| asked.iter().chain(tail).cloned().collect::<Vec<Op>>();
    vec![
        (
            with(&[Op::ApproveExtension(0), Op::TimeUp, Op::GraceEnds, Op::CustomerEnds]),
            Op::ApproveExtension(0),
        ),
        (with(&[Op::RejectExtension(0), Op::ApproveExtension(0), Op::MitraEnds(0)]), Op::RejectExtension(0)),
        (with(&[Op::ExtensionWindowEnds, Op::ApproveExtension(0), Op::RejectExtension(0)]), Op::AskExtension),
        (
            vec![
                Op::Pay,
                Op::Confirm,
                Op::Blast,
                Op::Accept(1),
                Op::Accept(0),
                Op::CancelSearch,
                Op::WindowEnds,
            ],
            Op::Accept(1),
        ),
        (vec![Op::Pay, Op::Confirm, Op::Blast, Op::CancelSearch, Op::Accept(0), Op::Blast], Op::CancelSearch),
    ]
}

/// The ids a case has seen so far: each op acts on the latest of its kind.
#[derive(Default)]
struct Seen {
    payment: Option<String>,
    request: Option<String>,
    session: Option<String>,
    extension_payment: Option<String>,
    extension: Option<String>,
}

struct Actors {
    customer: String,
    customer_id: Uuid,
    mitras: Vec<(Uuid, String)>,
    /// Held open: a mitra counts as available only while connected.
    _sockets: Vec<WsClient>,
}

fn id(body: &Value, pointer: &str) -> Option<String> {
    body.pointer(pointer).and_then(Value::as_str).map(str::to_owned)
}

async fn fire(app: &TestApp, kind: TimerKind, key: &Option<String>) {
    let Some(key) = key else { return };
    let ctx = workers::JobContext::new(app.services.clone());
    let timer = FireTimer { kind, key: key.parse().expect("uuid"), due_at_ms: domain::clock::now_ms() };
    // A timer that finds nothing to do, or its subject moved on, is fine; a failure is not.
    workers::fire_timer::run(&timer, &ctx).await.expect("the timer runs");
}

/// Runs `op`; returns the HTTP status of the call it made (0 for a timer or a skipped op).
async fn run(app: &TestApp, actors: &Actors, seen: &mut Seen, op: &Op) -> u16 {
    let customer = actors.customer.as_str();
    let mitra = |index: usize| &actors.mitras[index];
    let post = |path: String, token: &str, body: Value| {
        let url = app.public_url(&path);
        let token = token.to_owned();
        async move { app.post(&url, Some(&token), body).await }
    };
    let (status, body) = match op {
        Op::Pay => {
            let (status, body) =
                post("/api/client/payment-sessions".into(), customer, json!({"tier_id": "15m"})).await;
            seen.payment = id(&body, "/id").or(seen.payment.take());
            (status, body)
        }
        Op::Confirm | Op::CancelPayment => {
            let Some(payment) = &seen.payment else { return 0 };
            let verb = if matches!(op, Op::Confirm) { "confirm" } else { "cancel" };
            post(format!("/api/client/payment-sessions/{payment}/{verb}"), customer, json!({})).await
        }
        Op::Blast | Op::Returning(_) => {
            let Some(payment) = &seen.payment else { return 0 };
            let (path, body) = match op {
                Op::Returning(index) => (
                    "/api/client/chat-requests/returning",
                    json!({"payment_session_id": payment, "mitra_id": mitra(*index).0}),
                ),
                _ => ("/api/client/chat-requests", json!({"payment_session_id": payment})),
            };
            let (status, body) = post(path.into(), customer, body).await;
            seen.request = id(&body, "/id").or(seen.request.take());
            (status, body)
        }
        Op::Accept(index) | Op::Decline(index) => {
            let Some(request) = &seen.request else { return 0 };
            let verb = if matches!(op, Op::Accept(_)) { "accept" } else { "decline" };
            let (status, body) =
                post(format!("/api/mitra/chat-requests/{request}/{verb}"), &mitra(*index).1, json!({})).await;
            seen.session = id(&body, "/chat_session/id").or(seen.session.take());
            (status, body)
        }
        Op::CancelSearch => {
            let Some(payment) = &seen.payment else { return 0 };
            post("/api/client/chat-requests/cancel".into(), customer, json!({"payment_session_id": payment}))
                .await
        }
        Op::WindowEnds => {
            fire(app, TimerKind::ClosePairingRequest, &seen.request).await;
            return 0;
        }
        Op::PayExtension => {
            let Some(session) = &seen.session else { return 0 };
            let order = json!({"tier_id": "15m", "purpose": "extension", "chat_session_id": session});
            let (status, body) = post("/api/client/payment-sessions".into(), customer, order).await;
            seen.extension_payment = id(&body, "/id").or(seen.extension_payment.take());
            (status, body)
        }
        Op::AskExtension => {
            let (Some(session), Some(payment)) = (&seen.session, &seen.extension_payment) else { return 0 };
            let body = json!({"extension_payment_session_id": payment});
            let (status, body) =
                post(format!("/api/client/chat-sessions/{session}/extension"), customer, body).await;
            seen.extension = id(&body, "/id").or(seen.extension.take());
            (status, body)
        }
        Op::ApproveExtension(index) | Op::RejectExtension(index) => {
            let Some(extension) = &seen.extension else { return 0 };
            let verb = if matches!(op, Op::ApproveExtension(_)) { "approve" } else { "reject" };
            post(format!("/api/mitra/extension-requests/{extension}/{verb}"), &mitra(*index).1, json!({}))
                .await
        }
        Op::ExtensionWindowEnds => {
            fire(app, TimerKind::ExpireExtension, &seen.extension).await;
            return 0;
        }
        Op::CustomerEnds | Op::MitraEnds(_) => {
            let Some(session) = &seen.session else { return 0 };
            let reason = json!({"reason_code": "other", "reason_text": "cukup"});
            match op {
                Op::MitraEnds(index) => {
                    post(format!("/api/mitra/chat-requests/sessions/{session}/end"), &mitra(*index).1, reason)
                        .await
                }
                _ => post(format!("/api/client/chat-sessions/{session}/end"), customer, reason).await,
            }
        }
        Op::TimeUp => {
            fire(app, TimerKind::EndSessionTime, &seen.session).await;
            return 0;
        }
        Op::GraceEnds => {
            fire(app, TimerKind::CompleteSession, &seen.session).await;
            return 0;
        }
        Op::PaymentExpires => {
            fire(app, TimerKind::ExpirePaymentSession, &seen.payment).await;
            return 0;
        }
    };
    assert!(status < 500, "{op:?} answered {status}: {body}");
    status
}

/// Rows of `customer` that break a rule; empty when the state is consistent.
async fn violations(pool: &PgPool, customer: Uuid) -> Vec<String> {
    let checks = [
        (
            "a succeeded charge on a payment that was neither served nor owed",
            "SELECT p.id::text FROM payment_sessions p JOIN charges c ON c.payment_session_id = p.id
             WHERE p.customer_id = $1 AND c.status = 'succeeded'
               AND p.status NOT IN ('confirmed', 'consumed', 'failed_pairing')",
        ),
        (
            "a charge of another amount than the payment's",
            "SELECT p.id::text FROM payment_sessions p JOIN charges c ON c.payment_session_id = p.id
             WHERE p.customer_id = $1 AND c.status = 'succeeded' AND c.amount <> p.amount",
        ),
        (
            "a paid chat payment consumed without its one session",
            "SELECT p.id::text FROM payment_sessions p WHERE p.customer_id = $1 AND p.purpose = 'chat'
               AND p.status = 'consumed'
               AND (SELECT count(*) FROM chat_sessions s WHERE s.payment_session_id = p.id) <> 1",
        ),
        (
            "a session whose payment is not consumed",
            "SELECT s.id::text FROM chat_sessions s JOIN payment_sessions p ON p.id = s.payment_session_id
             WHERE s.customer_id = $1 AND p.status <> 'consumed'",
        ),
        (
            "an accepted search without its session, or a session without its accepted search",
            "SELECT r.id::text FROM pairing_requests r JOIN payment_sessions p ON p.id = r.payment_session_id
             WHERE p.customer_id = $1
               AND (r.status = 'accepted') <> EXISTS (SELECT 1 FROM chat_sessions s WHERE s.pairing_request_id = r.id)",
        ),
        (
            "a payment with two searches that succeeded",
            "SELECT r.payment_session_id::text FROM pairing_requests r JOIN payment_sessions p ON p.id = r.payment_session_id
             WHERE p.customer_id = $1 AND r.status = 'accepted' GROUP BY r.payment_session_id HAVING count(*) > 1",
        ),
        (
            "an approved extension whose payment is not consumed and paid",
            "SELECT e.id::text FROM extension_requests e JOIN payment_sessions p ON p.id = e.payment_session_id
             WHERE p.customer_id = $1 AND e.status IN ('approved', 'auto_approved')
               AND (p.status <> 'consumed' OR NOT EXISTS (
                   SELECT 1 FROM charges c WHERE c.payment_session_id = p.id AND c.status = 'succeeded'))",
        ),
        (
            "an extension not approved whose payment was charged or consumed",
            "SELECT e.id::text FROM extension_requests e JOIN payment_sessions p ON p.id = e.payment_session_id
             WHERE p.customer_id = $1 AND e.status NOT IN ('approved', 'auto_approved', 'pending')
               AND (p.status = 'consumed' OR EXISTS (
                   SELECT 1 FROM charges c WHERE c.payment_session_id = p.id AND c.status = 'succeeded'))",
        ),
        (
            "a session that ends before its paid minutes (base plus approved extensions)",
            "SELECT s.id::text FROM chat_sessions s JOIN payment_sessions p ON p.id = s.payment_session_id
             WHERE s.customer_id = $1 AND s.status IN ('active', 'extending')
               AND s.ends_at < s.started_at + make_interval(mins => p.duration_minutes + coalesce((
                   SELECT sum(e.duration_minutes)::int FROM extension_requests e
                   WHERE e.chat_session_id = s.id AND e.status IN ('approved', 'auto_approved')), 0))",
        ),
    ];
    let mut found = Vec::new();
    for (rule, query) in checks {
        let rows: Vec<String> =
            sqlx::query_scalar(query).bind(customer).fetch_all(pool).await.expect("invariant query");
        found.extend(rows.into_iter().map(|row| format!("{rule}: {row}")));
    }
    found
}

async fn actors(app: &TestApp, operator: &str) -> Actors {
    let (customer_id, customer, _) = app.sign_in_customer(&unique_phone()).await;
    let mut mitras = Vec::new();
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let (id, token, _) = app.sign_in_new_mitra(operator).await;
        let online = go_online(app, id, token.clone()).await;
        sockets.push(online.socket);
        mitras.push((id, token));
    }
    Actors { customer, customer_id, mitras, _sockets: sockets }
}

#[test]
fn no_sequence_of_events_charges_twice_or_leaves_the_rows_disagreeing() {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    // No worker role: the timers fire when the sequence says so, and only then.
    let app = runtime
        .block_on(TestApp::spawn_roles([bestie::ServiceRole::Api, bestie::ServiceRole::Hub].into(), |_| {}));
    let operator = runtime.block_on(async {
        let pool = app.store.pg_pool();
        set_config(pool, "early_end_customer_enabled", json!(true)).await;
        set_config(pool, "early_end_mitra_enabled", json!(true)).await;
        app.sign_in_operator().await
    });
    runtime.block_on(async {
        for (ops, must_succeed) in deep_sequences() {
            let actors = actors(&app, &operator).await;
            let mut seen = Seen::default();
            let mut succeeded = false;
            for op in &ops {
                let status = run(&app, &actors, &mut seen, op).await;
                let same = std::mem::discriminant(op) == std::mem::discriminant(&must_succeed);
                succeeded |= same && (200..300).contains(&status);
            }
            assert!(succeeded, "{must_succeed:?} did not succeed in {ops:?}");
            let found = violations(app.store.pg_pool(), actors.customer_id).await;
            assert!(found.is_empty(), "{ops:?}: {found:?}");
        }
    });
    let cases = 32;
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let ran = std::cell::Cell::new(0u32);
    // How often each kind of event was accepted (2xx) and refused (4xx), over every case.
    let tally = std::cell::RefCell::new(std::collections::BTreeMap::<String, (u32, u32)>::new());
    let result = runner.run(&sequence(), |ops| {
        runtime.block_on(async {
            let actors = actors(&app, &operator).await;
            let mut seen = Seen::default();
            for op in &ops {
                let status = run(&app, &actors, &mut seen, op).await;
                let name = format!("{op:?}").split('(').next().unwrap_or_default().to_owned();
                let mut tally = tally.borrow_mut();
                let entry = tally.entry(name).or_default();
                match status {
                    200..=299 => entry.0 += 1,
                    400..=499 => entry.1 += 1,
                    _ => {}
                }
            }
            ran.set(ran.get() + 1);
            let found = violations(app.store.pg_pool(), actors.customer_id).await;
            if found.is_empty() { Ok(()) } else { Err(TestCaseError::fail(format!("{ops:?}: {found:?}"))) }
        })
    });
    drop(app);
    if let Err(failure) = result {
        panic!("{failure}");
    }
    assert!(ran.get() >= cases, "only {} sequences ran", ran.get());
    eprintln!("random sequences, accepted / refused by event: {:?}", tally.into_inner());
}
