//! Cross-origin access for browser dashboards served from another origin.
//!
//! Allowed origins come from `CORS_ALLOWED_ORIGINS` (comma-separated, exact
//! `scheme://host[:port]`). When it is unset, development allows any loopback origin (a
//! dashboard on `localhost:5173` calling the API on `:8080`) and production allows none.
//! A request from another origin is still answered (non-browser clients send no
//! `Origin`), but without the headers a browser needs to read the answer.

use actix_cors::Cors;
use actix_web::http::{header, Method};

pub use crate::settings::AllowedOrigins;

/// The middleware: preflights answered for every route, credentials by header only.
pub fn middleware(allowed: AllowedOrigins) -> Cors {
    Cors::default()
        .allowed_origin_fn(move |origin, _| origin.to_str().is_ok_and(|o| allowed.allows(o)))
        .allowed_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("x-cache-bypass"),
        ])
        .expose_headers([header::CONTENT_DISPOSITION])
        .max_age(3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_allows_loopback_origins_only() {
        let dev = AllowedOrigins::from_setting(None, false);
        for origin in [
            "http://localhost:5173",
            "http://127.0.0.1:3000",
            "https://localhost",
            "http://[::1]:8080",
        ] {
            assert!(dev.allows(origin), "{origin}");
        }
        for origin in [
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
            "http://evil.example",
            "null",
            "http://localhost:abc",
            "ftp://localhost",
        ] {
            assert!(!dev.allows(origin), "{origin}");
        }
    }

    #[test]
    fn production_allows_only_configured_origins() {
        assert!(!AllowedOrigins::from_setting(None, true).allows("http://localhost:5173"));
        let listed = AllowedOrigins::from_setting(
            Some("https://dash.example.com, https://bi.example.com/"),
            true,
        );
        assert!(listed.allows("https://dash.example.com"));
        assert!(listed.allows("https://bi.example.com"));
        assert!(!listed.allows("https://evil.example.com"));
    }
}
