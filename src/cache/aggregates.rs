//! The aggregate cache: a report's answer under its versioned key, computed once per
//! key at a time in this process (single flight).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Cache;
use crate::error::AppResult;

/// One computation of a key: callers that miss while it runs wait for its answer, and
/// for a short grace period after it finishes they take it too, so a burst is computed
/// once even when Redis failed to store it. (The key holds the data versions, so this
/// never serves an answer from before a write.)
#[derive(Default)]
pub(super) struct FlightState {
    answer: tokio::sync::OnceCell<Arc<Vec<u8>>>,
    done_at: std::sync::OnceLock<Instant>,
}

pub(super) type Flight = Arc<FlightState>;

/// How long a finished flight still answers its key in this process.
const FLIGHT_GRACE: Duration = Duration::from_secs(2);
/// Above this many flights, finished ones past their grace are dropped.
const FLIGHTS_KEPT: usize = 1024;

impl Cache {
    /// The cached answer for `key`, or `compute`'s (stored for the next caller).
    pub async fn get_or_compute<T, F, Fut>(
        &self,
        key: String,
        bypass: bool,
        compute: F,
    ) -> AppResult<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = AppResult<T>>,
    {
        if bypass {
            self.counters.bypassed.inc();
            self.counters.computations.inc();
            return compute().await;
        }
        if let Some(bytes) = self.get(&key).await {
            match serde_json::from_slice::<T>(&bytes) {
                Ok(value) => {
                    self.counters.hits.inc();
                    return Ok(value);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cache entry does not decode; recomputing");
                    self.counters.corrupt.inc();
                }
            }
        }
        self.counters.misses.inc();
        let expired = |f: &Flight| f.done_at.get().is_some_and(|t| t.elapsed() >= FLIGHT_GRACE);
        let flight: Flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            if flights.len() > FLIGHTS_KEPT {
                flights.retain(|_, f| !expired(f));
            }
            let entry = flights.entry(key.clone()).or_default();
            if expired(entry) {
                *entry = Flight::default();
            }
            entry.clone()
        };
        let bytes = flight
            .answer
            .get_or_try_init(|| async {
                // A flight that finished between our lookup and joining it has already
                // stored the answer: look once more before computing.
                if let Some(bytes) = self.get(&key).await {
                    if serde_json::from_slice::<T>(&bytes).is_ok() {
                        return Ok(Arc::new(bytes));
                    }
                }
                self.counters.computations.inc();
                let value = compute().await?;
                let bytes = serde_json::to_vec(&value).map_err(crate::error::AppError::internal)?;
                self.set(&key, &bytes).await;
                Ok::<_, crate::error::AppError>(Arc::new(bytes))
            })
            .await
            .cloned();
        if bytes.is_ok() {
            flight.done_at.get_or_init(Instant::now);
        } else {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                flights.remove(&key);
            }
        }
        let bytes = bytes?;
        serde_json::from_slice(&bytes).map_err(crate::error::AppError::internal)
    }
}
