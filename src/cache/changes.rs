//! Change announcements between nodes over Redis pub/sub.

use std::sync::Arc;
use std::time::Duration;

use super::Cache;

impl Cache {
    pub(super) fn changes_channel(&self) -> String {
        format!("{}:changes", self.settings.prefix)
    }

    /// Tells every node (Redis pub/sub) that a write of `tenant_id` committed, so that
    /// their live subscriptions see it at once. Without Redis, nodes still see it at
    /// their next change-log tick.
    pub async fn announce_change(&self, tenant_id: i64) {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.changes_channel())
            .arg(format!("{}:{tenant_id}", self.node));
        let _: Option<i64> = self.call(cmd).await;
    }

    /// Calls `on_change` with the tenant of every announced write, for the life of the
    /// process; reconnects after Redis fails (each attempt at most once a second).
    pub fn follow_changes(self: &Arc<Self>, on_change: impl Fn(i64) + Send + Sync + 'static) {
        use futures_util::StreamExt;
        let Some(client) = self.client.clone() else {
            return;
        };
        let channel = self.changes_channel();
        let node = self.node.clone();
        tokio::spawn(async move {
            loop {
                let connected =
                    tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub()).await;
                if let Ok(Ok(mut pubsub)) = connected {
                    if pubsub.subscribe(&channel).await.is_ok() {
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            let Ok(payload) = message.get_payload::<String>() else {
                                continue;
                            };
                            // This node's own announcements: it has caught up already.
                            let Some((from, tenant)) = payload.split_once(':') else {
                                continue;
                            };
                            if from == node {
                                continue;
                            }
                            if let Ok(tenant_id) = tenant.parse::<i64>() {
                                on_change(tenant_id);
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}
