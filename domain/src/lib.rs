//! Business rules of Bestie Hub.
//!
//! Every edge (HTTP handler, WebSocket frame, job) calls into this crate; the rules live here
//! once. `store` is the only module that speaks SQL or Redis. This crate never imports a web
//! framework: it returns typed errors with stable codes and the edges map them.
//!
//! The edges (`api`, `hub`, `workers`, `bestie`) hold a [`Store`] and pass it to the functions
//! of the areas; they never name `domain::store` nor call the store's methods themselves
//! (`tidy::the_edges_reach_the_store_only_through_the_domain`). Tests may: they inspect state.

pub mod accounts;
pub mod app_config;
pub mod auth;
pub mod broker;
pub mod budget;
pub mod calendar;
pub mod capacity;
pub mod charges;
pub mod chat;
pub mod clock;
pub mod delivery;
pub mod devices;
pub mod error;
pub mod event;
pub mod extension;
pub mod failures;
pub mod ids;
pub mod jobs;
pub mod metrics;
pub mod page;
pub mod pairing;
pub mod password;
pub mod payment;
pub mod presence;
pub mod push;
pub mod sampler;
pub mod seed;
pub mod services;
pub mod session;
pub mod settings;
pub mod store;
pub mod text_enum;

pub use store::{Store, StoreError};
