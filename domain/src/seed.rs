//! `bestie seed`: the control-center admin, demo mitras and every `app_config` default.
//! Running it again changes nothing that exists.
//!
//! For load tests it also creates numbered customers and mitras in bulk and signs an access
//! token for each ([`load_accounts`]), so a run starts without thousands of sign-ins.

use serde::Serialize;
use uuid::Uuid;

use crate::accounts::store::NewAccount;
use crate::app_config::KEYS;
use crate::auth::tokens::TokenKeys;
use crate::auth::{AuthError, Role};
use crate::ids::UserId;
use crate::password;
use crate::settings::{AuthSettings, SeedSettings};
use crate::store::Store;
use crate::store::StoreError;

/// What a seed run did with the admin of `seed.admin_email`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum AdminSeed {
    /// Created with `seed.admin_password`.
    Created,
    /// Present, and `seed.admin_password` signs it in.
    #[default]
    Unchanged,
    /// Present with another password (changed in the console, or the setting changed since):
    /// kept. `bestie seed --reset-admin-password` sets the configured one.
    PasswordKept,
    /// Present with another password, set to `seed.admin_password` (`--reset-admin-password`).
    PasswordReset,
}

/// What a seed run created.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub admin: AdminSeed,
    pub mitras_created: u32,
    pub config_keys_inserted: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] password::HashError),
    #[error("seed.admin_email must be a lower-case email address, got {0:?}")]
    InvalidEmail(String),
    #[error(transparent)]
    Token(#[from] AuthError),
    #[error("at most {MAX_LOAD_ACCOUNTS} load-test accounts of each kind")]
    TooManyLoadAccounts,
    #[error("the store returned no account for {0}")]
    MissingLoadAccount(String),
}

/// Seeds what is missing: the admin, the demo mitras, the configuration's defaults. An
/// existing admin keeps its password unless `reset_admin_password`; the report says which.
pub async fn run(store: &Store, settings: &SeedSettings) -> Result<SeedReport, SeedError> {
    run_with(store, settings, false).await
}

pub async fn run_with(
    store: &Store,
    settings: &SeedSettings,
    reset_admin_password: bool,
) -> Result<SeedReport, SeedError> {
    let email = settings.admin_email.trim();
    if email != email.to_lowercase() || !email.contains('@') {
        return Err(SeedError::InvalidEmail(email.to_owned()));
    }
    let mut report = SeedReport::default();
    let configured = settings.admin_password.expose();
    if let Some(admin) = store.password_account(crate::auth::Role::Cc, email).await? {
        if !password::verify(configured, &admin.password_hash).await {
            report.admin = if reset_admin_password {
                let hash = password::hash(configured).await?;
                store.change_operator_password(crate::ids::OperatorId(admin.id.0), &hash).await?;
                store.clear_sign_in_attempts(crate::auth::Role::Cc, email).await?;
                AdminSeed::PasswordReset
            } else {
                AdminSeed::PasswordKept
            };
        }
    } else if !store.account_email_exists(email).await? {
        let hash = password::hash(configured).await?;
        let account = NewAccount { email, display_name: "Admin", password_hash: &hash };
        if store.insert_cc_admin_if_absent(account).await?.is_some() {
            report.admin = AdminSeed::Created;
        }
    }
    for n in 1..=settings.demo_mitras.unwrap_or(crate::settings::DEV_DEMO_MITRAS) {
        let email = format!("mitra{n}@bestie.local");
        if store.account_email_exists(&email).await? {
            continue;
        }
        let hash = password::hash(settings.demo_mitra_password.expose()).await?;
        let display_name = format!("Bestie {n}");
        let account = NewAccount { email: &email, display_name: &display_name, password_hash: &hash };
        if store.insert_mitra_if_absent(account).await?.is_some() {
            report.mitras_created += 1;
        }
    }
    let defaults: Vec<_> = KEYS.iter().map(|spec| (spec.key, spec.default_value())).collect();
    report.config_keys_inserted = store.insert_missing_app_config(&defaults).await?;
    Ok(report)
}

/// Load-test accounts of each kind at most (the phone numbers have room for 10^9).
pub const MAX_LOAD_ACCOUNTS: u32 = 1_000_000;

/// How many load-test accounts to create, and how long their tokens live.
#[derive(Debug, Clone, Copy)]
pub struct LoadSeed {
    pub customers: u32,
    pub mitras: u32,
    pub token_ttl_s: u64,
}

/// One load-test account: `name` is the customer's call name (`c0`, `c1`, ...) or the mitra's
/// display name (`m0`, `m1`, ...), the index a load script finds it by.
#[derive(Debug, Clone, Serialize)]
pub struct LoadAccount {
    pub id: Uuid,
    pub name: String,
    pub token: String,
}

/// What [`load_accounts`] created, in index order, and when the tokens expire (unix seconds).
#[derive(Debug, Clone, Serialize)]
pub struct LoadAccounts {
    pub customers: Vec<LoadAccount>,
    pub mitras: Vec<LoadAccount>,
    pub expires_at_s: i64,
}

/// The phone number of load-test customer `n`.
pub fn load_customer_phone(n: u32) -> String {
    format!("+62899{n:09}")
}

/// The email of load-test mitra `n`.
pub fn load_mitra_email(n: u32) -> String {
    format!("load-mitra-{n}@bestie.load")
}

/// Creates load-test customers `c0..` (phones [`load_customer_phone`]) and mitras `m0..`
/// (emails [`load_mitra_email`], password `seed.demo_mitra_password`), each kind in one
/// statement, and signs a `token_ttl_s` access token for each with the keys of `auth`.
/// Accounts that exist already are reused (a customer gets its call name back), so running
/// it again returns the same ids with new tokens.
pub async fn load_accounts(
    store: &Store,
    seed: &SeedSettings,
    auth: &AuthSettings,
    load: LoadSeed,
) -> Result<LoadAccounts, SeedError> {
    if load.customers > MAX_LOAD_ACCOUNTS || load.mitras > MAX_LOAD_ACCOUNTS {
        return Err(SeedError::TooManyLoadAccounts);
    }
    let keys = TokenKeys::new(&AuthSettings { access_token_ttl_s: load.token_ttl_s, ..auth.clone() });
    let expires_at_s =
        crate::clock::now_s().saturating_add(i64::try_from(load.token_ttl_s).unwrap_or(i64::MAX));

    let wanted: Vec<(String, String)> =
        (0..load.customers).map(|n| (load_customer_phone(n), format!("c{n}"))).collect();
    let customers = if wanted.is_empty() { Vec::new() } else { store.upsert_load_customers(&wanted).await? };
    let customers = in_order(wanted, customers, Role::Customer, &keys)?;

    let wanted: Vec<(String, String)> =
        (0..load.mitras).map(|n| (load_mitra_email(n), format!("m{n}"))).collect();
    let mitras = if wanted.is_empty() {
        Vec::new()
    } else {
        let hash = password::hash(seed.demo_mitra_password.expose()).await?;
        store.upsert_load_mitras(&wanted, &hash).await?
    };
    let mitras = in_order(wanted, mitras, Role::Mitra, &keys)?;
    Ok(LoadAccounts { customers, mitras, expires_at_s })
}

/// The accounts of `wanted` (`(key, name)`) in its order, with the ids the store returned
/// (`(key, id)`, any order) and a token each.
fn in_order(
    wanted: Vec<(String, String)>,
    stored: Vec<(String, UserId)>,
    role: Role,
    keys: &TokenKeys,
) -> Result<Vec<LoadAccount>, SeedError> {
    let ids: std::collections::HashMap<String, UserId> = stored.into_iter().collect();
    wanted
        .into_iter()
        .map(|(key, name)| {
            let id = *ids.get(&key).ok_or_else(|| SeedError::MissingLoadAccount(key.clone()))?;
            let token = keys.issue(id, role)?.token;
            Ok(LoadAccount { id: id.0, name, token })
        })
        .collect()
}
