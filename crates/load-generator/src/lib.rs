//! `wallex-load`: a load generator for the Wallex REST API that also checks money
//! conservation. The binary in `main.rs` only parses options and prints.

pub mod cli;
pub mod client;
pub mod lag;
pub mod report;
pub mod runner;
#[cfg(test)]
mod test_server;
pub mod workload;
