//! A fake payment provider over HTTP, meeting the contract of docs/API.md ("Payment provider
//! (outbound)") on 127.0.0.1:0: it charges once per idempotency key as a real provider does
//! (the same key gets the same reference), counts calls and charges, and can be told what
//! the next charge request gets: held (charged, answer withheld until released) or an
//! answer of the test's choosing (nothing charged). The project's rule: fakes only for
//! what lives outside, and then a server, so the real `HttpProvider` is what talks to it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use domain::settings::{PaymentProviderKind, Secret, Settings};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

/// The fake, serving on the test's runtime until it is dropped with it.
pub struct FakeProvider {
    pub url: String,
    pub api_key: String,
    state: Arc<FakeState>,
}

struct FakeState {
    api_key: String,
    ledger: Mutex<Ledger>,
    /// Requests received so far, for tests that wait for the nth.
    calls_seen: watch::Sender<usize>,
}

#[derive(Default)]
struct Ledger {
    /// The `Idempotency-Key` header of every request, in arrival order.
    calls: Vec<String>,
    /// Charges made, by idempotency key.
    charges: HashMap<String, Charge>,
    /// What the next requests get instead of the usual handling, first in first out.
    script: VecDeque<Scripted>,
}

struct Charge {
    reference: String,
    payment_session_id: String,
    amount: i64,
}

enum Scripted {
    /// Charge, then answer only once the sender is used or dropped.
    Hold(oneshot::Receiver<()>),
    /// Answer this status and body; charge nothing.
    Answer(StatusCode, Value),
}

/// Lets a held answer go (dropping it does too).
pub struct Held(oneshot::Sender<()>);

impl Held {
    pub fn release(self) {
        let _ = self.0.send(());
    }
}

/// The fields the contract sends in the body.
struct ChargeBody {
    idempotency_key: String,
    payment_session_id: String,
    amount: i64,
}

impl ChargeBody {
    fn parse(bytes: &[u8]) -> Option<Self> {
        let body: Value = serde_json::from_slice(bytes).ok()?;
        Some(Self {
            idempotency_key: body["idempotency_key"].as_str()?.to_owned(),
            payment_session_id: body["payment_session_id"].as_str()?.to_owned(),
            amount: body["amount"].as_i64()?,
        })
    }
}

impl FakeProvider {
    pub async fn start() -> Self {
        let api_key = format!("sk_test_{}", uuid::Uuid::new_v4().simple());
        let state = Arc::new(FakeState {
            api_key: api_key.clone(),
            ledger: Mutex::default(),
            calls_seen: watch::Sender::new(0),
        });
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let router = axum::Router::new().route("/charges", post(charge)).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, api_key, state }
    }

    /// Points `settings` at this fake (`payments.provider = http`).
    pub fn configure(&self, settings: &mut Settings) {
        settings.payments.provider = Some(PaymentProviderKind::Http);
        settings.payments.url = Some(self.url.clone());
        settings.payments.api_key = Some(Secret::new(self.api_key.clone()));
    }

    /// An app (api and hub, no worker: the test fires timers and sweeps itself) charging
    /// through this fake, each call given up after `timeout_ms`.
    pub async fn app_without_worker(&self, timeout_ms: u64) -> crate::harness::TestApp {
        let roles = [bestie::ServiceRole::Api, bestie::ServiceRole::Hub].into();
        crate::harness::TestApp::spawn_roles(roles, |settings| {
            self.configure(settings);
            settings.payments.timeout_ms = timeout_ms;
        })
        .await
    }

    /// The same, as the `BESTIE__PAYMENTS__...` variables of a `bestie` process.
    pub fn env(&self) -> [(&'static str, String); 3] {
        [
            ("BESTIE__PAYMENTS__PROVIDER", "http".to_owned()),
            ("BESTIE__PAYMENTS__URL", self.url.clone()),
            ("BESTIE__PAYMENTS__API_KEY", self.api_key.clone()),
        ]
    }

    /// The next charge request is charged but not answered until the returned handle is
    /// used or dropped.
    pub fn hold_next(&self) -> Held {
        let (release, held) = oneshot::channel();
        self.ledger().script.push_back(Scripted::Hold(held));
        Held(release)
    }

    /// The next charge request gets `status` and `body` and charges nothing.
    pub fn answer_next(&self, status: u16, body: Value) {
        let status = StatusCode::from_u16(status).expect("a status code");
        self.ledger().script.push_back(Scripted::Answer(status, body));
    }

    /// Waits until `count` requests have arrived (a held one counts once it is charged).
    pub async fn wait_for_calls(&self, count: usize) {
        let mut seen = self.state.calls_seen.subscribe();
        let arrived = tokio::time::timeout(Duration::from_secs(10), seen.wait_for(|n| *n >= count)).await;
        assert!(arrived.is_ok(), "the provider did not get {count} call(s) within 10 s: {:?}", self.calls());
    }

    /// The idempotency key of every request received, in order.
    pub fn calls(&self) -> Vec<String> {
        self.ledger().calls.clone()
    }

    /// Charges really made: one per distinct key that was charged.
    pub fn charges_made(&self) -> usize {
        self.ledger().charges.len()
    }

    /// The reference of the charge made under `key`, with its payment session and amount.
    pub fn charge_of(&self, key: &str) -> Option<(String, String, i64)> {
        let ledger = self.ledger();
        let charge = ledger.charges.get(key)?;
        Some((charge.reference.clone(), charge.payment_session_id.clone(), charge.amount))
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.state.ledger.lock().expect("fake provider ledger")
    }
}

async fn charge(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let authorized = header("authorization") == format!("Bearer {}", state.api_key);
    let key = header("idempotency-key").to_owned();
    let body = ChargeBody::parse(&body);
    let (answer, hold) = {
        let mut ledger = state.ledger.lock().expect("fake provider ledger");
        ledger.calls.push(key.clone());
        decide(&mut ledger, authorized, &key, body)
    };
    state.calls_seen.send_modify(|calls| *calls += 1);
    if let Some(release) = hold {
        let _ = release.await;
    }
    answer
}

/// The answer to one request, and what holds it back, if anything.
fn decide(
    ledger: &mut Ledger,
    authorized: bool,
    key: &str,
    body: Option<ChargeBody>,
) -> ((StatusCode, Json<Value>), Option<oneshot::Receiver<()>>) {
    if !authorized {
        return ((StatusCode::UNAUTHORIZED, Json(json!({"error": "bad API key"}))), None);
    }
    let Some(body) = body.filter(|body| body.idempotency_key == key && body.amount > 0) else {
        let error = json!({"error": "the Idempotency-Key header, the body or the amount is wrong"});
        return ((StatusCode::BAD_REQUEST, Json(error)), None);
    };
    match ledger.script.pop_front() {
        Some(Scripted::Answer(status, body)) => ((status, Json(body)), None),
        Some(Scripted::Hold(release)) => (make_charge(ledger, key, body), Some(release)),
        None => (make_charge(ledger, key, body), None),
    }
}

/// Charges under `key` once: a repeat with the same parameters gets the first reference
/// (200), with others a 409 as real providers answer a reused key.
fn make_charge(ledger: &mut Ledger, key: &str, body: ChargeBody) -> (StatusCode, Json<Value>) {
    if let Some(charge) = ledger.charges.get(key) {
        if (charge.payment_session_id.as_str(), charge.amount)
            != (body.payment_session_id.as_str(), body.amount)
        {
            return (
                StatusCode::CONFLICT,
                Json(json!({"error": "idempotency key reused with other parameters"})),
            );
        }
        return (StatusCode::OK, Json(json!({"reference": charge.reference})));
    }
    let reference = format!("ch_{}", uuid::Uuid::new_v4().simple());
    let charge = Charge {
        reference: reference.clone(),
        payment_session_id: body.payment_session_id,
        amount: body.amount,
    };
    ledger.charges.insert(key.to_owned(), charge);
    (StatusCode::CREATED, Json(json!({"reference": reference})))
}
