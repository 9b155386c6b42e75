//! Which dataset pages a loader requests (upstream.md §4.2, §4.3) and how a token stream is cut
//! into windows. The RNG is passed in already seeded, because upstream's loaders share CPython's
//! global RNG and each re-seeds it in its constructor.

use super::PyRandom;

/// One `/rows` request: config, row offset, split.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Page {
    pub config: String,
    pub offset: u64,
    pub split: String,
}

/// A dataset config as `/size` lists it, in response order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRows {
    pub config: String,
    pub num_rows: u64,
    pub split: String,
}

/// The `/size` listing as upstream's `{e.config: (e.num_rows, e.split) for e in splits}` holds
/// it: a Python dict, so a config listed under several splits keeps the position of its first
/// listing and the rows and split of its last.
pub fn as_python_dict(listing: Vec<ConfigRows>) -> Vec<ConfigRows> {
    let mut configs: Vec<ConfigRows> = Vec::with_capacity(listing.len());
    for entry in listing {
        match configs.iter_mut().find(|c| c.config == entry.config) {
            Some(first) => *first = entry,
            None => configs.push(entry),
        }
    }
    configs
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("the dataset lists no configs")]
    NoConfigs,
    #[error("config {config} has {num_rows} rows, too few for one page of {rows_per_page} after offset {initial_offset}")]
    TooFewRows { config: String, num_rows: u64, rows_per_page: u64, initial_offset: u64 },
}

/// Row-offset loaders (Falcon, peS2o-X, FineMath, The Stack): `randint(1, max_pages)` per page,
/// duplicates allowed.
pub fn row_offset_pages(rng: &mut PyRandom, max_pages: u64, num_pages: usize) -> Vec<u64> {
    (0..num_pages).map(|_| rng.randint(1, max_pages)).collect()
}

/// Config-sampling loaders (FineWeb, FineWeb-Edu, SN37): first the random initial offset, then
/// per page a random config and page start; a page already chosen is skipped (at most 100 times).
/// Returns the initial offset and the pages. A failed fetch upstream draws a *new* page, so a
/// caller that fetches while planning continues with the same `rng`.
pub fn config_sampling_pages(
    rng: &mut PyRandom,
    configs: &[ConfigRows],
    rows_per_page: u64,
    num_pages: usize,
) -> Result<(u64, Vec<Page>), PageError> {
    if configs.is_empty() {
        return Err(PageError::NoConfigs);
    }
    let initial_offset = rng.randint(0, rows_per_page - 1);
    let mut pages: Vec<Page> = Vec::new();
    let mut duplicates = 0;
    while pages.len() < num_pages {
        let page = next_page(rng, configs, rows_per_page, initial_offset)?;
        if pages.contains(&page) {
            duplicates += 1;
            if duplicates >= 100 {
                break;
            }
            continue;
        }
        pages.push(page);
    }
    Ok((initial_offset, pages))
}

/// One draw of upstream's page loop: `choice(configs)`, then a page start within it.
pub fn next_page(rng: &mut PyRandom, configs: &[ConfigRows], rows_per_page: u64, initial_offset: u64) -> Result<Page, PageError> {
    let c = rng.choice(configs).ok_or(PageError::NoConfigs)?;
    let rows = c.num_rows.saturating_sub(initial_offset);
    let page_count = (rows + 1) / rows_per_page;
    if page_count == 0 {
        return Err(PageError::TooFewRows { config: c.config.clone(), num_rows: c.num_rows, rows_per_page, initial_offset });
    }
    let start = initial_offset + rng.randint(0, page_count - 1) * rows_per_page;
    Ok(Page { config: c.config.clone(), offset: start, split: c.split.clone() })
}

/// Consecutive non-overlapping windows of `sequence_length` tokens; the short tail is dropped.
pub fn pack_windows(buffer: &[u32], sequence_length: usize) -> Vec<Vec<u32>> {
    buffer.chunks_exact(sequence_length).map(<[u32]>::to_vec).collect()
}
