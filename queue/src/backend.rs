//! The apalis backend: how a worker gets jobs from a queue and reports what it did.
//!
//! One [`RedisBackend`] per apalis worker, with a consumer identity unique to it
//! (`host-pid-random`), so restarts never collide. When the worker first polls it, the backend
//! starts four tasks, each with its own reconnecting connection, each logging and backing off
//! on Redis errors rather than ending (a worker must outlive a Redis restart):
//!
//! - **fetch**: `XREADGROUP … BLOCK` for as many jobs as the worker has room for (the read
//!   itself leases them), and, every third of a lease, a reclaim pass that moves jobs whose
//!   lease ran out to new entries (any worker then reads them);
//! - **promote**: moves due delayed jobs to the stream in bounded batches;
//! - **renew**: renews the leases of jobs this worker still holds, every third of a lease (one
//!   `XCLAIM` for all of them);
//! - **ack**: applies handlers' outcomes in batches (one script per batch).
//!
//! The middleware ([`AckLayer`]) turns each handler's [`Outcome`](crate::Outcome) (or error,
//! which dead-letters the job with the error as reason) into an acknowledgement. On close the
//! backend stops fetching, gives back jobs it fetched but never started, and flushes acks.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::error::BoxDynError;
use apalis_core::task::Task;
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_core::worker::context::WorkerContext;
use backon::BackoffBuilder;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::QueueConfig;
use crate::connection::{RedisConnection, RedisTarget, Timeouts};
use crate::delivery::LostLeases;
use crate::error::QueueError;
use crate::outcome::JobResponse;
use crate::store::{RawJob, RawOutcome, Store};

/// Acks applied per script call.
const ACK_BATCH: usize = 256;

/// The stream entry a task was delivered from: its lease, and what its outcome acknowledges.
/// Outcomes are matched to entries, never to job ids: a worker may hold a job's new entry (it
/// took the job over after its own lease on the old one ran out) while a run of the old one is
/// still finishing, and that run's outcome must not acknowledge the new entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry(String);

/// State shared by the backend's tasks and its middleware.
#[derive(Debug)]
pub struct Shared {
    /// Jobs fetched by this worker and not yet acknowledged, by stream entry id.
    inflight: Mutex<HashMap<String, RawJob>>,
    acks: mpsc::UnboundedSender<(RawJob, RawOutcome)>,
    queue: String,
}

impl Shared {
    fn inflight(&self) -> std::sync::MutexGuard<'_, HashMap<String, RawJob>> {
        self.inflight.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finish(&self, entry: &str, outcome: RawOutcome) {
        let job = self.inflight().get(entry).cloned();
        match job {
            Some(job) => {
                let _ = self.acks.send((job, outcome));
            }
            None => {
                tracing::error!(queue = %self.queue, entry, "outcome for a job this worker does not hold")
            }
        }
    }
}

type CloseFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An apalis [`Backend`] over a Flint queue. Build it with [`crate::Queue::backend`].
pub struct RedisBackend<Args> {
    store: Store,
    target: RedisTarget,
    consumer: String,
    shared: Arc<Shared>,
    ack_rx: Option<mpsc::UnboundedReceiver<(RawJob, RawOutcome)>>,
    rx: Option<mpsc::Receiver<Task<Args>>>,
    stop: Option<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
    closing: Option<CloseFuture>,
    _args: PhantomData<fn() -> Args>,
}

impl<Args> std::fmt::Debug for RedisBackend<Args> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("queue", &self.store.config.name)
            .field("consumer", &self.consumer)
            .finish()
    }
}

/// `prefix-pid-random` (the prefix is the worker's name, else the host name): unique per
/// process and per backend, readable in `XINFO CONSUMERS`.
fn consumer_name(prefix: Option<&str>) -> String {
    let prefix = prefix.map_or_else(
        || {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "host".to_owned())
        },
        str::to_owned,
    );
    format!("{prefix}-{}-{}", std::process::id(), crate::token(8))
}

impl<Args> RedisBackend<Args> {
    pub(crate) fn new(store: Store, target: RedisTarget) -> Self {
        let consumer = consumer_name(store.config.consumer_prefix.as_deref());
        let (acks, ack_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            inflight: Mutex::default(),
            acks,
            queue: store.config.name.clone(),
        });
        RedisBackend {
            store,
            target,
            consumer,
            shared,
            ack_rx: Some(ack_rx),
            rx: None,
            stop: None,
            tasks: Vec::new(),
            closing: None,
            _args: PhantomData,
        }
    }

    /// This worker's identity in the consumer group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }
}

impl<Args: DeserializeOwned + Send + 'static> RedisBackend<Args> {
    fn start(&mut self) {
        if self.stop.is_some() {
            return;
        }
        let (stop_tx, stop) = watch::channel(false);
        let (tx, rx) = mpsc::channel(self.store.config.batch);
        let ack_rx = self
            .ack_rx
            .take()
            .expect("the ack receiver is taken once, at start");
        let ctx = Ctx {
            store: self.store.clone(),
            target: self.target.clone(),
            consumer: self.consumer.clone(),
            shared: Arc::clone(&self.shared),
            stop,
        };
        self.tasks.push(tokio::spawn(fetch(ctx.clone(), tx)));
        self.tasks.push(tokio::spawn(promote(ctx.clone())));
        self.tasks.push(tokio::spawn(renew(ctx.clone())));
        self.tasks.push(tokio::spawn(ack(ctx, ack_rx)));
        self.rx = Some(rx);
        self.stop = Some(stop_tx);
        tracing::info!(queue = %self.store.config.name, consumer = %self.consumer, "queue worker started");
    }
}

impl<Args: DeserializeOwned + Send + 'static> Backend for RedisBackend<Args> {
    type Task = Task<Args>;
    type Error = std::convert::Infallible;

    fn poll_ready(
        &mut self,
        _cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        self.start();
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        self.start();
        match self.rx.as_mut().map(|rx| rx.poll_recv(cx)) {
            Some(Poll::Ready(Some(task))) => Poll::Ready(Some(Ok(task))),
            // The fetcher only ends on close; until then there is always more to wait for.
            Some(Poll::Ready(None)) => Poll::Ready(None),
            Some(Poll::Pending) | None => Poll::Pending,
        }
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        _worker: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        if self.closing.is_none() {
            if let Some(stop) = &self.stop {
                let _ = stop.send(true);
            }
            let tasks = std::mem::take(&mut self.tasks);
            let rx = self.rx.take();
            let (store, target, consumer, shared) = (
                self.store.clone(),
                self.target.clone(),
                self.consumer.clone(),
                Arc::clone(&self.shared),
            );
            self.closing = Some(Box::pin(async move {
                // Jobs fetched but never handed to a handler go back to the queue at once.
                let mut unstarted = Vec::new();
                if let Some(mut rx) = rx {
                    rx.close();
                    while let Ok(task) = rx.try_recv() {
                        if let Some(Entry(entry)) = task.data().get::<Entry>()
                            && let Some(job) = shared.inflight().remove(entry)
                        {
                            unstarted.push(job);
                        }
                    }
                }
                for task in tasks {
                    let _ = task.await;
                }
                // Anything still held had no outcome (its handler never finished): release it too.
                unstarted.extend(shared.inflight().drain().map(|(_, job)| job));
                if !unstarted.is_empty() {
                    match target.connect(Timeouts::default()).await {
                        Ok(mut conn) => match store.release(&mut conn, &consumer, &unstarted).await
                        {
                            Ok(n) => {
                                tracing::info!(queue = %store.config.name, released = n, "gave back unstarted jobs")
                            }
                            Err(e) => {
                                tracing::warn!(queue = %store.config.name, error = %e, "could not give back unstarted jobs; their leases will expire")
                            }
                        },
                        Err(e) => {
                            tracing::warn!(queue = %store.config.name, error = %e, "could not give back unstarted jobs; their leases will expire")
                        }
                    }
                }
                tracing::info!(queue = %store.config.name, consumer = %consumer, "queue worker stopped");
            }));
        }
        match self.closing.as_mut().map(|f| f.as_mut().poll(cx)) {
            Some(Poll::Pending) => Poll::Pending,
            Some(Poll::Ready(())) | None => Poll::Ready(Ok(())),
        }
    }
}

impl<Args> BackendConfig for RedisBackend<Args> {
    type Args = Args;
    type Id = String;
    type Kind = Ephemeral;
    type Config = QueueConfig;
    type Layer = AckLayer;

    fn config(&self) -> &QueueConfig {
        &self.store.config
    }

    fn middleware(&mut self, _worker: &mut WorkerContext) -> AckLayer {
        AckLayer {
            shared: Arc::clone(&self.shared),
        }
    }
}

/// Middleware that turns each handler's response into an acknowledgement.
#[derive(Debug, Clone)]
pub struct AckLayer {
    shared: Arc<Shared>,
}

impl<S> tower::Layer<S> for AckLayer {
    type Service = AckService<S>;

    fn layer(&self, inner: S) -> AckService<S> {
        AckService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AckService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, Args> tower::Service<Task<Args>> for AckService<S>
where
    S: tower::Service<Task<Args>>,
    S::Future: Send + 'static,
    S::Response: JobResponse + Send,
    S::Error: Into<BoxDynError>,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxDynError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxDynError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let entry = task.data().get::<Entry>().cloned();
        let shared = Arc::clone(&self.shared);
        let fut = self.inner.call(task);
        Box::pin(async move {
            let result = fut.await.map_err(Into::into);
            let outcome = match &result {
                Ok(response) => response.outcome().into(),
                Err(e) => RawOutcome::Dead(format!("handler failed: {e}")),
            };
            if let Some(Entry(entry)) = entry {
                shared.finish(&entry, outcome);
            }
            result
        })
    }
}

/// What every background task needs.
#[derive(Clone)]
struct Ctx {
    store: Store,
    target: RedisTarget,
    consumer: String,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
}

impl Ctx {
    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    fn queue(&self) -> &str {
        &self.store.config.name
    }

    /// Completes once stop has been requested (at once if it already was).
    async fn stop_requested(&mut self) {
        let _ = self.stop.wait_for(|stop| *stop).await;
    }

    /// Sleeps `d` or until stop; returns whether stop was requested.
    async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(d) => self.stopped(),
            () = self.stop_requested() => true,
        }
    }

    /// A connection, retried with backoff until it works or the worker stops.
    async fn connect(&mut self, timeouts: Timeouts) -> Option<RedisConnection> {
        let mut backoff = backoff();
        loop {
            if self.stopped() {
                return None;
            }
            match self.target.connect(timeouts).await {
                Ok(conn) => return Some(conn),
                Err(e) => {
                    let wait = backoff.next().unwrap_or(Duration::from_secs(2));
                    tracing::warn!(queue = %self.queue(), error = %e, retry_in_ms = wait.as_millis() as u64, "redis unreachable");
                    if self.pause(wait).await {
                        return None;
                    }
                }
            }
        }
    }
}

/// Exponential backoff with jitter for Redis errors: 50 ms doubling to 2 s, forever.
fn backoff() -> impl Iterator<Item = Duration> {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_jitter()
        .without_max_times()
        .build()
}

async fn fetch<Args: DeserializeOwned + Send + 'static>(
    mut ctx: Ctx,
    tx: mpsc::Sender<Task<Args>>,
) {
    let Some(mut conn) = ctx
        .connect(Timeouts::blocking(ctx.store.config.block))
        .await
    else {
        return;
    };
    let reclaim_every = ctx.store.config.lease / 3;
    let mut last_reclaim: Option<Instant> = None;
    // Where the last XAUTOCLAIM scan stopped; "0-0" once a scan has covered the whole list.
    let mut reclaim_cursor = "0-0".to_owned();
    let mut backoff = backoff();
    loop {
        if ctx.stopped() {
            return;
        }
        // Wait for room, so that no more jobs are leased than the worker can start soon.
        let room = tokio::select! {
            permit = tx.reserve() => match permit {
                Ok(permit) => { drop(permit); tx.capacity().clamp(1, ctx.store.config.batch) }
                Err(_) => return,
            },
            () = ctx.stop_requested() => return,
        };
        let reclaim_due =
            reclaim_cursor != "0-0" || last_reclaim.is_none_or(|at| at.elapsed() >= reclaim_every);
        if reclaim_due {
            last_reclaim = Some(Instant::now());
            match ctx
                .store
                .reclaim(&mut conn, &ctx.consumer, &reclaim_cursor, RECLAIM_BATCH)
                .await
            {
                Ok(reclaimed) => {
                    reclaim_cursor = reclaimed.cursor;
                    if reclaimed.moved > 0 {
                        tracing::warn!(queue = %ctx.queue(), count = reclaimed.moved, "took over jobs whose lease ran out");
                    }
                    if reclaimed.dead > 0 {
                        tracing::error!(queue = %ctx.queue(), count = reclaimed.dead, "dead-lettered jobs whose lease ran out too often in a row");
                    }
                    continue;
                }
                Err(e) => {
                    reclaim_cursor = "0-0".to_owned();
                    if handle_error(&mut ctx, &mut conn, &mut backoff, e).await {
                        return;
                    }
                    continue;
                }
            }
        }
        // Stop does not wait out a long blocking read. Should jobs arrive for a read dropped
        // here, they stay leased to this consumer and another worker reclaims them after the
        // lease: delayed, never lost.
        let mut stop = ctx.stop.clone();
        let read = tokio::select! {
            read = ctx.store.read_new(&mut conn, &ctx.consumer, room) => read,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        match read {
            Ok(jobs) => {
                backoff = self::backoff();
                for job in jobs {
                    deliver(&ctx, &tx, job);
                }
            }
            Err(e) => {
                if handle_error(&mut ctx, &mut conn, &mut backoff, e).await {
                    return;
                }
            }
        }
    }
}

/// Jobs moved per reclaim pass.
const RECLAIM_BATCH: usize = 100;

/// A failed fetch or reclaim: a lost consumer group (Redis lost its data) is recreated at
/// once; anything else waits out the backoff. Returns whether the worker is stopping.
async fn handle_error(
    ctx: &mut Ctx,
    conn: &mut RedisConnection,
    backoff: &mut impl Iterator<Item = Duration>,
    e: QueueError,
) -> bool {
    match e {
        QueueError::Redis(ref re) if re.code() == Some("NOGROUP") => {
            tracing::warn!(queue = %ctx.queue(), "consumer group missing (redis lost its data?); recreating it");
            if let Err(e) = ctx.store.ensure_group(conn).await {
                tracing::warn!(queue = %ctx.queue(), error = %e, "cannot recreate the consumer group");
            }
            false
        }
        e => {
            let wait = backoff.next().unwrap_or(Duration::from_secs(2));
            tracing::warn!(queue = %ctx.queue(), error = %e, retry_in_ms = wait.as_millis() as u64, "fetch failed");
            ctx.pause(wait).await
        }
    }
}

/// Hands one fetched job to the worker, or dead-letters it when it cannot be decoded.
fn deliver<Args: DeserializeOwned>(ctx: &Ctx, tx: &mpsc::Sender<Task<Args>>, job: RawJob) {
    ctx.shared
        .inflight()
        .insert(job.entry_id.clone(), job.clone());
    match serde_json::from_slice::<Args>(&job.payload) {
        Ok(args) => {
            let task = TaskBuilder::new(args)
                .task_id(TaskId::from_string(job.id.clone()))
                .data(LostLeases(job.lost_leases))
                .data(Entry(job.entry_id.clone()))
                .build();
            if tx.try_send(task).is_err() {
                // Only this task sends, after reserving room; a full channel means the worker
                // is closing. The job stays held and is released on close.
                tracing::debug!(queue = %ctx.queue(), job_id = %job.id, "worker closing; job not started");
            }
        }
        Err(e) => {
            tracing::error!(queue = %ctx.queue(), job_id = %job.id, error = %e, "undecodable job dead-lettered");
            ctx.shared.finish(
                &job.entry_id,
                RawOutcome::Dead(format!("undecodable payload: {e}")),
            );
        }
    }
}

/// How often each worker looks for consumers of exited processes.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

async fn promote(mut ctx: Ctx) {
    let Some(mut conn) = ctx.connect(Timeouts::default()).await else {
        return;
    };
    let mut backoff = backoff();
    let mut last_prune = Instant::now();
    loop {
        if ctx.stopped() {
            return;
        }
        if last_prune.elapsed() >= PRUNE_EVERY.min(ctx.store.config.consumer_idle_limit) {
            last_prune = Instant::now();
            match ctx.store.prune_consumers(&mut conn).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(queue = %ctx.queue(), removed = n, "removed consumers of exited workers")
                }
                Err(e) => {
                    tracing::warn!(queue = %ctx.queue(), error = %e, "pruning consumers failed")
                }
            }
        }
        let wait = match ctx.store.promote(&mut conn).await {
            Ok((moved, next_due)) => {
                backoff = self::backoff();
                if moved as usize >= ctx.store.config.promote_batch {
                    continue; // more are due right now
                }
                let until_next = next_due.map_or(Duration::from_millis(250), |due| {
                    Duration::from_millis(due.saturating_sub(crate::store::now_ms()))
                });
                until_next.min(Duration::from_millis(250))
            }
            Err(e) => {
                let wait = backoff.next().unwrap_or(Duration::from_secs(2));
                tracing::warn!(queue = %ctx.queue(), error = %e, "promoting delayed jobs failed");
                wait
            }
        };
        if ctx.pause(wait).await {
            return;
        }
    }
}

async fn renew(mut ctx: Ctx) {
    let Some(mut conn) = ctx.connect(Timeouts::default()).await else {
        return;
    };
    let every = ctx.store.config.renew_interval();
    // Entries whose lease this worker lost, reported once each.
    let mut lost = std::collections::HashSet::new();
    loop {
        if ctx.pause(every).await {
            return;
        }
        let entries: Vec<(String, String)> = ctx
            .shared
            .inflight()
            .values()
            .map(|j| (j.entry_id.clone(), j.id.clone()))
            .collect();
        // An entry id per job run: a job taken over by this very worker has two (the old one
        // lost), and only the new one can still be renewed.
        lost.retain(|entry| entries.iter().any(|(e, _)| e == entry));
        for chunk in entries.chunks(500) {
            let ids: Vec<String> = chunk.iter().map(|(e, _)| e.clone()).collect();
            match ctx.store.renew(&mut conn, &ctx.consumer, &ids).await {
                Ok(renewed) => {
                    for (entry, job) in chunk {
                        if !renewed.contains(entry) && lost.insert(entry.clone()) {
                            tracing::warn!(queue = %ctx.queue(), job_id = %job, "lease lost: another worker runs this job now; this run's outcome will be ignored");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(queue = %ctx.queue(), error = %e, "renewing leases failed; will retry");
                    break;
                }
            }
        }
    }
}

async fn ack(mut ctx: Ctx, mut rx: mpsc::UnboundedReceiver<(RawJob, RawOutcome)>) {
    let Some(mut conn) = ctx.connect(Timeouts::default()).await else {
        return;
    };
    let mut batch = Vec::with_capacity(ACK_BATCH);
    loop {
        if batch.is_empty() {
            tokio::select! {
                received = rx.recv() => match received {
                    Some(item) => batch.push(item),
                    None => return,
                },
                () = ctx.stop_requested() => {
                    // Flush what the handlers still report, then end.
                    while let Ok(item) = rx.try_recv() {
                        batch.push(item);
                    }
                    if batch.is_empty() {
                        return;
                    }
                },
            }
        }
        while batch.len() < ACK_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let mut backoff = backoff();
        loop {
            match ctx.store.ack(&mut conn, &batch).await {
                Ok(applied) => {
                    let stale = (batch.len() as u64).saturating_sub(applied);
                    if stale > 0 {
                        // Runs that finished after their lease ran out; the job's new holder
                        // reports for it.
                        tracing::warn!(queue = %ctx.queue(), stale, "outcomes of jobs this worker no longer held were ignored");
                        metrics::counter!(crate::metrics::STALE_OUTCOMES, "queue" => ctx.queue().to_owned())
                            .increment(stale);
                    }
                    break;
                }
                Err(e) => {
                    // Acks are retried until they land: a lost ack would re-run a finished job.
                    let wait = backoff.next().unwrap_or(Duration::from_secs(2));
                    tracing::warn!(queue = %ctx.queue(), error = %e, pending = batch.len(), "acknowledging failed; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
        let mut inflight = ctx.shared.inflight();
        for (job, _) in batch.drain(..) {
            inflight.remove(&job.entry_id);
        }
    }
}
