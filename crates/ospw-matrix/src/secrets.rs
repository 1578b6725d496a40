//! Secret generation: the Synapse signing key and the random shared secrets.
// STUB: owned by the secrets work.
