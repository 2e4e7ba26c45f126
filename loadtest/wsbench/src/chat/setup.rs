//! The set-up from the real flows: customers signed in and paid, sockets opened, every
//! customer blasted and paired.

use super::*;

/// Writes everything the set-up left in Postgres' buffers and the kernel's page cache to disk.
///
/// The pairing set-up writes ~85 MB (1,000 blasts, each offered to every available mitra: over
/// 200,000 `chat_request_notifications` rows and their indexes). Left alone, the kernel writes
/// those pages back in one burst about 30 s later, in the middle of the fixed rate, and a WAL
/// `fdatasync` queued behind that burst takes 50–130 ms (measured with `--timings` and the
/// kernel's writeback trace): every message committed then waits for it. The set-up, 45
/// pairings a second each fanned out to hundreds of mitras, is no part of the chat load being
/// measured, so its writes go to disk first; the messages' own write-back stays in the run.
pub(super) async fn checkpoint(store: &Store) -> anyhow::Result<()> {
    sqlx::query("CHECKPOINT").execute(store.pg_pool()).await.context("CHECKPOINT after the set-up")?;
    Ok(())
}

/// Signs `count` customers in (phones `+62813<base + n>`) and pays for each.
pub(super) async fn sign_in_customers(api: &Api, count: usize) -> anyhow::Result<Vec<Customer>> {
    let base = Uuid::new_v4().as_u128() % (100_000_000 - count as u128);
    let customers: Vec<anyhow::Result<Customer>> = futures::stream::iter(0..count)
        .map(|n| async move {
            let phone = format!("+62813{:08}", base + n as u128);
            let session = sign_in_phone(api, &phone).await.context("signing a customer in")?;
            let token = session["access_token"].as_str().context("no access_token")?.to_owned();
            let payment = paid(api, &token).await.context("paying")?;
            Ok(Customer { token, payment })
        })
        .buffered(SETUP_CONCURRENCY)
        .collect()
        .await;
    customers.into_iter().collect()
}

/// Opens one socket per `(token)`; returns the write halves in order and spawns the readers.
/// Fails unless every socket opened.
pub(super) async fn connect(
    cli: &Cli,
    side: Side,
    tokens: Vec<String>,
    ledger: &Arc<Ledger>,
    control: &mpsc::UnboundedSender<Control>,
) -> anyhow::Result<(Vec<Sink>, Vec<tokio::task::JoinHandle<()>>)> {
    let count = tokens.len();
    // The "user id" open_all hands back is the socket's index here.
    let users =
        tokens.into_iter().enumerate().map(|(n, token)| (Uuid::from_u128(n as u128), token)).collect();
    let sockets = open_all(cli, users).await;
    anyhow::ensure!(sockets.len() == count, "only {} of {count} {side:?} sockets opened", sockets.len());
    let mut sinks = Vec::with_capacity(count);
    let mut readers = Vec::with_capacity(count);
    for (n, socket) in sockets {
        let n = usize::try_from(n.as_u128()).unwrap_or(usize::MAX);
        let (sink, stream) = socket.split();
        sinks.push(Arc::new(tokio::sync::Mutex::new(sink)));
        readers.push(spawn_reader(side, n, stream, ledger.clone(), control.clone()));
    }
    Ok((sinks, readers))
}

/// One request's offers and the accept under way.
#[derive(Default)]
pub(super) struct Offer {
    offered: Vec<usize>,
    tried: Vec<usize>,
    trying: bool,
    won: bool,
}

/// What a blast or accept task reports back.
pub(super) enum Outcome {
    Blast { customer: usize, result: anyhow::Result<()> },
    Accept { request: Uuid, mitra: usize, result: anyhow::Result<()> },
}

/// Blasts for every customer ([`BLASTS_IN_FLIGHT`] at a time) and accepts every request
/// once; returns the sessions the customers were told about in `paired`.
pub(super) async fn pair(
    api: &Arc<Api>,
    customers: &[Customer],
    mitras: &[Mitra],
    cap: usize,
    control: &mut mpsc::UnboundedReceiver<Control>,
) -> Vec<Session> {
    let mitra_index: HashMap<Uuid, usize> = mitras.iter().enumerate().map(|(n, m)| (m.id, n)).collect();
    let (report, mut outcomes) = mpsc::unbounded_channel();
    let accepts = Arc::new(Semaphore::new(ACCEPTS_IN_FLIGHT));
    let mut next = 0;
    let mut waiting: HashMap<usize, Instant> = HashMap::new();
    let mut offers: HashMap<Uuid, Offer> = HashMap::new();
    let mut load = vec![0usize; mitras.len()];
    let mut sessions = Vec::with_capacity(customers.len());
    let (mut failed, mut refused_accepts) = (0usize, 0usize);
    let mut tick = tokio::time::interval(Duration::from_secs(1));

    // Starts the accept of `request` by the first mitra offered it that was not tried yet and
    // has room under the cap.
    let try_accept = |request: Uuid, offer: &mut Offer, load: &mut [usize]| {
        if offer.won || offer.trying {
            return;
        }
        let Some(&mitra) = offer.offered.iter().find(|m| !offer.tried.contains(m) && load[**m] < cap) else {
            return;
        };
        offer.trying = true;
        offer.tried.push(mitra);
        load[mitra] += 1;
        let (api, accepts, report) = (api.clone(), accepts.clone(), report.clone());
        let token = mitras[mitra].token.clone();
        tokio::spawn(async move {
            let _permit = accepts.acquire().await;
            let path = format!("/api/mitra/chat-requests/{request}/accept");
            let result = api.call(&path, Some(&token), &json!({}), 200).await.map(drop);
            let _ = report.send(Outcome::Accept { request, mitra, result });
        });
    };

    while next < customers.len() || !waiting.is_empty() {
        while next < customers.len() && waiting.len() < BLASTS_IN_FLIGHT {
            let customer = next;
            next += 1;
            waiting.insert(customer, Instant::now());
            let (api, report) = (api.clone(), report.clone());
            let (token, payment) = (customers[customer].token.clone(), customers[customer].payment);
            tokio::spawn(async move {
                let body = json!({"payment_session_id": payment});
                let result = api.call("/api/client/chat-requests", Some(&token), &body, 201).await.map(drop);
                let _ = report.send(Outcome::Blast { customer, result });
            });
        }
        tokio::select! {
            Some(event) = control.recv() => match event {
                Control::Offered { mitra, request } => {
                    let offer = offers.entry(request).or_default();
                    if !offer.offered.contains(&mitra) {
                        offer.offered.push(mitra);
                    }
                    try_accept(request, offer, &mut load);
                }
                Control::Paired { customer, session, mitra } => {
                    if waiting.remove(&customer).is_some() {
                        match mitra_index.get(&mitra) {
                            Some(&mitra) => sessions.push(Session { id: session, customer, mitra }),
                            None => failed += 1,
                        }
                        if sessions.len() % 100 == 0 {
                            eprintln!("{} sessions paired", sessions.len());
                        }
                    }
                }
                Control::Failed { customer, cause } => {
                    if waiting.remove(&customer).is_some() {
                        failed += 1;
                        eprintln!("customer {customer}: pairing_failed ({cause})");
                    }
                }
            },
            Some(outcome) = outcomes.recv() => match outcome {
                Outcome::Blast { customer, result: Err(error) } => {
                    if waiting.remove(&customer).is_some() {
                        failed += 1;
                        eprintln!("customer {customer}: blast failed: {error:#}");
                    }
                }
                Outcome::Blast { result: Ok(()), .. } => {}
                Outcome::Accept { request, mitra, result } => {
                    let offer = offers.entry(request).or_default();
                    offer.trying = false;
                    match result {
                        Ok(()) => offer.won = true,
                        Err(error) => {
                            load[mitra] -= 1;
                            refused_accepts += 1;
                            if format!("{error:#}").contains("chat_request_taken") {
                                offer.won = true;
                            } else {
                                if refused_accepts <= 5 {
                                    eprintln!("accept of {request} by mitra {mitra} refused: {error:#}");
                                }
                                try_accept(request, offer, &mut load);
                            }
                        }
                    }
                }
            },
            _ = tick.tick() => {
                let late: Vec<usize> =
                    waiting.iter().filter(|(_, at)| at.elapsed() > PAIRED_WITHIN).map(|(c, _)| *c).collect();
                for customer in late {
                    waiting.remove(&customer);
                    failed += 1;
                    eprintln!("customer {customer}: no paired within {} s", PAIRED_WITHIN.as_secs());
                }
            }
        }
    }
    if failed > 0 || refused_accepts > 0 {
        eprintln!("{failed} customers not paired; {refused_accepts} accepts refused");
    }
    sessions
}
