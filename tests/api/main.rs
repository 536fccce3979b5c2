//! Black-box API tests: the real application on port 0 over HTTP, against the real
//! PostgreSQL, one database per test.

mod analytics;
mod architecture;
mod auth;
mod cache;
mod clients;
mod dashboard;
mod engine;
mod export;
mod fuzz;
mod hardening;
mod helpers;
mod hygiene;
mod import;
mod ingest;
mod inventory;
mod live;
mod operations;
mod orders;
mod permissions;
mod questions;
mod reliability;
mod schedules;
