//! The tasks one hub process runs besides its sockets: the lease heartbeat, the inbox
//! reader that hands events to local sockets (and notices when Redis lost its data), and
//! the route lanes (each user's route changes in order, users side by side).

use std::sync::Arc;
use std::time::Duration;

use domain::auth::Role;
use domain::broker::{self, StreamId};
use domain::capacity::{self, Change};
use domain::event::EventKind;
use domain::ids::MitraId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::Inner;
use crate::registry::{Close, OutboundFrame, RouteChange, RouteOp, Sockets};

/// Route changes run on this many lanes side by side; all of one user's changes take the
/// same lane, in order. One lane for every user made a burst of connections (a reconnect
/// storm) wait for each other's Redis round trips before their `welcome`.
const ROUTE_LANES: u128 = 16;

/// Applies route changes: each user's in the order the registry decided them, different
/// users' side by side.
pub(crate) async fn apply_routes(inner: Arc<Inner>, mut ops: mpsc::UnboundedReceiver<RouteOp>) {
    let lanes: Vec<mpsc::UnboundedSender<RouteOp>> = (0..ROUTE_LANES)
        .map(|_| {
            let (lane, lane_ops) = mpsc::unbounded_channel();
            tokio::spawn(apply_lane(inner.clone(), lane_ops));
            lane
        })
        .collect();
    while let Some(op) = ops.recv().await {
        let lane = (op.user.0.as_u128() % ROUTE_LANES) as usize;
        if let Some(Err(_)) = lanes.get(lane).map(|lane| lane.send(op)) {
            return;
        }
    }
}

/// Applies one lane's route changes in order.
async fn apply_lane(inner: Arc<Inner>, mut ops: mpsc::UnboundedReceiver<RouteOp>) {
    while let Some(op) = ops.recv().await {
        let store = &inner.store;
        let instance = &*inner.instance_id;
        let result = match op.change {
            RouteChange::Add => match broker::add_route(store, op.user, instance).await {
                Ok(()) if op.role == Role::Mitra => {
                    let change = Change::Connected { instance };
                    capacity::changed(&inner.services, MitraId(op.user.0), change).await.map(|changed| {
                        // A mitra who comes online mid-window is offered the open requests,
                        // from a task of its own: the lane goes on to the next change.
                        let services = inner.services.clone();
                        tokio::spawn(async move { changed.offer(&services).await });
                    })
                }
                other => other,
            },
            RouteChange::Remove => match broker::remove_route(store, op.user, instance).await {
                Ok(()) if op.role == Role::Mitra => {
                    let change = Change::Disconnected { instance };
                    // A socket lost makes no room: nothing is offered.
                    capacity::changed(&inner.services, MitraId(op.user.0), change).await.map(drop)
                }
                other => other,
            },
            RouteChange::Ensure => Ok(()),
        };
        if let Err(error) = &result {
            tracing::warn!(%error, user = %op.user, "route change failed");
        }
        if let Some(done) = op.done {
            let _ = done.send(result.is_ok());
        }
    }
}

/// Renews this instance's lease.
pub(crate) async fn heartbeat(inner: Arc<Inner>, shutdown: CancellationToken) {
    let settings = &inner.presence;
    let mut every = tokio::time::interval(Duration::from_millis(settings.heartbeat_ms.max(100)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every.tick() => {}
        }
        if let Err(error) = broker::heartbeat(&inner.store, &inner.instance_id, settings.lease_ms).await {
            tracing::warn!(%error, "hub heartbeat failed");
        }
    }
}

/// Reads this instance's inbox and hands each event to the user's local sockets.
///
/// After a read that failed or found nothing, the reader makes sure the inbox still exists
/// (a busy inbox needs no check: a Redis that restarts breaks the connection, and the read
/// fails). When it is gone, Redis lost its data: the reader opens it again, continues after
/// its opening entry (a restarted Redis's ids need not follow the old ones), and
/// [`recover_routes`] announces every local user again. After a read that failed, or a
/// reconnect of the reader's client (a Redis Cluster failover: entries the old master took
/// but had not copied to its replica are gone without a trace), the same recovery runs once
/// Redis answers again: events may have been lost either way.
pub(crate) async fn read_inbox(inner: Arc<Inner>, shutdown: CancellationToken) {
    let instance = &*inner.instance_id;
    let keep_ms = inner.presence.lease_ms.saturating_mul(6);
    let mut after = "0-0".to_owned();
    let mut check = false;
    // A read failed or the client reconnected since the last recovery.
    let mut interrupted = false;
    while !shutdown.is_cancelled() {
        let mut reader = match broker::inbox_reader(&inner.store).await {
            Ok(reader) => reader,
            Err(error) => {
                tracing::warn!(%error, "inbox connection failed; retrying");
                interrupted = true;
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(500)) => continue,
                }
            }
        };
        loop {
            if check {
                match broker::reopen_inbox(&inner.store, instance, keep_ms).await {
                    Ok(None) => {
                        check = false;
                        if std::mem::take(&mut interrupted) {
                            tokio::spawn(recover_routes(inner.clone(), Lost::Interrupted));
                        }
                    }
                    Ok(Some(opened)) => {
                        after = opened;
                        check = false;
                        interrupted = false;
                        tokio::spawn(recover_routes(inner.clone(), Lost::InboxGone));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "could not check the hub inbox");
                        tokio::select! {
                            () = shutdown.cancelled() => break,
                            () = tokio::time::sleep(Duration::from_millis(200)) => continue,
                        }
                    }
                }
            }
            let batch = tokio::select! {
                () = shutdown.cancelled() => break,
                batch = reader.read(instance, &after, 2_000) => batch,
            };
            if reader.reconnected() {
                interrupted = true;
                check = true;
            }
            let entries = match batch {
                Ok(entries) => entries,
                Err(error) => {
                    tracing::warn!(%error, "inbox read failed");
                    check = true;
                    interrupted = true;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            check |= entries.is_empty();
            for entry in entries {
                after.clone_from(&entry.inbox_id);
                if entry.event.is_empty() {
                    continue;
                }
                let lag_ms = domain::clock::now_ms().saturating_sub(entry.published_ms);
                inner.metrics.hub_stream_lag_seconds.observe(lag_ms as f64 / 1_000.0);
                let kind = entry.kind.map_or("unknown", EventKind::as_str);
                for (user, event_id) in &entry.recipients {
                    let id = event_id.as_deref().and_then(StreamId::parse);
                    let frame = crate::protocol::event_frame(&entry.event, event_id.as_deref());
                    let outbound = Arc::new(OutboundFrame {
                        id,
                        frame: frame.into(),
                        published_ms: entry.published_ms,
                        kind,
                        resync: false,
                    });
                    inner.registry.deliver(*user, &outbound, entry.except_socket);
                }
            }
        }
    }
}

/// Why [`recover_routes`] runs.
#[derive(Clone, Copy, Debug)]
enum Lost {
    /// The inbox was gone: Redis lost its data.
    InboxGone,
    /// A read failed or the reader reconnected (a restart, a failover, a network cut).
    Interrupted,
}

/// A `resync_required` frame saying `reason`: events may have been lost, refetch over REST.
pub(crate) fn resync_frame(reason: &str) -> Arc<OutboundFrame> {
    let data = serde_json::json!({ "reason": reason });
    Arc::new(OutboundFrame {
        id: None,
        frame: crate::protocol::frame("resync_required", data, None).into(),
        published_ms: domain::clock::now_ms(),
        kind: "resync_required",
        resync: true,
    })
}

/// How long [`recover_routes`] keeps announcing a user whose route could not be written (its
/// shard is failing over) before it disconnects them.
const ROUTE_RECOVERY: Duration = Duration::from_secs(15);

/// After Redis lost its data, or events may have been lost on the way (`lost`): announces
/// every local user's route (and mitra connection) again and, as soon as a user's route is
/// back, tells that user's sockets `resync_required`, since events published meanwhile
/// reached the users' streams (or not even those) but not their sockets. A route that cannot
/// be written (on a Redis Cluster, the user's shard may still be failing over while the
/// others answer) is tried again, backing off to 2 s, for [`ROUTE_RECOVERY`]; a user still
/// not routed then is disconnected (1013 `presence_unavailable`) rather than left connected
/// and deaf; the app reconnects and resumes.
async fn recover_routes(inner: Arc<Inner>, lost: Lost) {
    let frame = resync_frame(
        "the server lost events it could not deliver (its event store restarted or failed over); refetch over REST",
    );
    let mut pending = inner.registry.reannounce();
    let users = pending.len();
    let (mut sockets, mut failed) = (0_usize, Vec::new());
    let deadline = tokio::time::Instant::now() + ROUTE_RECOVERY;
    let mut wait = Duration::from_millis(200);
    loop {
        for (user, routed) in pending {
            if routed.await.unwrap_or(false) {
                sockets += inner.registry.deliver(user, &frame, None);
            } else {
                failed.push(user);
            }
        }
        if failed.is_empty() || tokio::time::Instant::now() + wait > deadline {
            break;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
        pending = inner.registry.reannounce_users(&std::mem::take(&mut failed));
    }
    let close = Close { code: axum::extract::ws::close_code::AGAIN, reason: "presence_unavailable".into() };
    for user in &failed {
        inner.registry.close_user(*user, Sockets::All, &close);
    }
    let failed = failed.len();
    match lost {
        Lost::InboxGone => tracing::warn!(
            users,
            failed,
            sockets,
            "the hub inbox was gone (Redis lost its data): routes announced again, sockets told to resync"
        ),
        Lost::Interrupted => tracing::warn!(
            users,
            failed,
            sockets,
            "the hub inbox read was interrupted (Redis restarted, failed over or was cut off): routes announced \
             again, sockets told to resync"
        ),
    }
}
