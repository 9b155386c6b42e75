//! Subtensor: what miners commit on chain and how it is read back. The RPC client arrives with
//! `sync-metadata`; the commitment format below is pure and used by every stage that checks a model.

pub mod commitment;
