//! Synapse's shared-secret registration (`/_synapse/admin/v1/register`):
//! the HMAC-SHA1 request body.
// STUB: owned by the accounts work.
