//! Reproducible evaluation data (upstream.md §4): the seed from the sync block's hash, CPython's
//! `random` module, which pages the loaders request, and how token streams become windows.
//! Pure: values in, values out; fetching pages and tokenising belong to `datasets`.

mod pages;
mod python_random;
mod seed;

pub use pages::{as_python_dict, config_sampling_pages, next_page, pack_windows, row_offset_pages, ConfigRows, Page, PageError};
pub use python_random::PyRandom;
pub use seed::{seed_from_block_hash, Seed, SeedError};

#[cfg(test)]
mod tests;
