//! Helpers of the OSPW Matrix acceptance suite (`tests/*.rs`): the harness
//! around every run, the stack under test, running programs, HTTP and
//! Matrix clients, the report of checks.

#[cfg(feature = "matrix")]
pub mod client;
pub mod harness;
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
