//! Hugging Face hub: what valkit needs of a downloaded model. The HTTP client arrives with
//! `fetch-models`; the snapshot hash below is what a miner's secure hash is checked against.

pub mod hash;
