//! The `basin` binary's library half: configuration, startup and the CLI, so
//! that integration tests start exactly what `basin serve` starts.

pub mod app;
pub mod cli;
pub mod config;

pub use app::Application;
pub use config::Config;
