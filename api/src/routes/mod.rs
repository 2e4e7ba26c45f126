//! Route handlers, one file per area. Each handler is headed by its `#[utoipa::path]` (the
//! route it serves, its parameters, answer and errors, which the routers are built from and
//! the OpenAPI documents show), extracts, calls one domain function and shapes the answer.

pub mod accounts;
pub mod auth;
pub mod availability;
pub mod chat;
pub mod config;
pub mod customers;
pub mod devices;
pub mod extensions;
pub mod failures;
pub mod operations;
pub mod operators;
pub mod pairing;
pub mod payments;
pub mod presence;
