//! What a consumer holds while attached: its entry in the stream's consumer table and a share
//! of every conversion it uses. Dropping the lease detaches it and lets unused conversions go.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::conversion::Conversion;
use super::metrics::Metrics;
use super::observer::{Activity, ObserverSlot};
use super::stream::{lock, ConsumerMeta, Stream};
use super::track::TrackOutput;

pub struct ConsumerLease {
    pub(super) stream: Arc<Stream>,
    pub(super) meta: Arc<ConsumerMeta>,
    pub(super) conversions: Vec<Arc<Conversion>>,
    pub(super) grace: Duration,
    pub(super) metrics: Arc<Metrics>,
    /// Told when the consumer detaches (`stop`).
    pub(super) observer: ObserverSlot,
    /// Bytes out not yet added to the gateway-wide counter (see [`METRICS_BATCH`]).
    pub(super) unreported: AtomicU64,
}

/// Bytes out are added to the gateway-wide counter (one cache line every consumer's task
/// writes) in steps of about this much, not once per write; the consumer's own counter is
/// exact.
const METRICS_BATCH: u64 = 16 * 1024;

impl ConsumerLease {
    pub fn add_bytes_out(&self, n: usize) {
        self.meta.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
        let unreported = self.unreported.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if unreported >= METRICS_BATCH {
            self.report_bytes_out();
        }
    }

    fn report_bytes_out(&self) {
        let n = self.unreported.swap(0, Ordering::Relaxed);
        if n > 0 {
            self.metrics.add_bytes_out(self.meta.protocol, n);
        }
    }

    /// Gives back this consumer's share of the conversion that makes `output` (nothing for a
    /// source track): the consumer no longer reads it.
    pub(super) fn release_output(&mut self, output: &Arc<TrackOutput>) {
        if let Some(at) = self.conversions.iter().position(|c| Arc::ptr_eq(&c.output, output)) {
            let conversion = self.conversions.remove(at);
            release(&self.stream, conversion, self.grace);
        }
    }
}

impl Drop for ConsumerLease {
    fn drop(&mut self) {
        self.report_bytes_out();
        lock(&self.stream.consumers).remove(&self.meta.id);
        if self.meta.transport != super::RELAY_TRANSPORT {
            self.observer.notify(Activity::Stop, self.meta.protocol, &self.stream.key, self.meta.remote.as_deref());
        }
        for conversion in self.conversions.drain(..) {
            release(&self.stream, conversion, self.grace);
        }
    }
}

/// One consumer less; the last one out schedules the conversion's teardown.
fn release(stream: &Arc<Stream>, conversion: Arc<Conversion>, grace: Duration) {
    let left = {
        let _guard = lock(&stream.conversions);
        conversion.consumers.fetch_sub(1, Ordering::AcqRel) - 1
    };
    if left > 0 {
        return;
    }
    let stream = stream.clone();
    let teardown = move || {
        let mut conversions = lock(&stream.conversions);
        let still_ours = conversions.get(&conversion.key).is_some_and(|c| Arc::ptr_eq(c, &conversion));
        if still_ours && conversion.consumers.load(Ordering::Acquire) == 0 {
            conversions.remove(&conversion.key);
            drop(conversions);
            conversion.stop();
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if !grace.is_zero() => {
            handle.spawn(async move {
                tokio::time::sleep(grace).await;
                teardown();
            });
        }
        _ => teardown(),
    }
}
