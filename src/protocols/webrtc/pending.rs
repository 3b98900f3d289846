//! Sessions answered whose ICE has not connected yet. Each holds a webrtcbin (sockets and
//! about six threads) until it connects or `ice_timeout` passes, so their number is bounded
//! per client address and in total; a slot is given back when the session connects or ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Why no slot was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PendingRefused {
    /// This address has too many sessions still connecting (HTTP 429).
    #[error("{0} WebRTC sessions from this address are still connecting (webrtc.max_pending_per_address); try again once they connect or time out")]
    PerAddress(usize),
    /// The gateway has too many sessions still connecting (HTTP 503).
    #[error("{0} WebRTC sessions are still connecting (webrtc.max_pending); try again shortly")]
    Total(usize),
}

#[derive(Default)]
struct Counts {
    by_address: HashMap<IpAddr, usize>,
    total: usize,
}

/// The pending sessions by address (cheap to clone).
#[derive(Clone)]
pub struct Pending {
    counts: Arc<Mutex<Counts>>,
    per_address: usize,
    total: usize,
}

/// One pending session's place; dropping it gives the place back.
pub struct PendingSlot {
    counts: Arc<Mutex<Counts>>,
    address: Option<IpAddr>,
}

impl Pending {
    pub fn new(per_address: usize, total: usize) -> Pending {
        Pending { counts: Arc::default(), per_address, total }
    }

    fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
        counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot for a session from `address` (none: counted only in the total).
    pub fn acquire(&self, address: Option<IpAddr>) -> Result<PendingSlot, PendingRefused> {
        let mut counts = Self::lock(&self.counts);
        if counts.total >= self.total {
            return Err(PendingRefused::Total(counts.total));
        }
        if let Some(ip) = address {
            let n = counts.by_address.entry(ip).or_default();
            if *n >= self.per_address {
                return Err(PendingRefused::PerAddress(*n));
            }
            *n += 1;
        }
        counts.total += 1;
        Ok(PendingSlot { counts: self.counts.clone(), address })
    }

    /// Sessions still connecting now.
    pub fn len(&self) -> usize {
        Self::lock(&self.counts).total
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut counts = Pending::lock(&self.counts);
        counts.total = counts.total.saturating_sub(1);
        if let Some(ip) = self.address {
            if let Some(n) = counts.by_address.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.by_address.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_address_and_in_total_and_come_back() {
        let pending = Pending::new(2, 3);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = pending.acquire(Some(a));
        let a2 = pending.acquire(Some(a));
        assert!(a1.is_ok() && a2.is_ok());
        assert_eq!(pending.acquire(Some(a)).err(), Some(PendingRefused::PerAddress(2)));
        let b1 = pending.acquire(Some(b));
        assert!(b1.is_ok());
        assert_eq!(pending.acquire(Some(b)).err(), Some(PendingRefused::Total(3)));
        drop(a1);
        assert_eq!(pending.len(), 2);
        assert!(pending.acquire(Some(a)).is_ok(), "a slot given back is usable again");
        drop((a2, b1));
        assert_eq!(pending.len(), 0);
        assert!(Pending::lock(&pending.counts).by_address.is_empty());
    }
}
