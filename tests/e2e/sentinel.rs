//! Redis behind Sentinel: a private master, its replica and a sentinel on loopback. The app
//! finds the master through the sentinel, and after the sentinel fails it over (the old
//! master demoted to a replica, refusing writes) it finds the new one: the mitra's switch, the
//! availability poll and a blast to the mitra's open socket work again without a restart.

use serde_json::json;
use std::time::Duration;

use crate::harness::{PrivateSentinel, TestApp, eventually};
use crate::pairing::{customer, new_online_mitra, next_event, paid, start_blast};

/// How long after the failover the app may take to work against the new master.
const FOLLOWS_WITHIN: Duration = Duration::from_secs(15);

async fn available_count(app: &TestApp, token: &str) -> Option<i64> {
    let url = app.public_url("/api/client/mitra-availability");
    let (status, body) = app.call(reqwest::Method::GET, &url, Some(token), None).await;
    (status == 200).then(|| body["count"].as_i64()).flatten()
}

/// Waits until the availability poll answers `count` (its view follows Redis a moment
/// after each change).
async fn until_available(app: &TestApp, token: &str, count: i64) {
    eventually(Duration::from_secs(5), "the poll's count", || async {
        available_count(app, token).await == Some(count)
    })
    .await;
}

#[tokio::test]
async fn the_app_follows_a_sentinel_failover_to_the_new_master() {
    let sentinel = PrivateSentinel::start(7411).await;
    let url = sentinel.url();
    let app =
        TestApp::spawn_with(|settings| settings.redis.url = domain::settings::ConnectionUrl::new(url)).await;
    let operator = app.sign_in_operator().await;
    let mut mitra = new_online_mitra(&app, &operator).await;
    let rani = customer(&app).await;
    until_available(&app, &rani.token, 1).await;

    let new_master = sentinel.fail_over().await;
    assert_eq!(new_master, 7412);

    // Switching off writes presence on the master: refused by the demoted one at first, then
    // sent to the new one.
    let took = eventually(FOLLOWS_WITHIN, "the switch reaching the new master", || async {
        let url = app.public_url("/api/mitra/status");
        let (status, _) = app.post(&url, Some(&mitra.token), json!({"online": false})).await;
        status == 200 && available_count(&app, &rani.token).await == Some(0)
    })
    .await;
    eprintln!("sentinel: the switch reached the new master {took:?} after the failover");
    let (status, body) =
        app.post(&app.public_url("/api/mitra/status"), Some(&mitra.token), json!({"online": true})).await;
    assert_eq!(status, 200, "{body}");
    until_available(&app, &rani.token, 1).await;

    // An event still reaches the mitra's open socket: published on the new master, read by
    // the hub's inbox reader from there.
    let payment = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
    let (status, request) = start_blast(&app, &rani.token, &payment).await;
    assert_eq!(status, 201, "{request}");
    let offered = next_event(&mut mitra.socket, "chat_request").await;
    assert_eq!(offered["request_id"], request["id"], "{offered}");
}
