//! Charging customers through a payment provider, at most once per idempotency key.
//!
//! A charge is first claimed in the ledger (`pending`, unique idempotency key), then sent to
//! the provider with that same key, then completed. A duplicate or retried charge finds the
//! row: completed → returned as it is, no provider call; still pending (a crash between the
//! call and the update, or a concurrent twin) → the provider is called again with the same
//! key, which providers answer with the original charge, and the row is completed once.
//!
//! Providers: [`MockProvider`] (in-process, development and tests) and [`HttpProvider`], a
//! provider adapter reached over HTTP (the wire contract is in docs/API.md, "Payment
//! provider"); [`provider`] picks one from the settings.

pub mod store;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use uuid::Uuid;

pub use crate::charges::store::{ChargeRow, ChargeStatus};
use crate::error::{DomainError, ErrorKind};
use crate::ids::PaymentId;
use crate::metrics::Metrics;
use crate::settings::{Mode, PaymentProviderKind, PaymentSettings, Secret};
use crate::store::{Store, StoreError};

/// What the provider is asked to do.
#[derive(Clone, Debug)]
pub struct ChargeRequest {
    pub idempotency_key: String,
    pub payment_session_id: Uuid,
    /// Whole rupiah.
    pub amount: i64,
}

/// A payment provider. Implementations must deduplicate by `idempotency_key`.
pub trait PaymentProvider: Send + Sync {
    fn name(&self) -> &'static str;
    /// Charges, returning the provider's reference, or why it was declined.
    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> BoxFuture<'a, Result<String, ProviderError>>;
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused the charge (card declined, ...): final.
    #[error("declined: {0}")]
    Declined(String),
    /// The provider could not be reached or failed: retry with the same key.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// The development provider: every charge succeeds and no money moves. Deduplicates by key
/// like a real one, and counts the charges it really made. Production refuses it.
#[derive(Default)]
pub struct MockProvider {
    calls: AtomicU64,
    made: AtomicU64,
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl MockProvider {
    /// Charges made (a repeated key is not a new charge).
    pub fn charges_made(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    /// Requests received, repeated keys included.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

impl PaymentProvider for MockProvider {
    fn name(&self) -> &'static str {
        "mock"
    }

    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let new = self
                .seen
                .lock()
                .map(|mut seen| seen.insert(request.idempotency_key.clone()))
                .unwrap_or(false);
            if new {
                self.made.fetch_add(1, Ordering::Relaxed);
            }
            Ok(format!("mock_{}", request.idempotency_key))
        })
    }
}

/// A provider adapter over HTTP: `POST {url}/charges` with `Idempotency-Key` and a bearer
/// API key. 200/201 `{reference}` is a charge; 402/422 `{reason}` a decline; any other
/// answer, an unusable one, no connection or no answer within the timeout is
/// [`ProviderError::Unavailable`]: the ledger row stays pending and the retry sends the same
/// key again (the provider may have charged; its deduplication makes the retry safe).
pub struct HttpProvider {
    client: reqwest::Client,
    /// `{url}/charges`.
    charges_url: reqwest::Url,
    api_key: Secret,
    timeout: Duration,
}

/// Most bytes read of a provider's answer: a reference or a reason is a short string.
const MAX_ANSWER_BYTES: usize = 16 * 1024;
/// The longest reference the ledger records; a longer one is not a usable answer.
const MAX_REFERENCE_CHARS: usize = 255;
/// A decline reason is cut to this many characters (it reaches the customer and the ledger).
const MAX_REASON_CHARS: usize = 300;

impl HttpProvider {
    pub fn new(url: &str, api_key: Secret, timeout: Duration) -> Result<Self, String> {
        let mut charges_url = reqwest::Url::parse(url).map_err(|e| format!("payments.url {url:?}: {e}"))?;
        charges_url
            .path_segments_mut()
            .map_err(|()| format!("payments.url {url:?} cannot take a path"))?
            .pop_if_empty()
            .push("charges");
        let client = reqwest::Client::builder()
            .timeout(timeout)
            // A redirected POST would become a GET elsewhere: a 3xx is an unusable answer.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("building the payment provider's HTTP client: {e}"))?;
        Ok(Self { client, charges_url, api_key, timeout })
    }

    fn unreachable(&self, error: &reqwest::Error) -> ProviderError {
        if error.is_timeout() {
            return ProviderError::Unavailable(format!(
                "the provider did not answer within {} ms",
                self.timeout.as_millis()
            ));
        }
        // reqwest's own text hides the cause ("connection refused", ...) in its sources.
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        ProviderError::Unavailable(format!("could not reach the provider: {text}"))
    }
}

impl PaymentProvider for HttpProvider {
    fn name(&self) -> &'static str {
        "http"
    }

    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            let body = serde_json::json!({
                "idempotency_key": request.idempotency_key,
                "payment_session_id": request.payment_session_id,
                "amount": request.amount,
            });
            let mut response = self
                .client
                .post(self.charges_url.clone())
                .header("Idempotency-Key", &request.idempotency_key)
                .bearer_auth(self.api_key.expose())
                .json(&body)
                .send()
                .await
                .map_err(|e| self.unreachable(&e))?;
            let status = response.status().as_u16();
            let mut answer = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| self.unreachable(&e))? {
                answer.extend_from_slice(&chunk);
                if answer.len() > MAX_ANSWER_BYTES {
                    break;
                }
            }
            let answer: serde_json::Value = serde_json::from_slice(&answer).unwrap_or_default();
            match status {
                200 | 201 => reference_in(&answer).ok_or_else(|| {
                    ProviderError::Unavailable(format!(
                        "the provider answered {status} without a usable reference"
                    ))
                }),
                402 | 422 => Err(ProviderError::Declined(reason_in(&answer))),
                _ => Err(ProviderError::Unavailable(format!("the provider answered {status}"))),
            }
        })
    }
}

/// `reference` of a success answer, when the ledger can record it: 1 to 255 characters, no
/// control characters (Postgres text cannot hold NUL).
fn reference_in(answer: &serde_json::Value) -> Option<String> {
    let reference = answer.get("reference")?.as_str()?;
    let usable = !reference.is_empty()
        && reference.chars().count() <= MAX_REFERENCE_CHARS
        && !reference.chars().any(char::is_control);
    usable.then(|| reference.to_owned())
}

/// `reason` of a decline answer, without control characters and cut to a readable length.
fn reason_in(answer: &serde_json::Value) -> String {
    let reason: String = answer
        .get("reason")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_REASON_CHARS)
        .collect();
    if reason.trim().is_empty() { "declined by the payment provider".to_owned() } else { reason }
}

/// The provider `settings` ask for in `mode` (settings are validated at start-up), its
/// calls counted and timed in `metrics`.
pub fn provider(
    settings: &PaymentSettings,
    mode: Mode,
    metrics: &Metrics,
) -> Result<Arc<dyn PaymentProvider>, String> {
    let provider: Box<dyn PaymentProvider> = match settings.effective_provider(mode)? {
        PaymentProviderKind::Mock => Box::new(MockProvider::default()),
        PaymentProviderKind::Http => Box::new(HttpProvider::new(
            settings.url.as_deref().unwrap_or_default(),
            settings.api_key.clone().unwrap_or_else(|| Secret::new("")),
            Duration::from_millis(settings.timeout_ms),
        )?),
    };
    Ok(Arc::new(Metered { provider, metrics: metrics.clone() }))
}

/// A provider whose every charge is counted by outcome and timed
/// (`payment_provider_calls_total`, `payment_provider_call_seconds`).
struct Metered {
    provider: Box<dyn PaymentProvider>,
    metrics: Metrics,
}

impl PaymentProvider for Metered {
    fn name(&self) -> &'static str {
        self.provider.name()
    }

    fn charge<'a>(&'a self, request: &'a ChargeRequest) -> BoxFuture<'a, Result<String, ProviderError>> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let outcome = self.provider.charge(request).await;
            let name = self.provider.name();
            let label = match &outcome {
                Ok(_) => "charged",
                Err(ProviderError::Declined(_)) => "declined",
                Err(ProviderError::Unavailable(_)) => "unavailable",
            };
            self.metrics
                .payment_provider_call_seconds
                .with_label_values(&[name])
                .observe(started.elapsed().as_secs_f64());
            self.metrics.payment_provider_calls.with_label_values(&[name, label]).inc();
            outcome
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChargeError {
    #[error("the payment provider declined: {0}")]
    Declined(String),
    #[error("the payment provider is unavailable; the charge will be retried: {0}")]
    ProviderUnavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for ChargeError {
    fn code(&self) -> &'static str {
        match self {
            Self::Declined(_) => "payment_declined",
            Self::ProviderUnavailable(_) => "payment_provider_unavailable",
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> ErrorKind {
        match self {
            Self::Declined(_) => ErrorKind::Conflict,
            Self::ProviderUnavailable(_) => ErrorKind::Unavailable,
            Self::Store(e) => e.kind(),
        }
    }
}

/// Charges `amount` for a payment session, once per `idempotency_key`.
#[tracing::instrument(skip_all, fields(payment_session_id = %request.payment_session_id))]
pub async fn charge(
    store: &Store,
    provider: &dyn PaymentProvider,
    request: &ChargeRequest,
) -> Result<ChargeRow, ChargeError> {
    let row = store
        .claim_charge(
            &request.idempotency_key,
            PaymentId(request.payment_session_id),
            request.amount,
            provider.name(),
        )
        .await?;
    match row.status {
        ChargeStatus::Pending => {}
        // The provider declined this key before: the answer stands (a new attempt needs a new key).
        ChargeStatus::Failed => {
            return Err(ChargeError::Declined("declined earlier under this idempotency key".into()));
        }
        ChargeStatus::Succeeded => return Ok(row),
    }
    match provider.charge(request).await {
        Ok(reference) => Ok(store.complete_charge(row.id, Ok(&reference)).await?),
        Err(ProviderError::Declined(reason)) => {
            store.complete_charge(row.id, Err(&reason)).await?;
            Err(ChargeError::Declined(reason))
        }
        // Left pending: the retry calls the provider again with the same key.
        Err(ProviderError::Unavailable(reason)) => Err(ChargeError::ProviderUnavailable(reason)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn charges_go_to_the_charges_path_under_the_base_url() {
        let key = || Secret::new("sk_test");
        for (base, expected) in [
            ("http://127.0.0.1:9/", "http://127.0.0.1:9/charges"),
            ("https://pay.example/v1", "https://pay.example/v1/charges"),
            ("https://pay.example/v1/", "https://pay.example/v1/charges"),
        ] {
            let provider = HttpProvider::new(base, key(), Duration::from_secs(1)).expect("provider");
            assert_eq!(provider.charges_url.as_str(), expected);
        }
        assert!(HttpProvider::new("not a url", key(), Duration::from_secs(1)).is_err());
        assert!(HttpProvider::new("mailto:pay@example.com", key(), Duration::from_secs(1)).is_err());
    }

    #[test]
    fn only_a_storable_reference_counts_and_decline_reasons_are_cleaned() {
        assert_eq!(reference_in(&json!({"reference": "ch_1"})).as_deref(), Some("ch_1"));
        for unusable in [
            json!({}),
            json!({"reference": ""}),
            json!({"reference": 7}),
            json!({"reference": "a\u{0}b"}),
            json!({"reference": "x".repeat(256)}),
            json!("ch_1"),
        ] {
            assert_eq!(reference_in(&unusable), None, "{unusable}");
        }
        assert_eq!(reason_in(&json!({"reason": "card_declined"})), "card_declined");
        assert_eq!(reason_in(&json!({"reason": "no\u{0}\nfunds"})), "nofunds");
        assert_eq!(reason_in(&json!({})), "declined by the payment provider");
        assert_eq!(reason_in(&json!({"reason": "y".repeat(1_000)})).len(), MAX_REASON_CHARS);
    }

    #[tokio::test]
    async fn a_provider_nobody_listens_on_is_unavailable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        drop(listener);
        let provider =
            HttpProvider::new(&url, Secret::new("sk_test"), Duration::from_secs(2)).expect("provider");
        let request = ChargeRequest {
            idempotency_key: "confirm:test:1".into(),
            payment_session_id: Uuid::new_v4(),
            amount: 15_000,
        };
        let outcome = provider.charge(&request).await;
        assert!(matches!(outcome, Err(ProviderError::Unavailable(_))), "{outcome:?}");
    }
}
