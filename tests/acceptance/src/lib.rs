//! Helpers of the OSPW Matrix acceptance suite (`tests/acceptance.rs`).

pub mod proc;
pub mod report;
pub mod stun;
pub mod wait;
