//! End-to-end tests: the real application on random ports against the real Redis and
//! Postgres, each test with its own database (dropped after) and its own Redis key prefix,
//! so they run in parallel. One binary, one module per feature.

mod harness;

mod app_config;
mod auth;
mod availability;
mod charges;
mod chat;
mod cluster;
mod control_center;
mod customers;
mod extensions;
mod fake_provider;
mod faults;
mod field_trust;
mod grafana;
mod health;
mod hostile;
mod hub;
mod logs;
mod metrics;
mod openapi;
mod operators;
mod pairing;
mod payments;
mod process;
mod properties;
mod push;
mod redis_restart;
mod schema;
mod sentinel;
mod sessions;
mod shutdown;
mod sweep;
mod tidy;
mod timers;
