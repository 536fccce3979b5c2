//! Unmasked buyer fields read by one request (or one subscription event): the
//! resolvers record them, and the transport writes the audit entry before the data
//! leaves.

use serde_json::json;

/// Orders whose buyer PII one request read unmasked, for the audit log.
#[derive(Default)]
pub struct PiiReads {
    orders:
        std::sync::Mutex<std::collections::BTreeMap<i64, std::collections::BTreeSet<&'static str>>>,
}

impl PiiReads {
    pub fn record(&self, order_id: i64, field: &'static str) {
        let mut orders = self.orders.lock().unwrap_or_else(|e| e.into_inner());
        orders.entry(order_id).or_default().insert(field);
    }

    /// The audit details, or `None` when nothing was read.
    pub fn take_details(&self) -> Option<serde_json::Value> {
        let orders = std::mem::take(&mut *self.orders.lock().unwrap_or_else(|e| e.into_inner()));
        if orders.is_empty() {
            return None;
        }
        let entries: Vec<serde_json::Value> = orders
            .into_iter()
            .map(|(id, fields)| json!({ "orderId": id, "fields": fields }))
            .collect();
        Some(json!({ "orders": entries }))
    }
}
