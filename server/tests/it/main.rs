//! Integration tests: the real server on port 0, real HTTP clients, the real binary.

mod analytics;
mod cli;
mod common;
mod connectors;
mod crash;
mod datasets;
mod errors;
mod flight;
mod ingest;
mod ops;
mod pipelines;
mod query;
mod security;
