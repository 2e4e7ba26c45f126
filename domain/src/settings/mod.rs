//! Process settings: one struct, every field documented, filled from defaults, an optional
//! TOML file and `BESTIE__SECTION__KEY` environment variables (loading lives in the `bestie`
//! crate; nothing else reads the environment, so tests just set fields).
//!
//! These are the settings a process needs to start. The marketplace knobs operators change
//! at run time (`price_tiers`, timeouts, caps) are not here: they live in the `app_config`
//! table, see [`crate::app_config`].

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

mod secrets;

pub use secrets::{ConnectionUrl, Secret};

/// Everything a `bestie` process reads at start-up.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `development` allows conveniences such as returning OTP codes in responses;
    /// `production` refuses to start with them.
    pub mode: Mode,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub api: ApiSettings,
    pub auth: AuthSettings,
    pub hub: HubSettings,
    pub presence: PresenceSettings,
    pub push: PushSettings,
    pub payments: PaymentSettings,
    pub worker: WorkerSettings,
    pub seed: SeedSettings,
    pub log: LogSettings,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Development,
    Production,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// Postgres URL. The database is created when it does not exist. Printed and logged with
    /// its password hidden.
    pub url: ConnectionUrl,
    /// Upper bound of the connection pool of one process; Postgres' own `max_connections`
    /// (100 by default) is shared by every process.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection before failing with a retryable error.
    pub acquire_timeout_ms: u64,
    /// `serve` applies pending migrations at start unless this is false.
    pub migrate_on_start: bool,
    /// The marketplace's time zone (an IANA name), every Postgres session's `TimeZone`: the
    /// calendar day of the daily early-end cap, and what a date (`YYYY-MM-DD`) in the control
    /// center's filters means. An unknown name stops the process at start.
    pub time_zone: String,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: ConnectionUrl::new("postgres://postgres@127.0.0.1:5432/bestie"),
            max_connections: 20,
            acquire_timeout_ms: 3_000,
            migrate_on_start: true,
            time_zone: "Asia/Jakarta".to_owned(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// Redis URL (`redis://`, `rediss://`, `redis-cluster://`, `redis-sentinel://`). Printed
    /// and logged with its password hidden.
    pub url: ConnectionUrl,
    /// Every key this deployment writes starts with `{prefix}:`, so several deployments or
    /// test runs can share one Redis.
    pub prefix: String,
    /// Connections in the command pool (blocking stream reads get their own connections).
    pub pool_size: usize,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self { url: ConnectionUrl::new("redis://127.0.0.1:6379"), prefix: "bestie".into(), pool_size: 4 }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    /// Listener for the apps: `/api/...` and `/ws`. Port 0 picks a free port.
    pub public_addr: SocketAddr,
    /// Listener for the control center and `/metrics`; keep it off the internet.
    pub internal_addr: SocketAddr,
    /// How long a graceful shutdown waits for requests, sockets and jobs before exiting anyway.
    /// Kept under 10 s so an orchestrator's default kill grace period is never reached.
    pub shutdown_timeout_ms: u64,
    /// Web origins of the control center allowed by CORS on the internal listener (exact
    /// `scheme://host[:port]`); empty allows none.
    pub cc_origins: Vec<String>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            public_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            internal_addr: SocketAddr::from(([127, 0, 0, 1], 8081)),
            shutdown_timeout_ms: 8_000,
            cc_origins: vec!["http://localhost:5173".to_owned()],
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// How customers receive their one-time code: `dev` returns it in the response as
    /// `dev_code` (and logs it), `log` only logs it, `webhook` POSTs it to `otp_webhook_url`
    /// (an SMS gateway). Unset means `dev` in development; production requires `webhook`.
    pub otp_sender: Option<OtpSenderKind>,
    /// Where the `webhook` sender POSTs `{phone, code, expires_in_s}`.
    pub otp_webhook_url: Option<String>,
    /// Sent as `Authorization: Bearer` to the webhook, when set.
    pub otp_webhook_token: Option<Secret>,
    /// HMAC key under which one-time codes are stored; a leaked table then reveals nothing.
    pub otp_secret: Secret,
    /// How long a one-time code stays valid.
    pub otp_ttl_s: u64,
    /// Minimum time between two codes for one phone.
    pub otp_resend_interval_s: u64,
    /// Codes one phone may request per hour.
    pub otp_max_per_phone_per_hour: u32,
    /// Codes one client address may request per hour, whatever the phone.
    pub otp_max_per_address_per_hour: u32,
    /// Countries (ISO 3166 codes) whose mobile numbers may sign in; the first is the one a
    /// number without `+<country>` belongs to. Every code is a paid SMS.
    pub phone_countries: Vec<String>,
    /// Key id (`kid` header) of the key that signs new access tokens.
    pub jwt_kid: String,
    /// HS256 key of `jwt_kid`, at least 32 bytes.
    pub jwt_secret: Secret,
    /// A retired key still accepted for verification while its tokens live out their
    /// lifetime: rotate by moving the current key here and setting a new one.
    pub jwt_previous_kid: Option<String>,
    pub jwt_previous_secret: Option<Secret>,
    /// Lifetime of access tokens (JWT).
    pub access_token_ttl_s: u64,
    /// Lifetime of refresh tokens; each use replaces the token with a new one.
    pub refresh_token_ttl_s: u64,
    /// Longest a sign-in lasts however often its refresh token rotates: then the app signs
    /// in again.
    pub refresh_token_max_lifetime_s: u64,
    /// Per client address on the sign-in routes: requests allowed in a burst ...
    pub rate_limit_burst: u32,
    /// ... and how many more each minute after it.
    pub rate_limit_per_minute: u32,
    /// Where the sign-in limits and the code throttle read the client's address: the TCP
    /// peer, or (behind a proxy, and only when clients cannot reach us but through it) a
    /// header that proxy writes. docs/CONFIGURATION.md, "Behind a proxy".
    pub client_ip_source: ClientIpSource,
    /// Failed password sign-ins one account may have within `sign_in_failure_window_s` ...
    pub max_sign_in_failures: u32,
    /// ... after which its sign-ins are refused (429) until the window has passed.
    pub sign_in_failure_window_s: u64,
}

/// Where a client's address is read from (the `client-ip` crate reads the headers).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientIpSource {
    /// The TCP peer: no proxy in front.
    #[default]
    Peer,
    /// The rightmost `X-Forwarded-For` address: the one our proxy appended (nginx, HAProxy,
    /// a cloud load balancer). Anything left of it was written by the client.
    RightmostXForwardedFor,
    /// `X-Real-IP`, which the proxy overwrites (nginx `proxy_set_header X-Real-IP
    /// $remote_addr`; with `real_ip_recursive` behind a chain of proxies).
    XRealIp,
    /// `CF-Connecting-IP` (Cloudflare).
    CfConnectingIp,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OtpSenderKind {
    Dev,
    Log,
    Webhook,
}

/// Development-only keys; production mode refuses to start with them.
pub const DEV_JWT_SECRET: &str = "development-only-jwt-secret-change-me-0123456789";
pub const DEV_OTP_SECRET: &str = "development-only-otp-secret-change-me-0123456789";

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            otp_sender: None,
            otp_webhook_url: None,
            otp_webhook_token: None,
            otp_secret: Secret::new(DEV_OTP_SECRET),
            otp_ttl_s: 300,
            otp_resend_interval_s: 30,
            otp_max_per_phone_per_hour: 5,
            otp_max_per_address_per_hour: 20,
            phone_countries: vec!["ID".to_owned()],
            jwt_kid: "dev-1".into(),
            jwt_secret: Secret::new(DEV_JWT_SECRET),
            jwt_previous_kid: None,
            jwt_previous_secret: None,
            access_token_ttl_s: 900,
            refresh_token_ttl_s: 30 * 24 * 3600,
            refresh_token_max_lifetime_s: 90 * 24 * 3600,
            rate_limit_burst: 10,
            rate_limit_per_minute: 30,
            client_ip_source: ClientIpSource::Peer,
            max_sign_in_failures: 10,
            sign_in_failure_window_s: 900,
        }
    }
}

impl AuthSettings {
    /// The sender in force for `mode`, or why there is none.
    pub fn effective_otp_sender(&self, mode: Mode) -> Result<OtpSenderKind, String> {
        match (mode, self.otp_sender) {
            (Mode::Development, None) => Ok(OtpSenderKind::Dev),
            (Mode::Production, None) => Err(
                "production mode needs BESTIE__AUTH__OTP_SENDER=webhook and BESTIE__AUTH__OTP_WEBHOOK_URL"
                    .into(),
            ),
            (Mode::Production, Some(kind @ (OtpSenderKind::Dev | OtpSenderKind::Log))) => Err(format!(
                "production mode refuses BESTIE__AUTH__OTP_SENDER={kind:?} (codes would reach responses or logs); use webhook"
            )),
            (_, Some(OtpSenderKind::Webhook)) if self.otp_webhook_url.is_none() => {
                Err("BESTIE__AUTH__OTP_SENDER=webhook needs BESTIE__AUTH__OTP_WEBHOOK_URL".into())
            }
            (_, Some(kind)) => Ok(kind),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubSettings {
    /// Sockets one hub process accepts; the rest are refused with 503 before the upgrade.
    /// Each process may hold at most 20,000 open files on the reference machine.
    pub max_connections: usize,
    /// Sockets one user may hold on one hub process; more are refused with 429
    /// `too_many_sockets` before the upgrade (a phone and a tablet, plus a reconnect that
    /// overlaps a socket the network has not closed yet).
    pub max_sockets_per_user: usize,
    /// Largest text frame accepted from a client, in bytes.
    pub max_frame_bytes: usize,
    /// Frames queued for one socket; a client that falls this far behind is closed (1013).
    pub send_queue_frames: usize,
    /// Commands a socket may send per second, after a burst of `command_burst`.
    pub commands_per_second: u32,
    pub command_burst: u32,
    /// The server pings every socket this often ...
    pub ping_interval_s: u64,
    /// ... and closes one that sent nothing (not even a pong) for this long (4008): a phone
    /// that suspended the app or lost its network without closing TCP stops counting as
    /// online within this time (docs/PROTOCOL.md, section 7).
    pub idle_timeout_s: u64,
    /// An event that needs the person (it comes with a push) and reached an open socket is
    /// pushed anyway when no device acknowledged it within this long (a pong to a ping
    /// written after it): the socket of a suspended phone lingers until `idle_timeout_s`.
    pub delivery_grace_ms: u64,
    /// Events kept per user for resuming: about this many (MAXLEN ~) ...
    pub stream_maxlen: u64,
    /// ... for at most this long after the user's last event.
    pub stream_ttl_s: u64,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            max_connections: 15_000,
            max_sockets_per_user: 5,
            max_frame_bytes: 64 * 1024,
            send_queue_frames: 256,
            commands_per_second: 20,
            command_burst: 40,
            ping_interval_s: 3,
            idle_timeout_s: 9,
            delivery_grace_ms: 5_000,
            stream_maxlen: 1_000,
            stream_ttl_s: 6 * 3600,
        }
    }
}

/// Push notifications through Firebase Cloud Messaging (HTTP v1).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushSettings {
    /// The service-account JSON key file of the Firebase project. Unset: pushes are only
    /// logged (development).
    pub fcm_service_account_file: Option<std::path::PathBuf>,
    /// FCM's base URL; `https://fcm.googleapis.com` when unset.
    pub fcm_base_url: Option<String>,
    /// Overrides the service account's `token_uri` (the OAuth token endpoint).
    pub fcm_token_url: Option<String>,
}

/// Where charges go: the payment provider.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentSettings {
    /// `mock` succeeds at once in-process and moves no money (development, tests); `http`
    /// calls a provider adapter over HTTP (the contract: docs/API.md, "Payment provider").
    /// Unset means `mock` in development; production requires `http`.
    pub provider: Option<PaymentProviderKind>,
    /// Base URL of the provider adapter for `http`; charges are POSTed to `{url}/charges`.
    pub url: Option<String>,
    /// Sent as `Authorization: Bearer` to the provider; required with `http`.
    pub api_key: Option<Secret>,
    /// How long one charge call may take (connect, send, answer) before it counts as the
    /// provider being unavailable: the charge stays pending and a retry completes it. Kept
    /// under `api.shutdown_timeout_ms`, so a confirm in flight finishes during a graceful stop.
    pub timeout_ms: u64,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self { provider: None, url: None, api_key: None, timeout_ms: 5_000 }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PaymentProviderKind {
    Mock,
    Http,
}

impl PaymentSettings {
    /// The provider in force for `mode`, or why there is none. As with the code senders,
    /// production refuses the development-only choice (`mock` would confirm payments
    /// without taking any money) and must name its provider.
    pub fn effective_provider(&self, mode: Mode) -> Result<PaymentProviderKind, String> {
        match (mode, self.provider) {
            (Mode::Development, None) => Ok(PaymentProviderKind::Mock),
            (Mode::Production, None) => Err(
                "production mode needs BESTIE__PAYMENTS__PROVIDER=http, BESTIE__PAYMENTS__URL and BESTIE__PAYMENTS__API_KEY"
                    .into(),
            ),
            (Mode::Production, Some(PaymentProviderKind::Mock)) => Err(
                "production mode refuses BESTIE__PAYMENTS__PROVIDER=mock (payments would be confirmed without charging); use http"
                    .into(),
            ),
            (_, Some(PaymentProviderKind::Http)) => {
                let url = self.url.as_deref().and_then(|url| reqwest::Url::parse(url).ok());
                if !url.is_some_and(|url| matches!(url.scheme(), "http" | "https")) {
                    return Err(
                        "BESTIE__PAYMENTS__PROVIDER=http needs BESTIE__PAYMENTS__URL, an http(s) URL".into()
                    );
                }
                if self.api_key.as_ref().is_none_or(|key| key.expose().is_empty()) {
                    return Err("BESTIE__PAYMENTS__PROVIDER=http needs BESTIE__PAYMENTS__API_KEY".into());
                }
                if self.timeout_ms == 0 {
                    return Err("payments.timeout_ms must be above 0".into());
                }
                Ok(PaymentProviderKind::Http)
            }
            (_, Some(kind)) => Ok(kind),
        }
    }
}

/// Presence leases: how fast a crashed process's sockets stop counting as connected.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceSettings {
    /// A hub process renews its lease this often ...
    pub heartbeat_ms: u64,
    /// ... and is taken for dead (its users offline) once the lease is this old.
    pub lease_ms: u64,
    /// How often every process looks for dead hub processes.
    pub reap_interval_ms: u64,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        Self { heartbeat_ms: 3_000, lease_ms: 10_000, reap_interval_ms: 2_000 }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerSettings {
    /// Job workers register under `{name}-{random suffix}`: the job backend refuses a name
    /// that a crashed process held until its lease runs out.
    pub name: String,
    /// How often the job backend is polled for due jobs, in milliseconds.
    pub poll_interval_ms: u64,
    /// Period of the repair sweep (expired payments, pending charges, and whatever a lost
    /// timer left open), in seconds. `payment_sweep_interval_s`, its name until 2026-12, is
    /// still read.
    #[serde(alias = "payment_sweep_interval_s")]
    pub repair_interval_s: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self { name: "bestie-worker".into(), poll_interval_ms: 100, repair_interval_s: 60 }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeedSettings {
    /// The control-center admin that `bestie seed` creates (or leaves alone if it exists).
    pub admin_email: String,
    pub admin_password: Secret,
    /// Demo mitras created by `bestie seed` (`mitra1@bestie.local` ...), all with
    /// `demo_mitra_password`. Unset: 3 in development, none in production (which refuses
    /// any: they would sign in with a documented password).
    pub demo_mitras: Option<u32>,
    pub demo_mitra_password: Secret,
}

/// Demo mitras `bestie seed` creates in development when `seed.demo_mitras` is unset.
pub const DEV_DEMO_MITRAS: u32 = 3;

impl Default for SeedSettings {
    fn default() -> Self {
        Self {
            admin_email: "admin@bestie.local".into(),
            admin_password: Secret::new("change-me-admin"),
            demo_mitras: None,
            demo_mitra_password: Secret::new("change-me-mitra"),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `tracing` filter directive, e.g. `info,domain=debug`.
    pub filter: String,
    /// `json` for machines (one object per line, with the spans' fields such as
    /// `request_id` and `session_id`), `pretty` for people. Unset: `json` in production
    /// mode, `pretty` in development.
    pub format: Option<LogFormat>,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { filter: "info,sqlx::postgres::notice=warn".into(), format: None }
    }
}

impl Settings {
    /// These settings with every choice left to the mode filled in as it is made: the code
    /// sender, the payment provider, the log format, the FCM endpoint and the demo mitras.
    /// What `bestie config` prints, so an operator sees what is in force, not `null`.
    pub fn effective(&self) -> Settings {
        let mut effective = self.clone();
        effective.auth.otp_sender = self.auth.effective_otp_sender(self.mode).ok().or(self.auth.otp_sender);
        effective.payments.provider =
            self.payments.effective_provider(self.mode).ok().or(self.payments.provider);
        effective.log.format = Some(self.log.format_in(self.mode));
        effective.push.fcm_base_url =
            Some(self.push.fcm_base_url.clone().unwrap_or_else(|| crate::push::DEFAULT_BASE_URL.to_owned()));
        effective.seed.demo_mitras = Some(self.seed.demo_mitras.unwrap_or(match self.mode {
            Mode::Production => 0,
            Mode::Development => DEV_DEMO_MITRAS,
        }));
        effective
    }
}

impl LogSettings {
    /// The format in force in `mode`.
    pub fn format_in(&self, mode: Mode) -> LogFormat {
        self.format.unwrap_or(match mode {
            Mode::Production => LogFormat::Json,
            Mode::Development => LogFormat::Pretty,
        })
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_urls_show_everything_but_the_password() {
        let cases = [
            ("postgres://postgres@127.0.0.1:5432/bestie", "postgres://postgres@127.0.0.1:5432/bestie"),
            (
                "postgres://app:hunter2@db:5432/bestie?sslmode=require",
                "postgres://app:[redacted]@db:5432/bestie?sslmode=require",
            ),
            (
                "postgres://app@db/bestie?password=hunter2&sslmode=require",
                "postgres://app@db/bestie?password=[redacted]&sslmode=require",
            ),
            ("redis://:hunter2@cache:6379/0", "redis://:[redacted]@cache:6379/0"),
            ("rediss://user:p@ss:w0rd@cache:6380", "rediss://user:[redacted]@cache:6380"),
            (
                "redis-sentinel://:hunter2@s1:26379?node=s2:26379&sentinelPassword=hunter2",
                "redis-sentinel://:[redacted]@s1:26379?node=s2:26379&sentinelPassword=[redacted]",
            ),
            (
                "redis-cluster://127.0.0.1:7101?node=127.0.0.1:7102",
                "redis-cluster://127.0.0.1:7101?node=127.0.0.1:7102",
            ),
            ("hunter2", "[redacted]"),
        ];
        for (url, shown) in cases {
            let url = ConnectionUrl::new(url);
            assert_eq!(url.redacted(), shown);
            assert_eq!(format!("{url:?}"), shown);
            assert_eq!(serde_json::to_value(&url).expect("serializes"), shown);
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_serialized_output() {
        let mut settings = Settings::default();
        settings.database.url = ConnectionUrl::new("postgres://app:hunter2@db/bestie");
        settings.seed.admin_password = Secret::new("hunter3");
        settings.payments.api_key = Some(Secret::new("hunter4"));
        let debug = format!("{settings:?}");
        let json = serde_json::to_string(&settings).expect("settings serialize");
        for shown in [debug, json] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("hunter3"), "{shown}");
            assert!(!shown.contains("hunter4"), "{shown}");
            assert!(shown.contains("[redacted]"));
        }
    }

    #[test]
    fn production_refuses_the_mock_payment_provider_and_http_needs_its_url_and_key() {
        let mut payments = PaymentSettings::default();
        assert_eq!(payments.effective_provider(Mode::Development), Ok(PaymentProviderKind::Mock));
        assert!(payments.effective_provider(Mode::Production).is_err());
        payments.provider = Some(PaymentProviderKind::Mock);
        assert!(payments.effective_provider(Mode::Production).is_err_and(|e| e.contains("refuses")));
        payments.provider = Some(PaymentProviderKind::Http);
        assert!(payments.effective_provider(Mode::Development).is_err_and(|e| e.contains("URL")));
        payments.url = Some("ftp://pay.example".into());
        assert!(payments.effective_provider(Mode::Development).is_err_and(|e| e.contains("URL")));
        payments.url = Some("https://pay.example/v1".into());
        assert!(payments.effective_provider(Mode::Production).is_err_and(|e| e.contains("API_KEY")));
        payments.api_key = Some(Secret::new("sk_live_1"));
        assert_eq!(payments.effective_provider(Mode::Production), Ok(PaymentProviderKind::Http));
        payments.timeout_ms = 0;
        assert!(payments.effective_provider(Mode::Production).is_err());
    }
}
