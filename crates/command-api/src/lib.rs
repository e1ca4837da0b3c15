//! Wallex command API.

pub mod config;
pub mod http;
pub mod metrics;
pub mod startup;
pub mod wallets;

pub use config::Config;
pub use startup::Application;
