//! The Redis connection: one multiplexed connection per process, reconnected after a
//! failure at most once a second, every call bounded by a short timeout and the breaker.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use super::Cache;

impl Cache {
    pub(super) fn current_connection(&self) -> Option<MultiplexedConnection> {
        self.connection
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) async fn connection(&self) -> Option<MultiplexedConnection> {
        if let Some(conn) = self.current_connection() {
            return Some(conn);
        }
        let client = self.client.as_ref()?;
        // One task connects while the others wait for its result (one multiplexed
        // connection serves them all); after a failed attempt, callers do not retry
        // until the timeout has passed again.
        let _guard = self.connecting.lock().await;
        if let Some(conn) = self.current_connection() {
            return Some(conn);
        }
        if self.breaker.now_ms() < self.retry_connect_at.load(Ordering::Acquire) {
            return None;
        }
        let connected = tokio::time::timeout(
            self.settings.timeout.max(Duration::from_millis(200)),
            client.get_multiplexed_async_connection(),
        )
        .await;
        match connected {
            Ok(Ok(mut conn)) => {
                // redis-rs has its own 500 ms default; ours is the one configured.
                conn.set_response_timeout(self.settings.timeout);
                *self.connection.write().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
                Some(conn)
            }
            _ => {
                let retry = self.breaker.now_ms() + self.settings.timeout.as_millis() as u64;
                self.retry_connect_at.store(retry, Ordering::Release);
                None
            }
        }
    }

    pub(super) fn drop_connection(&self) {
        *self.connection.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Runs one Redis command under the timeout and the breaker; `None` when Redis was
    /// skipped or failed.
    pub(super) async fn call<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Option<T> {
        let Some(probe) = self.breaker.admit() else {
            self.counters.skipped.inc();
            return None;
        };
        let result = match self.connection().await {
            Some(mut conn) => {
                match tokio::time::timeout(self.settings.timeout, cmd.query_async::<T>(&mut conn))
                    .await
                {
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(e)) => {
                        // A broken connection is replaced; a server error is not ours to fix.
                        if e.is_io_error()
                            || e.is_connection_dropped()
                            || e.is_unrecoverable_error()
                        {
                            self.drop_connection();
                        }
                        Err(e.to_string())
                    }
                    // A slow answer does not mean a broken connection: keep it.
                    Err(_) => Err("timed out".to_string()),
                }
            }
            None => Err("not connected".to_string()),
        };
        match result {
            Ok(value) => {
                self.breaker.success(probe);
                Some(value)
            }
            Err(reason) => {
                self.counters.errors.inc();
                self.breaker.failure(probe);
                tracing::warn!(%reason, breaker = self.breaker.state().as_str(), "redis call failed");
                None
            }
        }
    }

    pub(super) async fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.call::<Option<Vec<u8>>>(redis::cmd("GET").arg(key).clone())
            .await
            .flatten()
    }

    pub(super) async fn set(&self, key: &str, bytes: &[u8]) {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(bytes)
            .arg("EX")
            .arg(self.settings.ttl.as_secs().max(1));
        let _: Option<()> = self.call(cmd).await;
    }
}
