//! SN9's text loaders (upstream.md §4.2, `pretrain/dataset.py`), step for step: the RNG draws,
//! the retries and what each retry consumes, the buffer that persists (config sampling) or
//! restarts (row offsets) between attempts. Any deviation picks other pages than the validators
//! valkit must agree with.

use std::time::Duration;

use anyhow::{bail, Context};

use super::rng;
use crate::competition::EvalTask;
use crate::datasets::{stack_v2, Source};
use crate::sampling::{as_python_dict, next_page, pack_windows, row_offset_pages, ConfigRows, Page, PyRandom, Seed};
use crate::tokenizer::Tokenizer;

/// upstream `retry_limit`: attempts per request, and `fetch_attempt < retry_limit` page rounds.
const RETRY_LIMIT: u32 = 15;
const DUPLICATE_PAGE_THRESHOLD: usize = 100;
/// upstream `num_rows_per_page` for SN9 loaders.
const DEFAULT_ROWS_PER_PAGE: u64 = 50;

pub struct Window {
    pub tokens: Vec<u32>,
    /// The pages whose tokens the window holds, `;`-separated.
    pub source: String,
}

pub struct Sampled {
    pub windows: Vec<Window>,
    pub pages: Vec<String>,
    pub failed_pages: Vec<String>,
}

/// The token stream of a loader and which page each stretch came from.
#[derive(Default)]
struct Buffer {
    tokens: Vec<u32>,
    /// (end index exclusive, page name), in stream order.
    segments: Vec<(usize, String)>,
}

impl Buffer {
    fn push(&mut self, ids: &[u32], eos: u32, page: &str) {
        self.tokens.extend_from_slice(ids);
        self.tokens.push(eos);
        match self.segments.last_mut() {
            Some((end, p)) if p == page => *end = self.tokens.len(),
            _ => self.segments.push((self.tokens.len(), page.to_string())),
        }
    }

    fn clear(&mut self) {
        self.tokens.clear();
        self.segments.clear();
    }

    /// Consecutive windows of `length` tokens; the shorter tail is dropped (upstream's packing
    /// splits at EOS and re-appends one EOS per document, which leaves the stream unchanged).
    fn windows(&self, length: usize) -> Vec<Window> {
        let mut segment = 0;
        pack_windows(&self.tokens, length)
            .into_iter()
            .enumerate()
            .map(|(i, tokens)| {
                let (start, end) = (i * length, (i + 1) * length);
                while self.segments[segment].0 <= start {
                    segment += 1;
                }
                let mut pages = Vec::new();
                for (segment_end, page) in &self.segments[segment..] {
                    pages.push(page.as_str());
                    if *segment_end >= end {
                        break;
                    }
                }
                Window { tokens, source: pages.join(";") }
            })
            .collect()
    }
}

struct Loader<'a> {
    source: &'a Source<'a>,
    task: &'a EvalTask,
    tokenizer: &'a Tokenizer,
    retry_delay: Duration,
    rng: PyRandom,
    buffer: Buffer,
    pages: Vec<String>,
    failed_pages: Vec<String>,
}

fn rows_per_page(task: &EvalTask) -> u64 {
    task.dataset.rows_per_page.map_or(DEFAULT_ROWS_PER_PAGE, u64::from)
}

/// Rows a page request returns. finetuning's loaders send `limit=` (which the server ignores) and
/// so always get the server's default of 100 rows, whatever their page stride; valkit asks for
/// those 100 rows explicitly.
fn request_length(task: &EvalTask) -> u64 {
    if finetuning_loader(task) {
        100
    } else {
        rows_per_page(task)
    }
}

fn finetuning_loader(task: &EvalTask) -> bool {
    matches!(task.dataset.loader.as_str(), "synthetic-1-sft" | "codeforces-cots")
}

/// Whether pages are row offsets drawn with `randint(1, max_pages)` (else config sampling).
pub fn row_offset_loader(task: &EvalTask) -> bool {
    matches!(task.dataset.loader.as_str(), "row-offset" | "stack-v2")
}

fn num_pages(task: &EvalTask) -> anyhow::Result<usize> {
    task.pages.map(|p| p as usize).with_context(|| format!("task {} has no `pages` in its profile", task.name))
}

/// The configs a loader samples from, in `/size` order. pretraining's loaders leave `default`
/// out; finetuning's keep a lone entry even when it is `default`; a local directory's files all count.
fn sampled_configs(source: &Source, task: &EvalTask, all: Vec<ConfigRows>) -> Vec<ConfigRows> {
    match source {
        Source::Local(_) => all,
        Source::Server { .. } if finetuning_loader(task) && all.len() == 1 => all,
        // FineWeb-style loaders key a dict by config (upstream.md §4.2).
        Source::Server { .. } if !finetuning_loader(task) => as_python_dict(all.into_iter().filter(|c| c.config != "default").collect()),
        Source::Server { .. } => all.into_iter().filter(|c| c.config != "default").collect(),
    }
}

impl Loader<'_> {
    async fn pause(&self) {
        if !self.retry_delay.is_zero() {
            tokio::time::sleep(self.retry_delay).await;
        }
    }

    fn tokenize_rows(&mut self, rows: &[serde_json::Value], page: &str, field_fallback: bool) -> anyhow::Result<()> {
        for (i, row) in rows.iter().enumerate() {
            let text = row.get("text").and_then(|t| t.as_str());
            let text = if field_fallback { text.or_else(|| row.get("content").and_then(|t| t.as_str())) } else { text };
            let text = text.with_context(|| format!("page {page}, row {i}: no text field"))?;
            let ids = self.tokenizer.encode_truncated(text)?;
            self.buffer.push(&ids, self.tokenizer.eos_token_id(), page);
        }
        Ok(())
    }

    /// `/size`, retried like upstream's `fetch_dataset_configs` (same request, no RNG draw).
    async fn configs(&self) -> anyhow::Result<Vec<ConfigRows>> {
        let mut attempt = 0;
        loop {
            match self.source.size().await {
                Ok(all) => return Ok(sampled_configs(self.source, self.task, all)),
                Err(e) if e.is_transient() && attempt + 1 < RETRY_LIMIT => {
                    attempt += 1;
                    tracing::warn!(task = %self.task.name, attempt, "listing configs failed, retrying: {e}");
                    self.pause().await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One `_initialize_pages` round of the FineWeb-style loaders. The buffer is kept from
    /// earlier rounds; a page whose request fails is replaced by a newly drawn one.
    async fn config_sampling_round(&mut self) -> anyhow::Result<()> {
        let configs = self.configs().await?;
        let per_page = rows_per_page(self.task);
        let wanted = num_pages(self.task)?;
        let mut pages: Vec<Page> = Vec::new();
        let (mut attempts, mut duplicates) = (0, 0);
        let initial_offset = self.rng.randint(0, per_page - 1);
        while pages.len() < wanted {
            let page = next_page(&mut self.rng, &configs, per_page, initial_offset)?;
            if pages.contains(&page) {
                duplicates += 1;
                if duplicates >= DUPLICATE_PAGE_THRESHOLD {
                    break;
                }
                continue;
            }
            let name = self.source.page_name(&page.config, &page.split, page.offset);
            match self.source.rows(&page.config, &page.split, page.offset, request_length(self.task)).await {
                Ok(rows) => {
                    pages.push(page);
                    self.tokenize_rows(&rows, &name, false)?;
                    self.pages.push(name);
                }
                Err(e) if e.is_transient() => {
                    attempts += 1;
                    self.failed_pages.push(format!("{name}: {}", e.describe()));
                    if attempts >= RETRY_LIMIT {
                        return Err(e).context("too many failed page requests");
                    }
                    self.pause().await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// One round of the row-offset loaders: fresh pages, a fresh buffer, each page retried as is.
    /// As upstream, a page whose rows or contents fail is fetched again whole, and the rows it
    /// had already added to the buffer stay there.
    async fn row_offset_round(&mut self) -> anyhow::Result<()> {
        let d = &self.task.dataset;
        let max_pages = d.max_pages.with_context(|| format!("task {} needs dataset.max_pages for a row-offset loader", self.task.name))?;
        let offsets = row_offset_pages(&mut self.rng, max_pages, num_pages(self.task)?);
        self.buffer.clear();
        self.pages.clear();
        let config = d.config.clone().unwrap_or_else(|| "default".into());
        for offset in offsets {
            let name = self.source.page_name(&config, &d.split, offset);
            let mut attempt = 0;
            loop {
                let failure = match self.source.rows(&config, &d.split, offset, rows_per_page(self.task)).await {
                    Ok(rows) => match &d.content {
                        Some(prefix) => self.add_stack_v2_rows(&rows, &name, prefix).await?,
                        None => self.tokenize_rows(&rows, &name, true).map(|()| None)?,
                    },
                    Err(e) if e.is_transient() => Some(e.describe()),
                    Err(e) => return Err(e.into()),
                };
                let Some(failure) = failure else { break };
                attempt += 1;
                self.failed_pages.push(format!("{name}: {failure}"));
                if attempt >= RETRY_LIMIT {
                    bail!("page {name} failed {RETRY_LIMIT} times, last: {failure}");
                }
                self.pause().await;
            }
            self.pages.push(name);
        }
        Ok(())
    }

    /// The Stack v2's rows, each tokenised once its content is fetched (up to 16 at a time, in
    /// row order). `Some(why)` when a content could not be fetched (the page is retried);
    /// an error when a row or its bytes are unusable (the task fails).
    async fn add_stack_v2_rows(&mut self, rows: &[serde_json::Value], page: &str, prefix: &str) -> anyhow::Result<Option<String>> {
        use futures::StreamExt;
        let mut contents = futures::stream::iter(rows).map(|row| stack_v2::content(prefix, row)).buffered(16);
        while let Some(content) = contents.next().await {
            match content {
                Ok(text) => {
                    let ids = self.tokenizer.encode_truncated(&text)?;
                    self.buffer.push(&ids, self.tokenizer.eos_token_id(), page);
                }
                Err(e) if e.is_transient() => return Ok(Some(format!("{e:#}"))),
                Err(e) => return Err(e).with_context(|| format!("page {page}")),
            }
        }
        Ok(None)
    }
}

/// Runs a task's loader until its buffer holds one window (at most 14 rounds, as upstream).
pub async fn sample(
    source: &Source<'_>,
    task: &EvalTask,
    seed: &Seed,
    tokenizer: &Tokenizer,
    sequence_length: usize,
    retry_delay: Duration,
) -> anyhow::Result<Sampled> {
    let mut loader = Loader {
        source,
        task,
        tokenizer,
        retry_delay,
        rng: rng(seed),
        buffer: Buffer::default(),
        pages: Vec::new(),
        failed_pages: Vec::new(),
    };
    let row_offsets = row_offset_loader(task);
    let mut round = 1;
    while round < RETRY_LIMIT {
        if row_offsets {
            loader.row_offset_round().await?;
        } else {
            loader.config_sampling_round().await?;
        }
        round += 1;
        if loader.buffer.tokens.len() >= sequence_length {
            break;
        }
        tracing::warn!(task = %task.name, round, "pages hold fewer tokens than one window, drawing new pages");
    }
    if loader.buffer.tokens.len() < sequence_length {
        bail!(
            "after {} rounds of pages the buffer holds {} tokens, fewer than one window of {sequence_length}",
            RETRY_LIMIT - 1,
            loader.buffer.tokens.len()
        );
    }
    Ok(Sampled { windows: loader.buffer.windows(sequence_length), pages: loader.pages, failed_pages: loader.failed_pages })
}

/// The validator's `random.Random(seed).shuffle(batches)` then `batches[:max]`.
pub fn shuffle_and_keep(mut windows: Vec<Window>, seed: &Seed, max: usize) -> Vec<Window> {
    rng(seed).shuffle(&mut windows);
    windows.truncate(max);
    windows
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedPage {
    pub config: String,
    pub split: String,
    pub offset: u64,
    pub length: u64,
}

/// `--plan` output for one task: the first round of pages, assuming every request succeeds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskPlan {
    pub task: String,
    pub loader: String,
    pub dataset: String,
    pub initial_offset: Option<u64>,
    pub pages: Vec<PlannedPage>,
    pub unsupported: Option<String>,
}

/// `--plan`'s human view: the task, then one line per page. Config and split names come from
/// the datasets server, so they are shown escaped.
impl std::fmt::Display for TaskPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::format::printable;
        write!(f, "{} ({} {}):", self.task, self.loader, printable(&self.dataset, &[]))?;
        match &self.unsupported {
            Some(why) => write!(f, "\n  not sampled: {}", printable(why, &[])),
            None => self
                .pages
                .iter()
                .try_for_each(|p| write!(f, "\n  {}:{}:{} +{}", printable(&p.config, &[]), printable(&p.split, &[]), p.offset, p.length)),
        }
    }
}

impl TaskPlan {
    pub fn unsupported(task: &EvalTask, why: String) -> Self {
        Self {
            task: task.name.clone(),
            loader: task.dataset.loader.clone(),
            dataset: task.dataset.name.clone(),
            initial_offset: None,
            pages: Vec::new(),
            unsupported: Some(why),
        }
    }
}

pub async fn plan(source: &Source<'_>, task: &EvalTask, seed: &Seed) -> anyhow::Result<TaskPlan> {
    let mut rng = rng(seed);
    let length = request_length(task);
    let d = &task.dataset;
    let (initial_offset, pages) = if row_offset_loader(task) {
        let max_pages = d.max_pages.with_context(|| format!("task {} needs dataset.max_pages", task.name))?;
        let config = d.config.clone().unwrap_or_else(|| "default".into());
        let pages = row_offset_pages(&mut rng, max_pages, num_pages(task)?)
            .into_iter()
            .map(|offset| PlannedPage { config: config.clone(), split: d.split.clone(), offset, length })
            .collect();
        (None, pages)
    } else {
        let configs = sampled_configs(source, task, source.size().await?);
        let (initial, pages) = crate::sampling::config_sampling_pages(&mut rng, &configs, rows_per_page(task), num_pages(task)?)?;
        (Some(initial), pages.into_iter().map(|p| PlannedPage { config: p.config, split: p.split, offset: p.offset, length }).collect())
    };
    Ok(TaskPlan { task: task.name.clone(), loader: d.loader.clone(), dataset: d.name.clone(), initial_offset, pages, unsupported: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_shows_the_servers_names_escaped_one_page_a_line() {
        let page = |config: &str| PlannedPage { config: config.into(), split: "train".into(), offset: 7, length: 100 };
        let plan = TaskPlan {
            task: "FINEWEB".into(),
            loader: "fineweb".into(),
            dataset: "HuggingFaceFW/fineweb".into(),
            initial_offset: None,
            pages: vec![page("CC-MAIN-2024-10"), page("x\u{1b}[2J\nforged\u{202e}")],
            unsupported: None,
        };
        assert_eq!(
            plan.to_string(),
            "FINEWEB (fineweb HuggingFaceFW/fineweb):\n  CC-MAIN-2024-10:train:7 +100\n  x\\x1b[2J\\x0aforged\\u{202e}:train:7 +100"
        );
    }
}
