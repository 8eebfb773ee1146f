//! The agent's one loop: takes watcher events into the outbox, keeps a stream to the
//! controller open (reconnecting with backoff), resends what was not acknowledged after
//! every reconnect, applies acknowledgements and sends heartbeats. Taking events in never
//! waits for the network; when the outbox is full it stops taking them until
//! acknowledgements make room (the watcher keeps them on disk meanwhile).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use jiff::Timestamp;
use tektite_node_agent::{Event, wire};
use tektite_proto::agent as pb;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::http::Health;
use crate::link::{Link, LinkConfig, LinkError};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::pods::{self, PodBook};

pub struct Session {
    pub link: LinkConfig,
    pub outbox: Outbox,
    pub heartbeat: Duration,
    pub book: Arc<Mutex<PodBook>>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

type Connecting = Pin<Box<dyn Future<Output = Result<Link, LinkError>> + Send>>;

fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .without_max_times()
        .build()
}

impl Session {
    /// Runs until `events` closes (the watcher stopped) or `shutdown` completes.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut link: Option<Link> = None;
        let mut connecting: Option<Connecting> = None;
        let mut delays = backoff();
        let mut retry_at = Instant::now();
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut was_full = false;
        tokio::pin!(shutdown);
        loop {
            let room = self.outbox.has_room();
            if !room && !was_full {
                self.metrics.buffer_full.inc();
                tracing::warn!(
                    events = self.outbox.len(),
                    bytes = self.outbox.bytes(),
                    "the unacknowledged-event buffer is full; pausing until the controller acknowledges"
                );
            }
            was_full = !room;
            tokio::select! {
                () = &mut shutdown => break,
                result = async { connecting.as_mut().expect("guarded").await }, if connecting.is_some() => {
                    connecting = None;
                    match result {
                        Ok(opened) => {
                            delays = backoff();
                            link = self.resend(opened);
                        }
                        Err(error) => {
                            let delay = delays.next().unwrap_or(Duration::from_secs(30));
                            tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "no stream to the controller");
                            retry_at = Instant::now() + delay;
                        }
                    }
                }
                () = tokio::time::sleep_until(retry_at), if link.is_none() && connecting.is_none() => {
                    let config = self.link.clone();
                    connecting = Some(Box::pin(async move { Link::open(&config).await }));
                }
                message = async { link.as_mut().expect("guarded").inbound.message().await }, if link.is_some() => {
                    match message {
                        Ok(Some(message)) => self.on_message(message),
                        Ok(None) | Err(_) => {
                            match message {
                                Err(status) => tracing::warn!(%status, "the controller stream failed"),
                                _ => tracing::warn!("the controller closed the stream"),
                            }
                            link = None;
                            self.disconnected();
                            retry_at = Instant::now() + delays.next().unwrap_or(Duration::from_secs(30));
                        }
                    }
                }
                event = events.recv(), if room => {
                    let Some(event) = event else { break };
                    if self.take(event, link.as_ref()).is_err() {
                        tracing::warn!("the controller stream is closed or full; reconnecting");
                        link = None;
                        self.disconnected();
                    }
                }
                _ = heartbeat.tick(), if link.is_some() => {
                    if link.as_ref().expect("guarded").send(self.heartbeat_message()).is_err() {
                        link = None;
                        self.disconnected();
                    }
                }
            }
        }
        self.disconnected();
    }

    /// A new stream: everything unacknowledged goes out again, in order.
    fn resend(&mut self, link: Link) -> Option<Link> {
        let unacked: Vec<pb::Event> = self.outbox.unacked().cloned().collect();
        let count = unacked.len() as u64;
        for event in unacked {
            if link.event(event).is_err() {
                tracing::warn!("the new controller stream closed while resending");
                return None;
            }
        }
        self.metrics.events_resent.inc_by(count);
        self.metrics.events_sent.inc_by(count);
        self.metrics.connects.inc();
        self.metrics.connected.set(1);
        self.health.set_connected(true);
        tracing::info!(address = %self.link.address, resent = count, "streaming to the controller");
        Some(link)
    }

    fn disconnected(&self) {
        self.metrics.connected.set(0);
        self.health.set_connected(false);
    }

    /// Numbers and keeps `event`, and sends it on `link`.
    fn take(&mut self, event: Event, link: Option<&Link>) -> Result<(), crate::link::Broken> {
        let now = Timestamp::now();
        let (name, observations) = pods::lock(&self.book).step_event(&event, now);
        for o in observations {
            o.record(&self.metrics);
        }
        let marked_at = match &event {
            Event::StepStarted { started_at, .. } => *started_at,
            Event::StepFinished { state, .. } => state.finished_at.unwrap_or(now),
            Event::StepUnreadable { .. } | Event::PodGone { .. } => now,
        };
        let wire = self
            .outbox
            .push(marked_at, |seq| wire::to_wire(seq, &event, name.as_deref()))
            .clone();
        self.metrics.unacked.set(self.outbox.len() as i64);
        match link {
            Some(link) => {
                link.event(wire)?;
                self.metrics.events_sent.inc();
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn on_message(&mut self, message: pb::ControllerMessage) {
        match message.body {
            Some(pb::controller_message::Body::Ack(ack)) => {
                if self.outbox.is_beyond(ack.up_to_seq) {
                    tracing::warn!(
                        up_to_seq = ack.up_to_seq,
                        "the controller acknowledged events never sent"
                    );
                }
                let now = Timestamp::now();
                let acked = self.outbox.ack(ack.up_to_seq);
                for a in &acked {
                    let seconds = now.duration_since(a.marked_at).as_secs_f64().max(0.0);
                    self.metrics.marker_to_ack.observe(seconds);
                }
                self.metrics.events_acked.inc_by(acked.len() as u64);
                self.metrics.unacked.set(self.outbox.len() as i64);
            }
            None => tracing::debug!("an empty controller message"),
        }
    }

    fn heartbeat_message(&self) -> pb::AgentMessage {
        let count = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
        pb::AgentMessage {
            body: Some(pb::agent_message::Body::Heartbeat(pb::Heartbeat {
                at: Some(wire::timestamp(Timestamp::now())),
                pods: count(self.metrics.pods.get()),
                watches: count(self.metrics.watches.get()),
                unacked: u32::try_from(self.outbox.len()).unwrap_or(u32::MAX),
            })),
        }
    }
}
