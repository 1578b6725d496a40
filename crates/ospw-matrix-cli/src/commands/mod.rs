//! One module per subcommand.

pub mod accounts;
pub mod backup;
pub mod doctor;
pub mod import_compose;
pub mod materialize;
pub mod render;
pub mod restore;
pub mod secrets;
pub mod user;
