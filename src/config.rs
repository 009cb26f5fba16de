//! Configuration files: serde structs for the training config (unknown keys rejected with their
//! path) and validation of impossible settings before any work starts.
