//! The `nats` input's fetch loop: one task on the I/O runtime that (re)creates the input's
//! durable pull consumer at the input's start sequence and queues its messages, in stream order,
//! for the input.
//!
//! Contract:
//! - **Start.** The consumer is deleted and created again each time the loop starts a session,
//!   at `ByStartSequence(next)` where `next` is the sequence after the last message queued (at
//!   first: the position the checkpoint restored). With no position, it starts after the ack
//!   floor of the durable consumer an earlier run left, else where `deliver` says. So where
//!   reading resumes is decided by the stream's checkpoint, never by deliveries a dead process
//!   left pending at the server (those come back only after `ack_wait`, out of order).
//! - **Order.** Messages are queued in stream order; a redelivery of a message before `next`
//!   (its `ack_wait` ran out while its checkpoint was pending) is dropped, as it was read. A gap
//!   in the consumer's delivery sequence (messages delivered to another client: a zombie process
//!   on the same `durable`) ends the session, and the next one starts again at `next`, so
//!   nothing is skipped.
//! - **Errors.** A lost connection or a failed request ends the session, logged, and another
//!   starts a second later at `next`. A missing JetStream stream and a consumer deleted under the
//!   loop (another process started with the same `durable`) are fatal: queued as `Item::Fatal`.
//! - **End** (`stop_at_end`). The stream's last sequence when the loop first reached it is the
//!   end: the loop queues `Item::End` after the message at or past it, or when it idles with
//!   nothing pending for the consumer and every message it delivered received.
//! - **Backpressure.** At most `max_pending` messages wait; the loop stops pulling until there is
//!   room.

use super::input::{Deliver, NatsInputConfig};
use async_nats::jetstream::{self, consumer::pull, consumer::AckPolicy, consumer::DeliverPolicy};
use crossbeam_channel::{Sender, TrySendError};
use futures::StreamExt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// What the loop queues for the input.
pub(super) enum Item {
    /// A message, its stream sequence and publish time (ms).
    Msg { seq: u64, published_ms: i64, msg: Box<jetstream::Message> },
    /// The input cannot go on.
    Fatal(String),
    /// `stop_at_end`: everything up to the end was queued.
    End,
}

/// Why a session ended.
enum End {
    Stopped,
    Retry(String),
    Fatal(String),
}

pub(super) struct Fetch {
    pub cfg: NatsInputConfig,
    pub durable: String,
    /// The stream sequence to read next; None: none restored.
    pub next: Option<u64>,
    pub tx: Sender<Item>,
    pub stop: Arc<AtomicBool>,
    /// `stop_at_end`: the last sequence to read, once known.
    pub end: Option<u64>,
}

impl Fetch {
    /// Runs sessions until stopped or a fatal error (queued).
    pub async fn run(mut self) {
        let what = format!("nats input {} stream {}", self.cfg.conn.describe(), self.cfg.stream);
        let client = match self.cfg.conn.connect(&format!("arkflow {}", self.durable)).await {
            Ok(c) => c,
            Err(e) => return drop(self.tx.send(Item::Fatal(format!("{e:#}")))),
        };
        let js = jetstream::new(client);
        loop {
            match self.session(&js).await {
                End::Stopped => return,
                End::Fatal(e) => return drop(self.tx.send(Item::Fatal(format!("{what}: {e}")))),
                End::Retry(e) => {
                    tracing::warn!("{what}: {e}; starting again in 1 s at sequence {}", self.next.map_or("(none yet)".into(), |n| n.to_string()));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if self.stop.load(Relaxed) {
                        return;
                    }
                }
            }
        }
    }

    /// Where a new consumer starts.
    async fn start(&self, stream: &jetstream::stream::Stream) -> Result<DeliverPolicy, End> {
        use async_nats::jetstream::context::ConsumerInfoErrorKind as K;
        if let Some(n) = self.next {
            return Ok(DeliverPolicy::ByStartSequence { start_sequence: n });
        }
        match stream.consumer_info(&self.durable).await {
            Ok(info) => Ok(DeliverPolicy::ByStartSequence { start_sequence: info.ack_floor.stream_sequence + 1 }),
            Err(e) if e.kind() == K::NotFound => Ok(match self.cfg.deliver {
                Deliver::All => DeliverPolicy::All,
                Deliver::New => DeliverPolicy::New,
                Deliver::Last => DeliverPolicy::Last,
            }),
            Err(e) => Err(End::Retry(format!("reading consumer {}: {e}", self.durable))),
        }
    }

    async fn session(&mut self, js: &jetstream::Context) -> End {
        use async_nats::jetstream::context::GetStreamErrorKind as G;
        let stream = match js.get_stream(&self.cfg.stream).await {
            Ok(s) => s,
            Err(e) if matches!(e.kind(), G::JetStream(ref j) if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) => {
                return End::Fatal("no such JetStream stream (create it first, e.g. `nats stream add`)".into())
            }
            Err(e) => return End::Retry(format!("looking up the stream: {e}")),
        };
        if self.cfg.stop_at_end && self.end.is_none() {
            match stream.get_info().await {
                Ok(info) => self.end = Some(info.state.last_sequence),
                Err(e) => return End::Retry(format!("reading the stream's last sequence: {e}")),
            }
        }
        let deliver_policy = match self.start(&stream).await {
            Ok(p) => p,
            Err(end) => return end,
        };
        let _ = stream.delete_consumer(&self.durable).await;
        let config = pull::Config {
            durable_name: Some(self.durable.clone()),
            deliver_policy,
            ack_policy: AckPolicy::All,
            ack_wait: Duration::from_millis(self.cfg.ack_wait_ms),
            filter_subject: self.cfg.subject.clone().unwrap_or_default(),
            max_ack_pending: -1,
            ..Default::default()
        };
        let consumer = match stream.create_consumer(config).await {
            Ok(c) => c,
            Err(e) => return End::Retry(format!("creating consumer {}: {e}", self.durable)),
        };
        let pulled = consumer.stream().max_messages_per_batch(self.cfg.batch_size.min(self.cfg.max_pending)).heartbeat(Duration::from_secs(5)).messages().await;
        let mut messages = match pulled {
            Ok(m) => m,
            Err(e) => return End::Retry(format!("pulling from consumer {}: {e}", self.durable)),
        };
        tracing::info!(durable = %self.durable, start = ?deliver_policy, "nats input: consuming stream {}", self.cfg.stream);
        self.pump(&consumer, &mut messages).await
    }

    /// Queues the session's messages until it ends.
    async fn pump(&mut self, consumer: &jetstream::consumer::Consumer<pull::Config>, messages: &mut pull::Stream) -> End {
        use async_nats::jetstream::consumer::pull::MessagesErrorKind as M;
        let mut last_delivery: Option<u64> = None;
        loop {
            if self.stop.load(Relaxed) {
                return End::Stopped;
            }
            let msg = match tokio::time::timeout(Duration::from_millis(200), messages.next()).await {
                Err(_) => {
                    // Caught up: nothing left for the consumer, and all it delivered was received.
                    let received = self.next.unwrap_or(0).max(1);
                    if self.end.is_some() && consumer.get_info().await.is_ok_and(|i| i.num_pending == 0 && i.delivered.stream_sequence < received) {
                        return self.finish().await;
                    }
                    continue;
                }
                Ok(None) => return End::Retry("the consumer's message stream ended".into()),
                Ok(Some(Err(e))) if e.kind() == M::ConsumerDeleted => {
                    return End::Fatal(format!(
                        "consumer {} was deleted: another process started with the same `durable`, or an operator deleted it",
                        self.durable
                    ))
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(durable = %self.durable, "nats input: {e}");
                    continue;
                }
                Ok(Some(Ok(m))) => m,
            };
            let (seq, delivery, published_ms) = match msg.info() {
                Ok(i) => (i.stream_sequence, i.consumer_sequence, (i.published.unix_timestamp_nanos() / 1_000_000) as i64),
                Err(e) => return End::Retry(format!("a message without JetStream metadata: {e}")),
            };
            if self.next.is_some_and(|n| seq < n) {
                continue;
            }
            // Every new message this consumer delivers comes here, one delivery sequence after
            // the other: a gap means deliveries went elsewhere (a second process pulling from the
            // same durable, a message the client dropped), and reading on would skip them.
            if last_delivery.is_some_and(|d| delivery != d + 1) {
                return End::Retry(format!("consumer {} delivered messages to another client (another process on the same `durable`?)", self.durable));
            }
            last_delivery = Some(delivery);
            if self.end.is_some_and(|e| seq > e) {
                return self.finish().await;
            }
            self.next = Some(seq + 1);
            if !self.queue(Item::Msg { seq, published_ms, msg: Box::new(msg) }).await {
                return End::Stopped;
            }
            if self.end.is_some_and(|e| seq >= e) {
                return self.finish().await;
            }
        }
    }

    /// Queues `Item::End`: the loop is done.
    async fn finish(&self) -> End {
        self.queue(Item::End).await;
        End::Stopped
    }

    /// Queues `item`, waiting while the queue is full; false when stopped or the input is gone.
    async fn queue(&self, mut item: Item) -> bool {
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => item = back,
            }
            if self.stop.load(Relaxed) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
