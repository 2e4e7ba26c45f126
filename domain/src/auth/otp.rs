//! Customer sign-in with phone + one-time code.
//!
//! A code is 6 random digits, stored only as an HMAC under `auth.otp_secret`, valid for
//! `auth.otp_ttl_s` (5 min), and burnt after 5 wrong attempts. Only the newest code of a
//! phone counts. Requests are throttled per phone (one per `otp_resend_interval_s`, at most
//! `otp_max_per_phone_per_hour`) and per client address; the throttle is decided inside the
//! same Postgres transaction that stores the code, so it holds across api processes.

use futures::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use phonenumber::country;
use serde_json::json;
use sha2::Sha256;

use super::session::{self, Session};
use super::tokens::TokenKeys;
use super::{AuthError, Role};
use crate::auth::store::otp::{OtpCheck, OtpLimits};
use crate::ids::{OtpCodeId, UserId};
use crate::metrics::Metrics;
use crate::settings::{AuthSettings, Mode, OtpSenderKind};
use crate::store::Store;

/// Wrong codes after which a code is burnt (also a CHECK on `otp_codes.failed_attempts`).
pub const MAX_FAILED_ATTEMPTS: u32 = 5;

/// One code to deliver.
pub struct OtpMessage<'a> {
    pub phone: &'a str,
    pub code: &'a str,
    pub expires_in_s: u64,
}

/// Delivers codes to phones. `dev` and `log` are for development; production uses a real
/// gateway (the `webhook` sender, or another implementation of this trait).
pub trait OtpSender: Send + Sync {
    /// Delivers the code. Returns whether the response may reveal it (`dev_code`).
    fn send<'a>(&'a self, message: &'a OtpMessage<'a>) -> BoxFuture<'a, Result<bool, AuthError>>;
}

/// Returns the code in the response and logs it.
pub struct DevSender;

impl OtpSender for DevSender {
    fn send<'a>(&'a self, message: &'a OtpMessage<'a>) -> BoxFuture<'a, Result<bool, AuthError>> {
        Box::pin(async move {
            tracing::info!(phone = message.phone, code = message.code, "one-time code (dev sender)");
            Ok(true)
        })
    }
}

/// Logs the code, never returns it.
pub struct LogSender;

impl OtpSender for LogSender {
    fn send<'a>(&'a self, message: &'a OtpMessage<'a>) -> BoxFuture<'a, Result<bool, AuthError>> {
        Box::pin(async move {
            tracing::info!(phone = message.phone, code = message.code, "one-time code (log sender)");
            Ok(false)
        })
    }
}

/// POSTs `{phone, code, expires_in_s}` as JSON to an SMS gateway; any 2xx is delivered.
pub struct WebhookSender {
    client: reqwest::Client,
    url: String,
    bearer: Option<String>,
}

impl OtpSender for WebhookSender {
    fn send<'a>(&'a self, message: &'a OtpMessage<'a>) -> BoxFuture<'a, Result<bool, AuthError>> {
        Box::pin(async move {
            let body =
                json!({"phone": message.phone, "code": message.code, "expires_in_s": message.expires_in_s});
            let mut request = self.client.post(&self.url).json(&body);
            if let Some(bearer) = &self.bearer {
                request = request.bearer_auth(bearer);
            }
            let response = request.send().await.map_err(|e| AuthError::OtpDelivery(e.to_string()))?;
            if !response.status().is_success() {
                return Err(AuthError::OtpDelivery(format!("gateway answered {}", response.status())));
            }
            Ok(false)
        })
    }
}

/// The sender `settings` ask for in `mode` (settings are validated at start-up), its
/// deliveries counted and timed in `metrics`.
pub fn sender(settings: &AuthSettings, mode: Mode, metrics: &Metrics) -> Result<Box<dyn OtpSender>, String> {
    let kind = settings.effective_otp_sender(mode)?;
    let name = match kind {
        OtpSenderKind::Dev => "dev",
        OtpSenderKind::Log => "log",
        OtpSenderKind::Webhook => "webhook",
    };
    Ok(Box::new(Metered { sender: unmetered(settings, kind)?, name, metrics: metrics.clone() }))
}

/// A sender whose every delivery is counted by outcome and timed (`otp_deliveries_total`,
/// `otp_delivery_seconds`).
struct Metered {
    sender: Box<dyn OtpSender>,
    name: &'static str,
    metrics: Metrics,
}

impl OtpSender for Metered {
    fn send<'a>(&'a self, message: &'a OtpMessage<'a>) -> BoxFuture<'a, Result<bool, AuthError>> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let delivered = self.sender.send(message).await;
            let outcome = if delivered.is_ok() { "sent" } else { "failed" };
            self.metrics
                .otp_delivery_seconds
                .with_label_values(&[self.name])
                .observe(started.elapsed().as_secs_f64());
            self.metrics.otp_deliveries.with_label_values(&[self.name, outcome]).inc();
            delivered
        })
    }
}

fn unmetered(settings: &AuthSettings, kind: OtpSenderKind) -> Result<Box<dyn OtpSender>, String> {
    Ok(match kind {
        OtpSenderKind::Dev => Box::new(DevSender),
        OtpSenderKind::Log => Box::new(LogSender),
        OtpSenderKind::Webhook => Box::new(WebhookSender {
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()
                .map_err(|e| e.to_string())?,
            url: settings.otp_webhook_url.clone().unwrap_or_default(),
            bearer: settings.otp_webhook_token.as_ref().map(|t| t.expose().to_owned()),
        }),
    })
}

/// What `POST /api/auth/customer/otp` answers.
#[derive(Debug)]
pub struct CodeSent {
    pub expires_in_s: u64,
    /// The code itself, only with the `dev` sender.
    pub dev_code: Option<String>,
}

/// Issues a code for `phone` and delivers it.
#[tracing::instrument(skip_all)]
pub async fn request_code(
    store: &Store,
    sender: &dyn OtpSender,
    settings: &AuthSettings,
    phone: &str,
    client_addr: &str,
) -> Result<CodeSent, AuthError> {
    let phone = normalize_phone(phone, &allowed_countries(settings))?;
    // A blocked customer is told so, and costs no message.
    if store.phone_blocked(&phone).await? {
        return Err(AuthError::AccountDeactivated);
    }
    let code = random_code()?;
    let limits = OtpLimits {
        ttl_s: settings.otp_ttl_s,
        resend_interval_s: settings.otp_resend_interval_s,
        max_per_phone_per_hour: settings.otp_max_per_phone_per_hour,
        max_per_address_per_hour: settings.otp_max_per_address_per_hour,
    };
    let hash = code_hash(settings, &phone, &code)?;
    let id = store.insert_otp_code(&phone, &hash, client_addr, &limits).await?;
    let message = OtpMessage { phone: &phone, code: &code, expires_in_s: settings.otp_ttl_s };
    match sender.send(&message).await {
        Ok(reveal) => Ok(CodeSent { expires_in_s: settings.otp_ttl_s, dev_code: reveal.then_some(code) }),
        Err(error) => {
            // An undelivered code must not hold the resend throttle against the customer.
            store.delete_otp_code(OtpCodeId(id)).await?;
            Err(error)
        }
    }
}

/// Checks a code and signs the customer in, creating the account on first sign-in.
#[tracing::instrument(skip_all)]
pub async fn verify_code(
    store: &Store,
    keys: &TokenKeys,
    settings: &AuthSettings,
    phone: &str,
    code: &str,
    call_name: Option<&str>,
) -> Result<(Session, crate::auth::store::otp::CustomerAccount), AuthError> {
    let phone = normalize_phone(phone, &allowed_countries(settings))?;
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthError::OtpMalformed);
    }
    // The length counts what was sent (as the OpenAPI schema says); the name is stored trimmed.
    let call_name = match call_name {
        Some(raw) => {
            let name = raw.trim();
            if name.is_empty() || raw.chars().count() > 50 || raw.chars().any(char::is_control) {
                return Err(AuthError::InvalidCallName);
            }
            Some(name)
        }
        None => None,
    };
    let hash = code_hash(settings, &phone, code)?;
    let customer = match store.check_otp_code(&phone, &hash, MAX_FAILED_ATTEMPTS, call_name).await? {
        OtpCheck::NoLiveCode => return Err(AuthError::OtpInvalid),
        OtpCheck::Locked => return Err(AuthError::OtpLocked),
        OtpCheck::Incorrect { attempts_left: 0 } => return Err(AuthError::OtpLocked),
        OtpCheck::Incorrect { attempts_left } => {
            return Err(AuthError::OtpIncorrect { attempts_left });
        }
        OtpCheck::Verified(customer) => customer,
    };
    if customer.deactivated {
        return Err(AuthError::AccountDeactivated);
    }
    let session = session::start(store, keys, settings, UserId::from(customer.id), Role::Customer).await?;
    Ok((session, customer))
}

/// A phone number that can receive our SMS, in E.164 (`+6281234567890`), or why not.
/// Parsed and checked by `phonenumber` (Google's libphonenumber metadata): `+<country>…`, or
/// a national number of the first allowed country (`0812…` for Indonesia); spaces, dashes
/// and parentheses are ignored. Only mobile numbers (or numbers a region cannot tell from
/// fixed lines) of an allowed country (`auth.phone_countries`) pass: every code we send is
/// a paid SMS.
pub fn normalize_phone(raw: &str, allowed: &[country::Id]) -> Result<String, AuthError> {
    if raw.len() > 32
        || raw.chars().any(|c| !(c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')')))
    {
        return Err(AuthError::InvalidPhone);
    }
    let number = phonenumber::parse(allowed.first().copied(), raw).map_err(|_| AuthError::InvalidPhone)?;
    if !number.is_valid() {
        return Err(AuthError::InvalidPhone);
    }
    let texts = matches!(
        number.number_type(&phonenumber::metadata::DATABASE),
        phonenumber::Type::Mobile | phonenumber::Type::FixedLineOrMobile
    );
    if !texts {
        return Err(AuthError::InvalidPhone);
    }
    if !number.country().id().is_some_and(|id| allowed.contains(&id)) {
        return Err(AuthError::PhoneCountryNotSupported);
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// The allowed countries of `auth.phone_countries` (ISO 3166 codes such as `ID`), or the
/// first code that is not one.
pub fn phone_countries(codes: &[String]) -> Result<Vec<country::Id>, String> {
    codes.iter().map(|code| code.trim().to_uppercase().parse().map_err(|_| code.clone())).collect()
}

/// The countries `settings` allows (checked at start, so none is dropped here).
fn allowed_countries(settings: &AuthSettings) -> Vec<country::Id> {
    phone_countries(&settings.phone_countries).unwrap_or_default()
}

fn random_code() -> Result<String, AuthError> {
    // Rejection sampling keeps every code equally likely.
    loop {
        let n = u32::from_le_bytes(super::random_bytes::<4>()?);
        if n < 4_294_000_000 {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

fn code_hash(settings: &AuthSettings, phone: &str, code: &str) -> Result<Vec<u8>, AuthError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(settings.otp_secret.expose().as_bytes())
        .map_err(|e| AuthError::Crypto(e.to_string()))?;
    mac.update(phone.as_bytes());
    mac.update(b":");
    mac.update(code.as_bytes());
    Ok(mac.finalize().into_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::{AuthError, normalize_phone, phone_countries};

    #[test]
    fn phones_normalize_to_e164_or_are_refused() {
        use phonenumber::country::Id;
        let indonesia = [Id::ID];
        assert_eq!(normalize_phone("+62 812-3456-7890", &indonesia).ok().as_deref(), Some("+6281234567890"));
        assert_eq!(normalize_phone("081234567890", &indonesia).ok().as_deref(), Some("+6281234567890"));
        assert_eq!(normalize_phone("(0812) 3456 7890", &indonesia).ok().as_deref(), Some("+6281234567890"));
        for bad in [
            "",
            "+",
            "12345",
            "+0812345678",
            "+62abc4567890",
            "+1234567890123456",
            "0",
            "+62 21 5555 1234", // a Jakarta fixed line: no SMS
            "+62812",
        ] {
            assert!(matches!(normalize_phone(bad, &indonesia), Err(AuthError::InvalidPhone)), "{bad:?}");
        }
        // A real mobile number of a country not allowed: a paid SMS abroad, refused apart.
        assert!(matches!(
            normalize_phone("+44 7400 123456", &indonesia),
            Err(AuthError::PhoneCountryNotSupported)
        ));
        let both = [Id::ID, Id::GB];
        assert_eq!(normalize_phone("+44 7400 123456", &both).ok().as_deref(), Some("+447400123456"));
    }

    #[test]
    fn allowed_countries_are_iso_codes() {
        use phonenumber::country::Id;
        assert_eq!(phone_countries(&["ID".into(), " my ".into()]), Ok(vec![Id::ID, Id::MY]));
        assert_eq!(phone_countries(&["Indonesia".into()]), Err("Indonesia".to_owned()));
    }

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..100 {
            let code = super::random_code().expect("code");
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
