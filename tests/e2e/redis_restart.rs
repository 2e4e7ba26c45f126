//! Redis restarting empty (it keeps nothing on disk): a private `redis-server` the test
//! kills -9 and starts again on the same port, or, under `scripts/test-cluster`, a private
//! 6-node cluster (ports 7231.. and 7241..) whose nodes all die and come back empty. Presence,
//! counters and routing come back from the hubs' live sockets and Postgres, and clients that
//! lost events get `resync_required` instead of silence.

use domain::ids::SignInId;
use domain::ids::{MitraId, TokenId, UserId};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::harness::{PrivateRedis, TestApp, WsClient, ws_url_with_token};
use crate::pairing::{
    Customer, OnlineMitra, accept, customer, new_online_mitra, next_event, paid, start_blast,
};

/// The time the issue allows for presence, counters and routing to come back.
const REBUILD_LIMIT: Duration = Duration::from_secs(15);

/// Reads `socket` until a frame of `kind`, at most until `deadline`; returns its data and
/// the id of the last durable event read on the way. Panics if the socket closes.
async fn frame_by(socket: &mut WsClient, kind: &str, deadline: Instant) -> Option<(Value, Option<String>)> {
    let mut last_id = None;
    loop {
        let frame = socket.next_json_within(deadline.saturating_duration_since(Instant::now())).await?;
        if let Some(id) = frame["id"].as_str() {
            last_id = Some(id.to_owned());
        }
        if frame["type"] == kind {
            return Some((frame["data"].clone(), last_id));
        }
    }
}

/// Sends a chat message over the socket and reads until its ack arrived.
async fn send_message(socket: &mut WsClient, session: &str, client_msg_id: &str) {
    let data = json!({"session_id": session, "client_msg_id": client_msg_id, "body": "masih di sini"});
    let answer = socket.command("send_message", data).await;
    assert_eq!(answer["type"], "message_ack", "{answer}");
}

async fn availability(app: &TestApp, token: &str) -> Option<Value> {
    let url = app.public_url("/api/client/mitra-availability");
    let (status, body) = app.call(Method::GET, &url, Some(token), None).await;
    (status == 200).then_some(body)
}

/// Polls until `done` holds, at most until `deadline`; returns whether it did.
async fn eventually<F, Fut>(deadline: Instant, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if done().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn after_redis_restarts_empty_presence_counters_and_routes_come_back_and_sockets_resync() {
    // Declared before the app, so the app (and its cleanup) goes first.
    let mut redis = PrivateRedis::start(7231).await;
    let app = TestApp::spawn_with(|s| s.redis.url = domain::settings::ConnectionUrl::new(redis.url())).await;
    let operator = app.sign_in_operator().await;
    let (status, body) = app
        .call(
            Method::PUT,
            &app.internal_url("/internal/config/max_customers_per_mitra"),
            Some(&operator),
            Some(json!({"value": 1})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Ayu takes Rani's chat and is at the cap; Budi is online and free: one available.
    let mut ayu: OnlineMitra = new_online_mitra(&app, &operator).await;
    let mut budi: OnlineMitra = new_online_mitra(&app, &operator).await;
    let mut rani: Customer = customer(&app).await;
    let payment = paid(&app, &rani.token, json!({"tier_id": "15m"})).await;
    let (_, request) = start_blast(&app, &rani.token, &payment).await;
    next_event(&mut ayu.socket, "chat_request").await;
    next_event(&mut budi.socket, "chat_request").await;
    let (status, accepted) = accept(&app, &ayu.token, request["id"].as_str().expect("id")).await;
    assert_eq!(status, 200, "{accepted}");
    let session = accepted["chat_session"]["id"].as_str().expect("session").to_owned();
    let far = Instant::now() + Duration::from_secs(10);
    let (_, rani_last) = frame_by(&mut rani.socket, "paired", far).await.expect("rani is told she is paired");
    let rani_last = rani_last.expect("a durable id");
    send_message(&mut rani.socket, &session, "before").await;
    next_event(&mut ayu.socket, "chat_message").await;
    let watcher = rani.token.clone();
    let one = json!({"available": true, "count": 1});
    assert!(eventually(far, || async { availability(&app, &watcher).await.as_ref() == Some(&one) }).await);

    redis.kill();
    let killed = Instant::now();
    // While Redis is away the sockets stay open, and a message is stored (Postgres) and
    // acknowledged; it cannot be delivered live, and no event can say so.
    let reference = uuid::Uuid::new_v4().to_string();
    let data = json!({"session_id": session, "client_msg_id": "during", "body": "halo?"});
    rani.socket.send_json(json!({"type": "send_message", "ref": reference, "data": data})).await;
    let (ack, _) =
        frame_by(&mut rani.socket, "message_ack", far).await.expect("an answer while Redis is away");
    assert_eq!(ack["message"]["client_msg_id"], "during");
    redis.start_again().await;
    let restarted = Instant::now();
    let away = restarted - killed;
    let deadline = restarted + REBUILD_LIMIT;

    // The sockets stayed open, and each is told that events may have been lost.
    for (name, socket) in [("ayu", &mut ayu.socket), ("budi", &mut budi.socket), ("rani", &mut rani.socket)] {
        let resync = frame_by(socket, "resync_required", deadline).await;
        assert!(resync.is_some(), "{name}'s socket got no resync_required within {REBUILD_LIMIT:?}");
    }
    let resynced = restarted.elapsed();
    // What the resync tells Ayu to refetch holds the message she could not get live.
    let stored = crate::chat::stored_ids(&app, &ayu.token, &session, "").await;
    assert_eq!(stored, ["before", "during"]);

    // Presence and counters: Ayu online with her session (at the cap), Budi available.
    let counted = eventually(deadline, || async {
        let ayu_now = app.store.mitra_presence(MitraId(ayu.id), 1).await;
        let budi_now = app.store.mitra_presence(MitraId(budi.id), 1).await;
        let polled = availability(&app, &watcher).await;
        matches!(ayu_now, Ok(p) if p.online && p.active_sessions == 1 && !p.available)
            && matches!(budi_now, Ok(p) if p.online && p.active_sessions == 0 && p.available)
            && polled.as_ref() == Some(&one)
    })
    .await;
    assert!(counted, "presence did not come back within {REBUILD_LIMIT:?}");
    let recounted = restarted.elapsed();

    // Routing: a message each way reaches the other party's existing socket.
    send_message(&mut rani.socket, &session, "after-rani").await;
    let (got, _) =
        frame_by(&mut ayu.socket, "chat_message", deadline).await.expect("rani's message reaches ayu");
    assert_eq!(got["message"]["client_msg_id"], "after-rani");
    send_message(&mut ayu.socket, &session, "after-ayu").await;
    let (got, _) =
        frame_by(&mut rani.socket, "chat_message", deadline).await.expect("ayu's message reaches rani");
    let message = &got["message"];
    assert_eq!(
        (message["client_msg_id"].as_str(), message["sender_role"].as_str()),
        (Some("after-ayu"), Some("mitra"))
    );
    let routed = restarted.elapsed();

    // The cap: a new search reaches Budi only; Ayu, at the cap, is not offered it.
    let mut sari = customer(&app).await;
    let payment = paid(&app, &sari.token, json!({"tier_id": "15m"})).await;
    let (status, request) = start_blast(&app, &sari.token, &payment).await;
    assert_eq!(status, 201, "{request}");
    let request = request["id"].as_str().expect("id").to_owned();
    let (offer, _) = frame_by(&mut budi.socket, "chat_request", deadline).await.expect("budi is offered it");
    assert_eq!(offer["request_id"], request.as_str());
    let (status, refused) = accept(&app, &ayu.token, &request).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (404, Some("chat_request_not_found")));
    let (status, taken) = accept(&app, &budi.token, &request).await;
    assert_eq!(status, 200, "{taken}");
    next_event(&mut sari.socket, "paired").await;
    let none = json!({"available": false, "count": 0});
    assert!(
        eventually(deadline, || async { availability(&app, &watcher).await.as_ref() == Some(&none) }).await,
        "both mitras at the cap: none available"
    );

    // A client that reconnects with an id from before the restart is told to resync.
    let resume = format!("{}&last_event_id={rani_last}", ws_url_with_token(app.public, &rani.token));
    let mut again = WsClient::connect_welcomed(&resume).await;
    assert_eq!(again.next_json().await["type"], "resync_required");

    eprintln!(
        "redis restart: away {} ms; after it answered again: sockets told to resync after {} ms, \
         presence and counters back after {} ms, messages routed both ways after {} ms",
        away.as_millis(),
        resynced.as_millis(),
        recounted.as_millis(),
        routed.as_millis()
    );
    drop((ayu, budi, rani, sari, again));
}

#[tokio::test]
async fn one_process_claims_the_copy_and_a_switch_set_since_the_loss_is_kept() {
    use domain::presence::store::{MitraRecord, Seeding};
    // A store of its own on a prefix no process runs on: to Redis, a deployment whose data
    // is gone, with no reaper racing the test.
    let settings = crate::harness::isolated_settings();
    let store = domain::store::Store::connect(&settings.database, &settings.redis).await.expect("stores");
    let reap = |claimant: &'static str| {
        let store = store.clone();
        async move { store.reap_dead_instances(10_000, 3, claimant, 5_000).await.expect("reap").seeding }
    };
    assert_eq!(reap("a").await, Seeding::Claimed);
    assert_eq!(reap("b").await, Seeding::Elsewhere);
    assert_eq!(reap("a").await, Seeding::Claimed, "the holder may try again");

    // Since Redis came back, one mitra switched off and both connected; the record read
    // before says both are on.
    let (switched_off, restored) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    store.set_mitra_status(MitraId(switched_off), false, 3).await.expect("status");
    for mitra in [switched_off, restored] {
        store.mitra_connected(MitraId(mitra), "hub-1", 3).await.expect("connected");
    }
    let records = [
        MitraRecord { id: MitraId(switched_off), status_online: true, live_sessions: 1 },
        MitraRecord { id: MitraId(restored), status_online: true, live_sessions: 2 },
    ];
    assert_eq!(store.restore_mitras(&records, 3).await.expect("restore"), [(restored, 2)]);
    assert_eq!(store.restore_mitras(&records, 3).await.expect("again"), [], "a repeat changes nothing");
    let kept = store.mitra_presence(MitraId(switched_off), 3).await.expect("presence");
    assert_eq!((kept.status_online, kept.online, kept.active_sessions), (false, false, 1));
    let back = store.mitra_presence(MitraId(restored), 3).await.expect("presence");
    assert_eq!((back.online, back.available, back.active_sessions), (true, true, 2));

    assert!(!store.mark_presence_seeded("b").await.expect("mark"), "only the claim's holder marks it done");
    assert!(store.mark_presence_seeded("a").await.expect("mark"));
    assert_eq!(reap("b").await, Seeding::Done);
    store.close().await;
    crate::harness::drop_isolated(&settings);
}

/// An access token's claims.
fn claims(token: &str) -> Value {
    use base64::Engine;
    let claims = token.split('.').nth(1).expect("a JWT");
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).expect("base64url");
    serde_json::from_slice(&claims).expect("JSON claims")
}

/// The id (`jti`) of an access token, read from its claims.
fn token_id(token: &str) -> uuid::Uuid {
    claims(token)["jti"].as_str().expect("jti").parse().expect("uuid")
}

#[tokio::test]
async fn tokens_revoked_before_redis_restarts_empty_are_refused_after_it() {
    use domain::auth::{Principal, Role};
    let mut redis = PrivateRedis::start(7241).await;
    let app = TestApp::spawn_with(|s| s.redis.url = domain::settings::ConnectionUrl::new(redis.url())).await;
    let operator = app.sign_in_operator().await;
    let ayu = new_online_mitra(&app, &operator).await;
    let rani = customer(&app).await;
    let sari = customer(&app).await;
    let history = app.public_url("/api/shared/chat-sessions");
    let status = |token: String| {
        let (app, history) = (&app, &history);
        async move { app.call(Method::GET, history, Some(&token), None).await.0 }
    };

    // Rani logs out (the record forgets tokens that expired meanwhile); the operator
    // deactivates Ayu.
    let pool = app.store.pg_pool();
    let expired = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO revoked_access_tokens VALUES ($1, $2, now() - interval '1 second')")
        .bind(expired)
        .bind(sari.id)
        .execute(pool)
        .await
        .expect("an expired revocation");
    let (code, body) = app.post(&app.public_url("/api/auth/logout"), Some(&rani.token), json!({})).await;
    assert_eq!(code, 204, "{body}");
    let recorded: Vec<(uuid::Uuid, uuid::Uuid)> =
        sqlx::query_as("SELECT token_id, user_id FROM revoked_access_tokens WHERE token_id IN ($1, $2)")
            .bind(expired)
            .bind(token_id(&rani.token))
            .fetch_all(pool)
            .await
            .expect("the record");
    assert_eq!(recorded, [(token_id(&rani.token), rani.id)]);
    // Ayu is deactivated and reactivated: her old token stays refused ("not valid before").
    for action in ["deactivate", "reactivate"] {
        let url = app.internal_url(&format!("/internal/mitras/{}/{action}", ayu.id));
        let (code, body) = app.post(&url, Some(&operator), json!({})).await;
        assert_eq!(code, 200, "{body}");
    }
    // Dewi's spent refresh token is replayed: her sign-in is revoked.
    let (dewi, _, first_refresh) = app.sign_in_customer(&crate::harness::unique_phone()).await;
    let refresh = app.public_url("/api/auth/refresh");
    let (code, rotated) = app.post(&refresh, None, json!({"refresh_token": first_refresh})).await;
    assert_eq!(code, 200, "{rotated}");
    let dewi_token = rotated["access_token"].as_str().expect("access").to_owned();
    let (code, _) = app.post(&refresh, None, json!({"refresh_token": first_refresh})).await;
    assert_eq!(code, 401);
    for token in [&rani.token, &ayu.token, &dewi_token] {
        assert_eq!(status(token.clone()).await, 401);
    }
    assert_eq!(status(sari.token.clone()).await, 200);

    redis.kill();
    redis.start_again().await;
    let deadline = Instant::now() + REBUILD_LIMIT;

    // Redis holds them again, asked directly: a store of its own keeps no list in memory,
    // so its check is Redis's answer.
    let asker =
        domain::store::Store::connect(&app.settings.database, &app.settings.redis).await.expect("store");
    let principal = |id, role, token: &str| {
        let claims = claims(token);
        Principal {
            id,
            role,
            token_id: TokenId(token_id(token)),
            sign_in: SignInId(claims["sid"].as_str().and_then(|sid| sid.parse().ok()).expect("sid")),
            issued_at_ms: claims["iat_ms"].as_i64().expect("iat_ms"),
            expires_at_s: 0,
        }
    };
    let (rani_p, ayu_p, sari_p, dewi_p) = (
        principal(UserId(rani.id), Role::Customer, &rani.token),
        principal(UserId(ayu.id), Role::Mitra, &ayu.token),
        principal(UserId(sari.id), Role::Customer, &sari.token),
        principal(UserId(dewi), Role::Customer, &dewi_token),
    );
    let copied = eventually(deadline, || async {
        matches!(asker.access_token_revoked(&rani_p).await, Ok(true))
            && matches!(asker.access_token_revoked(&ayu_p).await, Ok(true))
            && matches!(asker.access_token_revoked(&dewi_p).await, Ok(true))
    })
    .await;
    assert!(copied, "the revocations were not copied back into Redis within {REBUILD_LIMIT:?}");
    assert!(!asker.access_token_revoked(&sari_p).await.expect("asked"), "nothing else is revoked");

    // And the serving process refuses them again, while Sari's token works.
    let refused = eventually(deadline, || async {
        status(rani.token.clone()).await == 401
            && status(ayu.token.clone()).await == 401
            && status(dewi_token.clone()).await == 401
    })
    .await;
    assert!(refused, "revoked tokens still worked {REBUILD_LIMIT:?} after Redis came back");
    assert_eq!(status(sari.token.clone()).await, 200);
    asker.close().await;
    drop((ayu, rani, sari));
}
