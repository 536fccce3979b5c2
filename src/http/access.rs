//! One access-log line per request, and the request id that ties it to the client.
//!
//! A client's `X-Request-Id` (up to 64 characters of letters, digits, `-`, `_`, `.`) is
//! kept; otherwise one is made. It is returned on every response and logged with the
//! method, route, status, duration and, when the handler knew them, the tenant and the
//! GraphQL operation name.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpMessage, HttpRequest};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What a handler adds to the access line.
#[derive(Clone, Debug, Default)]
pub struct AccessNote {
    pub tenant_id: Option<i64>,
    pub operation: Option<String>,
}

/// Records the tenant and operation of a request for its access line.
pub fn note(req: &HttpRequest, tenant_id: i64, operation: Option<&str>) {
    req.extensions_mut().insert(AccessNote {
        tenant_id: Some(tenant_id),
        operation: operation.map(|o| o.chars().take(64).collect()),
    });
}

/// The client's request id if it is a sane one, else a new one.
pub fn request_id(header: Option<&HeaderValue>) -> String {
    header
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_and_replaces_others() {
        let keep = HeaderValue::from_static("req-123_abc.9");
        assert_eq!(request_id(Some(&keep)), "req-123_abc.9");
        for bad in ["", "has space", "ünï", &"x".repeat(65)] {
            let value = HeaderValue::from_str(bad).ok();
            let id = request_id(value.as_ref());
            assert_eq!(id.len(), 32, "{bad:?} replaced by a new id");
        }
        assert_eq!(request_id(None).len(), 32);
    }
}
