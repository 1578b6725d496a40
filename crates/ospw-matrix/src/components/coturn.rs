//! coturn's `turnserver.conf`.
// STUB: owned by the coturn work; replaced by the typed model.

/// coturn's `turnserver.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TurnserverConf {}

impl TurnserverConf {
    /// Emits the `turnserver.conf` text.
    pub fn to_conf_string(&self) -> String {
        String::new()
    }
}
