//! Subtensor: what miners commit on chain and how it is read back, and the weights a validator
//! sends. `client` is the only code that talks to a node and `subnet` names and types what the
//! stages read through it; the rest is pure or local files.

pub mod calls;
pub mod client;
pub mod commitment;
pub mod registration;
pub mod reveal;
pub mod subnet;
pub mod timelock;
pub mod wallet;
pub mod weights_path;
