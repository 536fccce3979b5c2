//! The circuit breaker in front of Redis: after a few consecutive failures calls skip
//! Redis for a cool-down, then one request probes it and caching resumes by itself.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// Opens after `threshold` consecutive failures; after the cool-down one caller at a
/// time probes, and a success closes it.
pub(super) struct Breaker {
    pub(super) epoch: Instant,
    pub(super) threshold: u32,
    pub(super) cooldown: Duration,
    pub(super) failures: AtomicU32,
    /// Milliseconds since `epoch` until which Redis is skipped.
    pub(super) open_until: AtomicU64,
    pub(super) probing: AtomicBool,
}

impl Breaker {
    pub(super) fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether this call may use Redis; `Some(true)` when it is the probe.
    pub(super) fn admit(&self) -> Option<bool> {
        if self.failures.load(Ordering::Acquire) < self.threshold {
            return Some(false);
        }
        if self.now_ms() < self.open_until.load(Ordering::Acquire) {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| true)
    }

    pub(super) fn success(&self, probe: bool) {
        self.failures.store(0, Ordering::Release);
        if probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    pub(super) fn failure(&self, probe: bool) {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures >= self.threshold {
            self.open_until.store(
                self.now_ms() + self.cooldown.as_millis() as u64,
                Ordering::Release,
            );
        }
        if probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    pub(super) fn state(&self) -> BreakerState {
        if self.failures.load(Ordering::Acquire) < self.threshold {
            BreakerState::Closed
        } else if self.now_ms() < self.open_until.load(Ordering::Acquire) {
            BreakerState::Open
        } else {
            BreakerState::HalfOpen
        }
    }
}
