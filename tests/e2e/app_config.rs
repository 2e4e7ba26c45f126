//! The `app_config` table against the registry in `domain::app_config`, and `bestie seed`.

use std::collections::BTreeMap;

use domain::app_config::KEYS;
use serde_json::json;

use crate::harness::TestApp;

#[tokio::test]
async fn migrations_seed_every_registered_key_with_its_default() {
    let app = TestApp::spawn().await;
    let stored: BTreeMap<String, serde_json::Value> =
        app.store.app_config_values().await.expect("read app_config").into_iter().collect();
    let registered: BTreeMap<String, serde_json::Value> =
        KEYS.iter().map(|spec| (spec.key.to_owned(), spec.default_value())).collect();
    assert_eq!(stored, registered);
}

#[tokio::test]
async fn seed_creates_the_admin_and_demo_mitras_once() {
    let app = TestApp::spawn().await;
    let mut seed = app.settings.seed.clone();
    seed.demo_mitras = Some(2);

    let first = domain::seed::run(&app.store, &seed).await.expect("first seed");
    assert_eq!(first.admin, domain::seed::AdminSeed::Created);
    assert_eq!(first.mitras_created, 2);
    // The migration already inserted every config default.
    assert_eq!(first.config_keys_inserted, 0);

    let second = domain::seed::run(&app.store, &seed).await.expect("second seed");
    assert_eq!(second, domain::seed::SeedReport::default());
    assert!(app.store.account_email_exists(&seed.admin_email).await.expect("lookup"));

    // Another configured password: kept, and said; set only when asked.
    seed.admin_password = domain::settings::Secret::new("a-different-admin-secret");
    let kept = domain::seed::run(&app.store, &seed).await.expect("third seed");
    assert_eq!(kept.admin, domain::seed::AdminSeed::PasswordKept);
    let login = app.internal_url("/internal/auth/login");
    let with = |password: &str| json!({"email": seed.admin_email, "password": password});
    assert_eq!(app.post(&login, None, with("a-different-admin-secret")).await.0, 401);
    assert_eq!(app.post(&login, None, with(app.settings.seed.admin_password.expose())).await.0, 200);
    let reset = domain::seed::run_with(&app.store, &seed, true).await.expect("reset");
    assert_eq!(reset.admin, domain::seed::AdminSeed::PasswordReset);
    assert_eq!(app.post(&login, None, with("a-different-admin-secret")).await.0, 200);
    assert_eq!(app.post(&login, None, with(app.settings.seed.admin_password.expose())).await.0, 401);
    let again = domain::seed::run_with(&app.store, &seed, true).await.expect("again");
    assert_eq!(again.admin, domain::seed::AdminSeed::Unchanged);
}

#[tokio::test]
async fn seed_restores_a_deleted_config_key_without_touching_edited_ones() {
    let app = TestApp::spawn().await;
    let pool = app.store.pg_pool();
    sqlx::query("DELETE FROM app_config WHERE key = 'closing_grace_minutes'")
        .execute(pool)
        .await
        .expect("delete");
    sqlx::query("UPDATE app_config SET value = '7' WHERE key = 'max_customers_per_mitra'")
        .execute(pool)
        .await
        .expect("edit");

    let report = domain::seed::run(&app.store, &app.settings.seed).await.expect("seed");
    assert_eq!(report.config_keys_inserted, 1);
    let values: BTreeMap<String, serde_json::Value> =
        app.store.app_config_values().await.expect("read").into_iter().collect();
    assert_eq!(values["closing_grace_minutes"], serde_json::json!(5));
    assert_eq!(values["max_customers_per_mitra"], serde_json::json!(7));
}
