//! Hugging Face hub: the HF environment and cache layout, a deadline-bound client over hf-hub
//! for listings, byte ranges and pinned downloads, which files a validator downloads, and the
//! snapshot hash a miner's secure hash is checked against. Writes only inside its cache; knows
//! no competition rules and no tables.

pub mod cache;
mod client;
mod config;
pub mod files;
pub mod hash;

pub use cache::{Cache, Verified};
pub use client::{Error, Hub, Policy, TreeFile};
pub use config::{Config, Secret};
