//! orderscope: a GraphQL analytics API for marketplace sellers.
//!
//! The binary (`main.rs`) only parses the command; everything else lives here so that
//! tests can start the real application with [`startup::Application::build`].

pub mod accounts;
pub mod analytics;
pub mod auth;
pub mod cache;
pub mod db;
pub mod domain;
pub mod error;
pub mod export_links;
pub mod filters;
pub mod forecast;
pub mod graphql;
pub mod http;
pub mod import;
pub mod ingest;
pub mod memory;
pub mod metrics;
pub mod operations;
pub mod orders;
pub mod reports;
pub mod schedules;
pub mod seed;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;

pub use error::AppError;
