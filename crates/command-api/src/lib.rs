//! Wallex command API.

pub mod access;
pub mod adapters;
pub mod catch_up;
pub mod config;
pub mod dead_letters;
pub mod hold_expiry;
pub mod http;
pub mod metrics;
pub mod publisher_status;
pub mod relay_lag;
pub mod retention;
pub mod startup;
pub mod token;
pub mod wallets;

pub use config::Config;
pub use startup::Application;
