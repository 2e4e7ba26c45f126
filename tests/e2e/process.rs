//! The real `bestie` executable: signals, exit codes, and roles split across processes that
//! share one Redis and one Postgres.

use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use domain::auth::Role;

use crate::harness::{BestieProcess, isolated_settings, token_for, ws_url_with_token};
use crate::shutdown::close_code;

#[tokio::test]
async fn sigterm_closes_sockets_with_1012_and_exits_0_within_10_seconds() {
    let mut bestie = BestieProcess::serve(&[]).await;
    let token = token_for(&bestie.settings, uuid::Uuid::new_v4(), Role::Mitra);
    let (mut socket, _) =
        tokio_tungstenite::connect_async(ws_url_with_token(bestie.public, &token)).await.expect("socket");

    bestie.terminate();
    assert_eq!(close_code(&mut socket).await, Some(CloseCode::Restart));
    assert_eq!(bestie.wait_exit(Duration::from_secs(10)).await, Some(0));
}

#[tokio::test]
async fn roles_run_as_separate_processes_sharing_the_stores() {
    let shared = isolated_settings();
    let api = BestieProcess::serve_with(shared.clone(), &["--role", "api"]).await;
    let hub = BestieProcess::serve_with(shared.clone(), &["--role", "hub"]).await;
    let worker = BestieProcess::serve_with(shared, &["--role", "worker"]).await;
    let http = reqwest::Client::new();

    // Every process reports ready on its internal listener (checked by serve_with) and
    // exports its metrics there.
    for process in [&api, &hub, &worker] {
        let metrics = http.get(format!("http://{}/metrics", process.internal)).send().await.expect("metrics");
        assert_eq!(metrics.status(), 200);
    }
    // Only the hub upgrades sockets; the api process does not serve /ws.
    let token = token_for(&hub.settings, uuid::Uuid::new_v4(), Role::Customer);
    assert!(tokio_tungstenite::connect_async(ws_url_with_token(hub.public, &token)).await.is_ok());
    let on_api = http.get(format!("http://{}/ws", api.public)).send().await.expect("api /ws");
    assert_eq!(on_api.status(), 404);
    // The worker serves no public listener at all.
    assert!(http.get(format!("http://{}/healthz", worker.public)).send().await.is_err());
}

#[tokio::test]
async fn production_mode_refuses_the_default_admin_password() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bestie"))
        .arg("config")
        .env("BESTIE__MODE", "production")
        .output()
        .expect("bestie runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("BESTIE__SEED__ADMIN_PASSWORD"), "{stderr}");
}

#[tokio::test]
async fn config_prints_settings_with_secrets_redacted() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bestie"))
        .arg("config")
        .env("BESTIE__DATABASE__URL", "postgres://app:s3cr3t-pw@db.internal/bestie")
        .env("BESTIE__REDIS__PREFIX", "staging")
        .output()
        .expect("bestie runs");
    assert!(output.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(printed["redis"]["prefix"], "staging");
    assert_eq!(printed["database"]["url"], "[redacted]");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("s3cr3t-pw"));
}

#[tokio::test]
async fn unknown_settings_are_refused_rather_than_ignored() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_bestie"))
        .arg("config")
        .env("BESTIE__REDIS__PREFX", "typo")
        .output()
        .expect("bestie runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("prefx"), "{stderr}");
}

#[tokio::test]
async fn production_mode_refuses_development_keys_and_code_senders() {
    let production = |extra: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_bestie"));
        command
            .arg("config")
            .env("BESTIE__MODE", "production")
            .env("BESTIE__SEED__ADMIN_PASSWORD", "a-real-admin-password");
        for (key, value) in extra {
            command.env(key, value);
        }
        let output = command.output().expect("bestie runs");
        (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
    };
    let keys = [
        ("BESTIE__AUTH__JWT_SECRET", "a-production-jwt-key-of-enough-length-0001"),
        ("BESTIE__AUTH__OTP_SECRET", "a-production-otp-key-of-enough-length-0001"),
    ];
    let (ok, stderr) = production(&[]);
    assert!(!ok && stderr.contains("BESTIE__AUTH__JWT_SECRET"), "{stderr}");
    let (ok, stderr) = production(&keys);
    assert!(!ok && stderr.contains("BESTIE__AUTH__OTP_SENDER"), "{stderr}");
    let (ok, stderr) = production(&[keys[0], keys[1], ("BESTIE__AUTH__OTP_SENDER", "dev")]);
    assert!(!ok && stderr.contains("refuses"), "{stderr}");
    let webhook = [
        keys[0],
        keys[1],
        ("BESTIE__AUTH__OTP_SENDER", "webhook"),
        ("BESTIE__AUTH__OTP_WEBHOOK_URL", "https://sms.example/send"),
    ];
    let (ok, stderr) = production(&webhook);
    assert!(ok, "{stderr}");
}
