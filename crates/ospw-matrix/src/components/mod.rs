//! Typed models of each component's native configuration format. Each model
//! parses and emits its format, keeps keys it does not know in a catch-all
//! map (a round trip keeps every key), and can list the ways a configuration
//! breaks this product's privacy invariants, so tooling can load an existing
//! file, change it and write it back.

pub mod caddy;
pub mod coturn;
pub mod element;
pub mod pyyaml;
pub mod synapse;
pub mod synapse_auth;
