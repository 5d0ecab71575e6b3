//! What every service runs on: the CPU executor that keeps heavy work off
//! the IO runtime, background jobs, and the event bus that numbers and
//! broadcasts what happened.

pub mod events;
pub mod executor;
pub mod jobs;
