//! Helpers of the OSPW Matrix acceptance suite (`tests/acceptance.rs`,
//! `tests/operations.rs`): the stack under test, running programs, HTTP and
//! Matrix clients, the report of checks.

#[cfg(feature = "matrix")]
pub mod client;
#[cfg(feature = "matrix")]
pub mod http;
pub mod load;
pub mod net;
pub mod ports;
pub mod proc;
pub mod report;
pub mod stack;
pub mod stun;
pub mod synapse_log;
pub mod util;
pub mod wait;
pub mod workers;
