//! The marketplace settings operators change at run time, stored in the `app_config` table.
//!
//! [`KEYS`] is the single registry: every key with its type, default, label and explanation.
//! The migration seeds exactly these defaults (a test compares them), the control center
//! renders the labels, and updates are validated against the types here. The flows read a
//! key through its typed [`Key`] constant ([`get`]`(store, MAX_CUSTOMERS_PER_MITRA)` is an
//! `i64`): a key missing from the registry, or read as the wrong type, does not compile.

pub mod store;
mod views;

pub use views::{ChangeView, ChangedBy, ConfigChanges, ConfigKeys, ConfigType, KeyView, PublicConfig};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The type of a key's value, with its validation rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// A whole number within `min..=max`.
    Integer {
        min: i64,
        max: i64,
    },
    Boolean,
    /// One of the listed strings.
    Enum {
        values: &'static [&'static str],
    },
    /// A non-empty list of [`PriceTier`] with unique ids.
    PriceTiers,
}

/// One configuration key.
#[derive(Clone, Copy, Debug)]
pub struct KeySpec {
    pub key: &'static str,
    pub value_type: ValueType,
    /// Human label for the control center.
    pub label: &'static str,
    /// What changing it does, for the control center.
    pub explanation: &'static str,
    /// The label in Indonesian, the console's default language.
    pub label_id: &'static str,
    /// The explanation in Indonesian.
    pub explanation_id: &'static str,
    /// Whether apps may read it through `GET /api/shared/config`.
    pub public: bool,
    default: fn() -> Value,
}

impl KeySpec {
    pub fn default_value(&self) -> Value {
        (self.default)()
    }

    /// Checks a proposed value against this key's type; returns the value to store.
    pub fn validate(&self, value: &Value) -> Result<Value, InvalidValue> {
        let invalid = |reason: String| InvalidValue { key: self.key, reason };
        match self.value_type {
            ValueType::Integer { min, max } => match value.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(json!(n)),
                Some(n) => Err(invalid(format!("{n} is outside {min}..={max}"))),
                None => Err(invalid("expected a whole number".into())),
            },
            ValueType::Boolean => match value {
                Value::Bool(b) => Ok(json!(b)),
                _ => Err(invalid("expected true or false".into())),
            },
            ValueType::Enum { values } => match value.as_str() {
                Some(s) if values.contains(&s) => Ok(json!(s)),
                _ => Err(invalid(format!("expected one of {}", values.join(", ")))),
            },
            ValueType::PriceTiers => {
                let tiers: Vec<PriceTier> = serde_json::from_value(value.clone()).map_err(|e| {
                    invalid(format!("expected a list of {{id, duration_minutes, price}}: {e}"))
                })?;
                validate_price_tiers(&tiers).map_err(invalid)?;
                Ok(serde_json::to_value(tiers).map_err(|e| invalid(e.to_string()))?)
            }
        }
    }
}

/// A proposed value does not fit its key.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {key}: {reason}")]
pub struct InvalidValue {
    pub key: &'static str,
    pub reason: String,
}

impl crate::error::DomainError for InvalidValue {
    fn code(&self) -> &'static str {
        "invalid_config_value"
    }

    fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Invalid
    }
}

/// One purchasable chat length. Amounts are whole rupiah.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceTier {
    #[schema(min_length = 1, max_length = 32)]
    pub id: String,
    #[schema(minimum = 1, maximum = 240)]
    pub duration_minutes: i32,
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub price: i64,
}

fn validate_price_tiers(tiers: &[PriceTier]) -> Result<(), String> {
    if tiers.is_empty() {
        return Err("at least one tier is required".into());
    }
    let mut ids = std::collections::HashSet::new();
    for tier in tiers {
        if tier.id.is_empty() || tier.id.len() > 32 {
            return Err("tier id must be 1..=32 characters".into());
        }
        if !ids.insert(tier.id.as_str()) {
            return Err(format!("duplicate tier id {}", tier.id));
        }
        if !(1..=240).contains(&tier.duration_minutes) {
            return Err(format!("tier {}: duration_minutes must be 1..=240", tier.id));
        }
        if !(0..=100_000_000).contains(&tier.price) {
            return Err(format!("tier {}: price must be 0..=100000000 IDR", tier.id));
        }
    }
    Ok(())
}

const SECONDS_IN_DAY: i64 = 86_400;

/// Every key, in the order the control center shows them.
pub const KEYS: &[KeySpec] = &[
    KeySpec {
        key: "price_tiers",
        value_type: ValueType::PriceTiers,
        label: "Price tiers",
        explanation: "Chat lengths customers can buy, each with its price in rupiah. The 1-minute tier is for testing.",
        label_id: "Paket harga",
        explanation_id: "Durasi chat yang bisa dibeli pelanggan, masing-masing dengan harganya dalam rupiah. Paket 1 menit untuk pengujian.",
        public: true,
        default: || {
            json!([
                {"id": "test-1m", "duration_minutes": 1, "price": 1000},
                {"id": "15m", "duration_minutes": 15, "price": 15000},
                {"id": "30m", "duration_minutes": 30, "price": 25000},
                {"id": "60m", "duration_minutes": 60, "price": 45000}
            ])
        },
    },
    KeySpec {
        key: "free_trial_enabled",
        value_type: ValueType::Boolean,
        label: "Free trial enabled",
        explanation: "Offer one free chat to customers who have never made a transaction.",
        label_id: "Uji coba gratis aktif",
        explanation_id: "Tawarkan satu chat gratis kepada pelanggan yang belum pernah bertransaksi.",
        public: true,
        default: || json!(true),
    },
    KeySpec {
        key: "free_trial_duration_minutes",
        value_type: ValueType::Integer { min: 1, max: 240 },
        label: "Free trial length (minutes)",
        explanation: "How long the free trial chat lasts.",
        label_id: "Durasi uji coba gratis (menit)",
        explanation_id: "Berapa lama chat uji coba gratis berlangsung.",
        public: true,
        default: || json!(15),
    },
    KeySpec {
        key: "max_customers_per_mitra",
        value_type: ValueType::Integer { min: 1, max: 20 },
        label: "Customers per bestie at once",
        explanation: "A bestie with this many active sessions receives no new requests until one ends.",
        label_id: "Pelanggan per bestie sekaligus",
        explanation_id: "Bestie dengan sesi aktif sebanyak ini tidak menerima permintaan baru sampai salah satunya berakhir.",
        public: false,
        default: || json!(3),
    },
    KeySpec {
        key: "pairing_blast_timeout_seconds",
        value_type: ValueType::Integer { min: 10, max: 600 },
        label: "Search window (seconds)",
        explanation: "How long a new chat request waits for any bestie to accept before it fails with no_mitra_available.",
        label_id: "Waktu pencarian (detik)",
        explanation_id: "Berapa lama permintaan chat baru menunggu bestie mana pun menerima sebelum gagal dengan no_mitra_available.",
        public: true,
        default: || json!(60),
    },
    KeySpec {
        key: "payment_session_timeout_minutes",
        value_type: ValueType::Integer { min: 1, max: 1440 },
        label: "Payment expiry (minutes)",
        explanation: "A payment not confirmed, or confirmed but not used for a chat, within this time expires.",
        label_id: "Batas waktu pembayaran (menit)",
        explanation_id: "Pembayaran yang tidak dikonfirmasi, atau dikonfirmasi tetapi tidak dipakai untuk chat, dalam waktu ini akan kedaluwarsa.",
        public: false,
        default: || json!(20),
    },
    KeySpec {
        key: "returning_chat_confirmation_timeout_seconds",
        value_type: ValueType::Integer { min: 5, max: 300 },
        label: "\"Curhat lagi\" confirmation window (seconds)",
        explanation: "How long a bestie has to accept a returning customer's request before it is rejected automatically.",
        label_id: "Waktu konfirmasi \"Curhat lagi\" (detik)",
        explanation_id: "Berapa lama bestie punya waktu untuk menerima permintaan pelanggan lama sebelum otomatis ditolak.",
        public: true,
        default: || json!(20),
    },
    KeySpec {
        key: "extension_timeout_seconds",
        value_type: ValueType::Integer { min: 5, max: 300 },
        label: "Extension confirmation window (seconds)",
        explanation: "How long a bestie has to answer an extension request before the default action applies.",
        label_id: "Waktu konfirmasi perpanjangan (detik)",
        explanation_id: "Berapa lama bestie punya waktu untuk menjawab permintaan perpanjangan sebelum tindakan bawaan berlaku.",
        public: true,
        default: || json!(10),
    },
    KeySpec {
        key: "extension_default_action_on_timeout",
        value_type: ValueType::Enum { values: &["auto_approve", "auto_reject"] },
        label: "When a bestie does not answer an extension",
        explanation: "auto_approve extends the session (and charges) when the bestie stays silent; a bestie who is offline or disconnected is always an auto-reject.",
        label_id: "Jika bestie tidak menjawab perpanjangan",
        explanation_id: "auto_approve memperpanjang sesi (dan menagih) saat bestie diam; bestie yang offline atau terputus selalu dianggap auto-reject.",
        public: true,
        default: || json!("auto_approve"),
    },
    KeySpec {
        key: "early_end_mitra_enabled",
        value_type: ValueType::Boolean,
        label: "Besties may end a session early",
        explanation: "Shows the \"Akhiri\" action to besties; the session moves to its closing window.",
        label_id: "Bestie boleh mengakhiri sesi lebih awal",
        explanation_id: "Menampilkan tombol \"Akhiri\" kepada bestie; sesi masuk ke masa penutupan.",
        public: true,
        default: || json!(false),
    },
    KeySpec {
        key: "early_end_customer_enabled",
        value_type: ValueType::Boolean,
        label: "Customers may end a session early",
        explanation: "Lets customers end an active session before its time is up.",
        label_id: "Pelanggan boleh mengakhiri sesi lebih awal",
        explanation_id: "Mengizinkan pelanggan mengakhiri sesi aktif sebelum waktunya habis.",
        public: true,
        default: || json!(false),
    },
    KeySpec {
        key: "early_end_mitra_daily_cap",
        value_type: ValueType::Integer { min: 0, max: 100 },
        label: "Early ends per bestie per day before review",
        explanation: "A bestie who ends more sessions early than this in a day is flagged for review (not blocked).",
        label_id: "Batas akhir-lebih-awal per bestie per hari sebelum ditinjau",
        explanation_id: "Bestie yang mengakhiri sesi lebih awal lebih dari ini dalam sehari ditandai untuk ditinjau (tidak diblokir).",
        public: false,
        default: || json!(3),
    },
    KeySpec {
        key: "closing_grace_minutes",
        value_type: ValueType::Integer { min: 1, max: 60 },
        label: "Goodbye window (minutes)",
        explanation: "After time is up both sides may leave a closing message; then the session completes.",
        label_id: "Masa pamit (menit)",
        explanation_id: "Setelah waktu habis, kedua pihak boleh meninggalkan pesan penutup; lalu sesi selesai.",
        public: true,
        default: || json!(5),
    },
    KeySpec {
        key: "session_ending_warning_seconds",
        value_type: ValueType::Integer { min: 10, max: SECONDS_IN_DAY },
        label: "\"Time almost up\" warning (seconds before the end)",
        explanation: "Both sides are told this long before the session's time is up.",
        label_id: "Peringatan \"waktu hampir habis\" (detik sebelum berakhir)",
        explanation_id: "Kedua pihak diberi tahu selama ini sebelum waktu sesi habis.",
        public: true,
        default: || json!(60),
    },
    KeySpec {
        key: "push_message_previews",
        value_type: ValueType::Boolean,
        label: "Show message text in chat pushes",
        explanation: "When on, a chat message's push shows its first 100 characters on the lock screen; when off (the default) it only says a new message arrived. These are private conversations.",
        label_id: "Tampilkan isi pesan di notifikasi chat",
        explanation_id: "Jika aktif, notifikasi pesan chat menampilkan 100 karakter pertamanya di layar kunci; jika nonaktif (bawaan) hanya memberi tahu ada pesan baru. Ini percakapan pribadi.",
        public: false,
        default: || json!(false),
    },
];

/// A registered key and the Rust type its value reads as. Made only by the constructors
/// below, which check the registry when the crate compiles.
pub struct Key<T> {
    pub name: &'static str,
    value: std::marker::PhantomData<fn() -> T>,
}

impl<T> Clone for Key<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Key<T> {}

impl<T> Key<T> {
    /// `name`, which must be a key of [`KEYS`] of type `kind`; evaluated in a constant, a
    /// mismatch fails the build.
    const fn registered(name: &'static str, kind: u8) -> Self {
        assert!(in_registry(name, kind), "not a key of KEYS, or of another type");
        Self { name, value: std::marker::PhantomData }
    }
}

/// Whether [`KEYS`] has `name` with a type `kind` accepts (usable in a constant).
const fn in_registry(name: &str, kind: u8) -> bool {
    let mut i = 0;
    while i < KEYS.len() {
        let spec = &KEYS[i];
        if same(spec.key, name) {
            return matches!(
                (kind, spec.value_type),
                (INTEGER, ValueType::Integer { .. })
                    | (BOOLEAN, ValueType::Boolean)
                    | (CHOICE, ValueType::Enum { .. })
                    | (TIERS, ValueType::PriceTiers)
            );
        }
        i += 1;
    }
    false
}

const INTEGER: u8 = 0;
const BOOLEAN: u8 = 1;
const CHOICE: u8 = 2;
const TIERS: u8 = 3;

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl Key<i64> {
    const fn integer(name: &'static str) -> Self {
        Self::registered(name, INTEGER)
    }
}

impl Key<bool> {
    const fn boolean(name: &'static str) -> Self {
        Self::registered(name, BOOLEAN)
    }
}

impl Key<Vec<PriceTier>> {
    const fn price_tiers(name: &'static str) -> Self {
        Self::registered(name, TIERS)
    }
}

impl Key<ExtensionTimeoutAction> {
    const fn choice(name: &'static str) -> Self {
        Self::registered(name, CHOICE)
    }
}

/// What happens when a bestie leaves an extension request unanswered
/// (`extension_default_action_on_timeout`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtensionTimeoutAction {
    AutoApprove,
    AutoReject,
}

pub const PRICE_TIERS: Key<Vec<PriceTier>> = Key::price_tiers("price_tiers");
pub const FREE_TRIAL_ENABLED: Key<bool> = Key::boolean("free_trial_enabled");
pub const FREE_TRIAL_DURATION_MINUTES: Key<i64> = Key::integer("free_trial_duration_minutes");
pub const MAX_CUSTOMERS_PER_MITRA: Key<i64> = Key::integer("max_customers_per_mitra");
pub const PAIRING_BLAST_TIMEOUT_SECONDS: Key<i64> = Key::integer("pairing_blast_timeout_seconds");
pub const PAYMENT_SESSION_TIMEOUT_MINUTES: Key<i64> = Key::integer("payment_session_timeout_minutes");
pub const RETURNING_CHAT_CONFIRMATION_TIMEOUT_SECONDS: Key<i64> =
    Key::integer("returning_chat_confirmation_timeout_seconds");
pub const EXTENSION_TIMEOUT_SECONDS: Key<i64> = Key::integer("extension_timeout_seconds");
pub const EXTENSION_DEFAULT_ACTION_ON_TIMEOUT: Key<ExtensionTimeoutAction> =
    Key::choice("extension_default_action_on_timeout");
pub const EARLY_END_MITRA_ENABLED: Key<bool> = Key::boolean("early_end_mitra_enabled");
pub const EARLY_END_CUSTOMER_ENABLED: Key<bool> = Key::boolean("early_end_customer_enabled");
pub const EARLY_END_MITRA_DAILY_CAP: Key<i64> = Key::integer("early_end_mitra_daily_cap");
pub const CLOSING_GRACE_MINUTES: Key<i64> = Key::integer("closing_grace_minutes");
pub const SESSION_ENDING_WARNING_SECONDS: Key<i64> = Key::integer("session_ending_warning_seconds");
pub const PUSH_MESSAGE_PREVIEWS: Key<bool> = Key::boolean("push_message_previews");

/// The current value of `key`: the stored one when it passes validation, else the default.
pub async fn get<T: serde::de::DeserializeOwned>(
    store: &crate::store::Store,
    key: Key<T>,
) -> Result<T, crate::store::StoreError> {
    serde_json::from_value(current(store, key.name).await?)
        .map_err(|e| crate::store::StoreError::Encode(format!("{}: {e}", key.name)))
}

/// `key`'s default.
pub fn default_of<T: serde::de::DeserializeOwned>(key: Key<T>) -> Option<T> {
    spec(key.name).and_then(|spec| serde_json::from_value(spec.default_value()).ok())
}

/// Looks a key up in the registry.
pub fn spec(key: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|spec| spec.key == key)
}

/// The current value of a registered key: the stored one when it passes validation, else
/// the default (a stored value that no longer fits is logged and ignored).
async fn current(store: &crate::store::Store, key: &'static str) -> Result<Value, crate::store::StoreError> {
    let Some(spec) = spec(key) else {
        return Err(crate::store::StoreError::Encode(format!("{key} is not a configuration key")));
    };
    match store.app_config_value(key).await? {
        Some(stored) => Ok(spec.validate(&stored).unwrap_or_else(|error| {
            tracing::warn!(%error, "stored configuration value ignored; using the default");
            spec.default_value()
        })),
        None => Ok(spec.default_value()),
    }
}

/// Why a configuration change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no configuration key {0}")]
    UnknownKey(String),
    #[error("limit must be 1 to {MAX_CHANGES_PAGE}")]
    InvalidPage,
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl crate::error::DomainError for ConfigError {
    fn code(&self) -> &'static str {
        match self {
            Self::UnknownKey(_) => "unknown_config_key",
            Self::InvalidPage => "invalid_page",
            Self::Invalid(e) => e.code(),
            Self::Store(e) => e.code(),
        }
    }

    fn kind(&self) -> crate::error::ErrorKind {
        match self {
            Self::UnknownKey(_) => crate::error::ErrorKind::NotFound,
            Self::InvalidPage => crate::error::ErrorKind::Invalid,
            Self::Invalid(e) => e.kind(),
            Self::Store(e) => e.kind(),
        }
    }
}

/// Most changes one page of the audit trail holds.
pub const MAX_CHANGES_PAGE: i64 = 500;

/// The configuration's audit trail, newest first: one key's changes, or all (50 by default).
pub async fn changes(
    store: &crate::store::Store,
    key: Option<&str>,
    limit: Option<i64>,
) -> Result<ConfigChanges, ConfigError> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_CHANGES_PAGE).contains(&limit) {
        return Err(ConfigError::InvalidPage);
    }
    let rows = store.config_changes(key, limit).await?;
    Ok(ConfigChanges { changes: rows.into_iter().map(ChangeView::from).collect() })
}

/// Every key, in the registry's order, with its current value.
pub async fn list(store: &crate::store::Store) -> Result<ConfigKeys, crate::store::StoreError> {
    let stored: std::collections::HashMap<String, crate::app_config::store::StoredKey> =
        store.app_config_rows().await?.into_iter().map(|row| (row.key.clone(), row)).collect();
    let keys = KEYS
        .iter()
        .map(|spec| {
            let row = stored.get(spec.key);
            let value =
                row.and_then(|row| spec.validate(&row.value).ok()).unwrap_or_else(|| spec.default_value());
            KeyView::new(spec, value, row)
        })
        .collect();
    Ok(ConfigKeys { keys })
}

/// An operator changes a key: validated against its type, written with an audit row (who,
/// old → new). Every process reads the configuration from Postgres when it uses it, so the
/// change applies everywhere at once; the one copy kept elsewhere, the capacity cap in
/// Redis, is recomputed here.
pub async fn update(
    store: &crate::store::Store,
    actor: &crate::auth::Principal,
    key: &str,
    value: &Value,
) -> Result<KeyView, ConfigError> {
    let spec = spec(key).ok_or_else(|| ConfigError::UnknownKey(key.to_owned()))?;
    let value = spec.validate(value)?;
    store.set_app_config(actor.operator_id(), spec.key, &value).await?;
    if spec.key == MAX_CUSTOMERS_PER_MITRA.name {
        crate::presence::sync_capacity_cap(store).await?;
    }
    let views = list(store).await?;
    views
        .keys
        .into_iter()
        .find(|view| view.key == spec.key)
        .ok_or_else(|| ConfigError::UnknownKey(key.to_owned()))
}

/// Every key apps may read (`public`), with its current value: `GET /api/shared/config`.
pub async fn public_values(store: &crate::store::Store) -> Result<PublicConfig, crate::store::StoreError> {
    let stored: std::collections::HashMap<String, Value> =
        store.app_config_values().await?.into_iter().collect();
    Ok(PublicConfig(
        KEYS.iter()
            .filter(|spec| spec.public)
            .map(|spec| {
                let value = stored
                    .get(spec.key)
                    .and_then(|v| spec.validate(v).ok())
                    .unwrap_or_else(|| spec.default_value());
                (spec.key.to_owned(), value)
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_passes_its_own_validation() {
        for spec in KEYS {
            let default = spec.default_value();
            assert_eq!(spec.validate(&default).expect(spec.key), default, "{}", spec.key);
        }
    }

    #[test]
    fn every_key_is_explained_in_both_languages() {
        for spec in KEYS {
            let texts = [spec.label, spec.explanation, spec.label_id, spec.explanation_id];
            assert!(texts.iter().all(|text| !text.trim().is_empty()), "{}", spec.key);
            assert_ne!(spec.label, spec.label_id, "{}: the Indonesian label is a translation", spec.key);
        }
    }

    #[test]
    fn keys_are_unique() {
        let mut seen = std::collections::HashSet::new();
        assert!(KEYS.iter().all(|spec| seen.insert(spec.key)));
    }

    #[test]
    fn out_of_range_and_wrongly_typed_values_are_refused() {
        let cap = spec("max_customers_per_mitra").expect("registered");
        assert!(cap.validate(&json!(0)).is_err());
        assert!(cap.validate(&json!("3")).is_err());
        assert!(cap.validate(&json!(2.5)).is_err());
        let action = spec("extension_default_action_on_timeout").expect("registered");
        assert!(action.validate(&json!("approve")).is_err());
        let tiers = spec("price_tiers").expect("registered");
        assert!(tiers.validate(&json!([])).is_err());
        let duplicate = json!([
            {"id": "a", "duration_minutes": 5, "price": 1},
            {"id": "a", "duration_minutes": 10, "price": 2}
        ]);
        assert!(tiers.validate(&duplicate).is_err());
        assert!(tiers.validate(&json!([{"id": "a", "duration_minutes": 5}])).is_err());
    }
}
