//! One module per subcommand.

pub mod materialize;
pub mod render;
pub mod secrets;
pub mod user;
