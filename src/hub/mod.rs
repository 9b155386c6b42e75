//! Hugging Face hub: the HF environment and cache layout, and the snapshot hash a miner's secure
//! hash is checked against. Model downloads arrive with `fetch-models`.

mod config;
pub mod hash;

pub use config::{Config, Secret};
