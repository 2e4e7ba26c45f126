//! Push notifications through Firebase Cloud Messaging, HTTP v1 API.
//!
//! Authentication: the service account signs an RS256 JWT assertion (`iss` = client email,
//! `scope` = firebase.messaging, `aud` = token URI, one hour) and exchanges it at the
//! account's `token_uri` for an access token, cached until a minute before it expires.
//! Sending: `POST {base}/v1/projects/{project}/messages:send`. Outcomes, from FCM's
//! documented error codes:
//! - `UNREGISTERED`, `SENDER_ID_MISMATCH`: the token is dead: it is deleted.
//! - `INVALID_ARGUMENT`: deleted only when FCM names the token as the invalid field.
//! - 429 `QUOTA_EXCEEDED`: retried after `Retry-After`.
//! - 500 `INTERNAL`, 503 `UNAVAILABLE`: retried with exponential backoff and jitter.
//! - 401: the access token is refreshed once; a second 401, a 403 that does not name the
//!   token (`PERMISSION_DENIED`: the account may not send for the project) or a token
//!   exchange the OAuth server refuses (4xx: a revoked or wrong key) is an auth failure: our
//!   credentials are at fault, not the device, and every push fails until they are fixed.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::auth::Role;
use crate::clock::now_s;
use crate::ids::UserId;
use crate::settings::PushSettings;
use crate::store::{Store, StoreError};

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// Where pushes go unless `push.fcm_base_url` says otherwise.
pub const DEFAULT_BASE_URL: &str = "https://fcm.googleapis.com";
/// Attempts per device for retryable failures (429, 5xx, network).
const MAX_ATTEMPTS: u32 = 5;

/// One notification for one account's devices.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PushMessage {
    pub title: String,
    pub body: String,
    /// Deep-link data for the app: at least `type` and the session or request id.
    pub data: BTreeMap<String, String>,
    /// Notifications with the same key replace each other on the device (e.g. unread
    /// messages of one session collapse into one).
    pub collapse_key: Option<String>,
    /// Private text (a chat message's start) shown as the body instead of `body` only when
    /// the `push_message_previews` setting is on; lock screens show pushes to anyone.
    #[serde(default)]
    pub preview: Option<String>,
}

/// What happened to one device token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// FCM says the token is dead; it was deleted.
    TokenDeleted,
    /// Gave up after retries, or a permanent error that is not the token's.
    Failed(String),
    /// FCM or its OAuth server refused our credentials.
    AuthFailed(String),
}

/// Sends pushes. `Fcm` in production; `Log` when no credentials are configured.
pub trait PushSender: Send + Sync {
    fn send<'a>(&'a self, token: &'a str, message: &'a PushMessage) -> BoxFuture<'a, Outcome>;
}

/// The sender's verdict on one send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    /// The token is dead and should be deleted.
    DeadToken(String),
    Failed(String),
    /// Our credentials were refused (see the module's notes).
    AuthFailed(String),
}

/// Logs instead of sending (development, no credentials).
pub struct LogSender;

impl PushSender for LogSender {
    fn send<'a>(&'a self, token: &'a str, message: &'a PushMessage) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            // Neither the device token nor the text: tokens and message previews stay out of logs.
            let kind = message.data.get("type").map_or("", String::as_str);
            tracing::info!(kind, token_chars = token.len(), "push (log sender)");
            Outcome::Sent
        })
    }
}

/// The parts of a service-account key file we use.
#[derive(Clone, Deserialize)]
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    pub private_key: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    pub token_uri: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PushSetupError {
    #[error("reading the FCM service account: {0}")]
    Read(String),
    #[error("the FCM service account's private key: {0}")]
    Key(String),
}

/// Sends through FCM HTTP v1.
pub struct FcmSender {
    client: reqwest::Client,
    account: ServiceAccount,
    key: EncodingKey,
    base_url: String,
    token_url: String,
    /// The cached access token and when it stops being used (unix seconds).
    token: Mutex<Option<(String, i64)>>,
}

/// The sender the settings ask for.
pub fn sender(settings: &PushSettings) -> Result<Box<dyn PushSender>, PushSetupError> {
    let Some(path) = &settings.fcm_service_account_file else { return Ok(Box::new(LogSender)) };
    let text = std::fs::read_to_string(path)
        .map_err(|e| PushSetupError::Read(format!("{}: {e}", path.display())))?;
    let account: ServiceAccount =
        serde_json::from_str(&text).map_err(|e| PushSetupError::Read(e.to_string()))?;
    Ok(Box::new(FcmSender::new(account, settings)?))
}

impl FcmSender {
    pub fn new(account: ServiceAccount, settings: &PushSettings) -> Result<Self, PushSetupError> {
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|e| PushSetupError::Key(e.to_string()))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| PushSetupError::Read(e.to_string()))?;
        Ok(Self {
            client,
            key,
            base_url: settings
                .fcm_base_url
                .clone()
                .unwrap_or_else(|| DEFAULT_BASE_URL.into())
                .trim_end_matches('/')
                .to_owned(),
            token_url: settings.fcm_token_url.clone().unwrap_or_else(|| account.token_uri.clone()),
            account,
            token: Mutex::new(None),
        })
    }

    /// A valid access token, from the cache or a fresh exchange.
    async fn access_token(&self, force_refresh: bool) -> Result<String, TokenError> {
        let mut cached = self.token.lock().await;
        let now = now_s();
        if !force_refresh
            && let Some((token, use_until)) = cached.as_ref()
            && *use_until > now
        {
            return Ok(token.clone());
        }
        #[derive(Serialize)]
        struct Assertion<'a> {
            iss: &'a str,
            scope: &'a str,
            aud: &'a str,
            iat: i64,
            exp: i64,
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&self.account.private_key_id);
        let claims = Assertion {
            iss: &self.account.client_email,
            scope: SCOPE,
            aud: &self.token_url,
            iat: now,
            exp: now + 3600,
        };
        let assertion = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| TokenError::Refused(format!("signing the assertion: {e}")))?;
        let response = self
            .client
            .post(&self.token_url)
            .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", &assertion)])
            .send()
            .await
            .map_err(|e| TokenError::Unavailable(format!("token exchange: {e}")))?;
        let status = response.status();
        if status.is_client_error() {
            return Err(TokenError::Refused(format!("token exchange answered {status}")));
        }
        if !status.is_success() {
            return Err(TokenError::Unavailable(format!("token exchange answered {status}")));
        }
        #[derive(Deserialize)]
        struct Granted {
            access_token: String,
            expires_in: i64,
        }
        let granted: Granted = response
            .json()
            .await
            .map_err(|e| TokenError::Unavailable(format!("token exchange body: {e}")))?;
        // Stop using it a minute early, so a request never carries a token about to expire.
        *cached = Some((granted.access_token.clone(), now + granted.expires_in - 60));
        Ok(granted.access_token)
    }

    fn payload(token: &str, message: &PushMessage) -> Value {
        let mut android = json!({ "priority": "high" });
        let mut apns_headers = json!({ "apns-priority": "10" });
        if let Some(key) = &message.collapse_key {
            android["collapse_key"] = json!(key);
            apns_headers["apns-collapse-id"] = json!(key);
        }
        json!({
            "message": {
                "token": token,
                "data": message.data,
                "notification": { "title": message.title, "body": message.body },
                "android": android,
                "apns": { "headers": apns_headers },
            }
        })
    }

    async fn send_once(
        &self,
        token: &str,
        message: &PushMessage,
        access: &str,
    ) -> Result<reqwest::Response, String> {
        let url = format!("{}/v1/projects/{}/messages:send", self.base_url, self.account.project_id);
        self.client
            .post(url)
            .bearer_auth(access)
            .json(&Self::payload(token, message))
            .send()
            .await
            .map_err(|e| e.to_string())
    }
}

/// Why no access token could be had.
enum TokenError {
    /// The OAuth server refused the assertion (4xx), or it could not be signed.
    Refused(String),
    /// The exchange could not be made or answered 5xx: worth retrying.
    Unavailable(String),
}

/// FCM's error body: `{"error": {"code", "message", "status", "details": [...]}}`.
fn fcm_error(body: &Value) -> (Option<String>, bool) {
    let details = body["error"]["details"].as_array().cloned().unwrap_or_default();
    let code = details.iter().find_map(|d| d["errorCode"].as_str().map(str::to_owned));
    let token_is_the_problem =
        details.iter().any(|d| {
            d["fieldViolations"]
                .as_array()
                .is_some_and(|v| v.iter().any(|f| f["field"].as_str() == Some("message.token")))
        }) || body["error"]["message"].as_str().is_some_and(|m| m.contains("registration token"));
    (code, token_is_the_problem)
}

/// Exponential backoff with full jitter: 0.5 s, 1 s, 2 s, ... capped at 8 s.
fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = (500u64 << attempt.min(4)).min(8_000);
    let mut random = [0u8; 2];
    // Without randomness the delay is just the ceiling's lower half: still a valid backoff.
    let _ = getrandom::fill(&mut random);
    let jitter = u64::from(u16::from_le_bytes(random));
    Duration::from_millis(ceiling_ms / 2 + jitter % (ceiling_ms / 2 + 1))
}

impl PushSender for FcmSender {
    fn send<'a>(&'a self, token: &'a str, message: &'a PushMessage) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let mut refreshed = false;
            let mut last_error = String::new();
            for attempt in 0..MAX_ATTEMPTS {
                let access = match self.access_token(false).await {
                    Ok(access) => access,
                    // Retrying a refused key only repeats the refusal.
                    Err(TokenError::Refused(error)) => return Outcome::AuthFailed(error),
                    Err(TokenError::Unavailable(error)) => {
                        last_error = error;
                        tokio::time::sleep(backoff(attempt)).await;
                        continue;
                    }
                };
                let response = match self.send_once(token, message, &access).await {
                    Ok(response) => response,
                    Err(error) => {
                        last_error = error;
                        tokio::time::sleep(backoff(attempt)).await;
                        continue;
                    }
                };
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if (200..300).contains(&status) {
                    return Outcome::Sent;
                }
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let (code, token_problem) = fcm_error(&body);
                last_error = format!("{status} {}", code.clone().unwrap_or_default());
                match (status, code.as_deref()) {
                    (_, Some("UNREGISTERED" | "SENDER_ID_MISMATCH")) => {
                        return Outcome::DeadToken(last_error);
                    }
                    (400, _) if token_problem => return Outcome::DeadToken(last_error),
                    (401, _) if !refreshed => {
                        refreshed = true;
                        match self.access_token(true).await {
                            Ok(_) => {}
                            Err(TokenError::Refused(error)) => return Outcome::AuthFailed(error),
                            Err(TokenError::Unavailable(error)) => last_error = error,
                        }
                    }
                    (401 | 403, _) => return Outcome::AuthFailed(last_error),
                    (429, _) => {
                        tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(1).min(60))).await
                    }
                    (500 | 502 | 503 | 504, _) => {
                        let wait =
                            retry_after.map_or_else(|| backoff(attempt), |s| Duration::from_secs(s.min(60)));
                        tokio::time::sleep(wait).await;
                    }
                    _ => return Outcome::Failed(last_error),
                }
            }
            Outcome::Failed(format!("gave up after {MAX_ATTEMPTS} attempts: {last_error}"))
        })
    }
}

/// Sends `message` to every device of the account, deleting the tokens FCM says are dead.
pub async fn send_to_account(
    store: &Store,
    sender: &dyn PushSender,
    role: Role,
    account: UserId,
    message: &PushMessage,
) -> Result<Vec<Delivery>, StoreError> {
    let tokens = store.device_tokens(role, account).await?;
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    let previewed;
    let message = match &message.preview {
        Some(preview) if crate::app_config::get(store, crate::app_config::PUSH_MESSAGE_PREVIEWS).await? => {
            previewed = PushMessage { body: preview.clone(), preview: None, ..message.clone() };
            &previewed
        }
        _ => message,
    };
    let mut deliveries = Vec::new();
    for token in tokens {
        let delivery = match sender.send(&token, message).await {
            Outcome::Sent => Delivery::Sent,
            Outcome::DeadToken(reason) => {
                tracing::info!(reason, "FCM token is dead; deleting it");
                store.delete_device(&token).await?;
                Delivery::TokenDeleted
            }
            Outcome::Failed(reason) => {
                tracing::warn!(reason, "push failed");
                Delivery::Failed(reason)
            }
            Outcome::AuthFailed(reason) => {
                tracing::error!(reason, "FCM refused our credentials; the push was not sent");
                Delivery::AuthFailed(reason)
            }
        };
        deliveries.push(delivery);
    }
    Ok(deliveries)
}
