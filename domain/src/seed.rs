//! `bestie seed`: the control-center admin, demo mitras and every `app_config` default.
//! Running it again changes nothing that exists.

use crate::app_config::KEYS;
use crate::password;
use crate::settings::SeedSettings;
use crate::store::Store;
use crate::store::StoreError;
use crate::store::accounts::NewAccount;

/// What a seed run created.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SeedReport {
    pub admin_created: bool,
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
}

pub async fn run(store: &Store, settings: &SeedSettings) -> Result<SeedReport, SeedError> {
    let email = settings.admin_email.trim();
    if email != email.to_lowercase() || !email.contains('@') {
        return Err(SeedError::InvalidEmail(email.to_owned()));
    }
    let mut report = SeedReport::default();
    if !store.account_email_exists(email).await? {
        let hash = password::hash(settings.admin_password.expose()).await?;
        let account = NewAccount { email, display_name: "Admin", password_hash: &hash };
        report.admin_created = store.insert_cc_admin_if_absent(account).await?.is_some();
    }
    for n in 1..=settings.demo_mitras {
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
