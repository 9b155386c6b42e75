//! SN37's reference-loss loaders (upstream.md §4.3, finetuning `hugging_face_loader.py`):
//! SYNTHETIC-1-SFT (math and code-output traces, topped up page by page to 120 samples) and
//! codeforces-cots. Each sample is a chat-templated question (context, not scored) followed by
//! the reference trace and answer.

use std::time::Duration;

use anyhow::Context;
use regex::Regex;
use serde_json::Value;

use super::rng;
use crate::competition::EvalTask;
use crate::datasets::Source;
use crate::sampling::{next_page, ConfigRows, Page, PyRandom, Seed};
use crate::tokenizer::Tokenizer;

/// The system prompt of every SN37 reasoning sample, verbatim from finetuning.
pub const REASONING_PROMPT: &str = "You are a reflective AI capable of using extended chains of thought to consider the problem thoroughly and deliberate through systematic reasoning to arrive at a correct solution before answering. Enclose your internal monologue in <think> ... </think> tags, then provide your final answer in the format that the user requests.";

/// finetuning's `retry_limit`.
const RETRY_LIMIT: u32 = 10;
/// The loaders send `limit=` (ignored), so the server returns its default page of 100 rows.
const SERVER_PAGE_ROWS: u64 = 100;
const DUPLICATE_PAGE_THRESHOLD: usize = 100;
const SUPPORTED_TASK_TYPES: [&str; 2] = ["verifiable_math", "code_output_prediction"];
/// `CodeforcesCOTSLoader(max_sequence_length=16384)` with 4 characters per token.
const CODEFORCES_MAX_TOKENS: usize = 16_384;

pub struct Sample {
    pub context: Vec<u32>,
    pub reference: Vec<u32>,
    pub source: String,
}

pub struct Sampled {
    pub samples: Vec<Sample>,
    pub pages: Vec<String>,
    pub failed_pages: Vec<String>,
}

struct Loader<'a> {
    source: &'a Source<'a>,
    rows_per_page: u64,
    rng: PyRandom,
    configs: Vec<ConfigRows>,
    /// Rows and the `dataset:config:split:offset` of each.
    buffer: Vec<(Value, String)>,
    pages: Vec<String>,
    failed_pages: Vec<String>,
    retry_delay: Duration,
}

impl<'a> Loader<'a> {
    async fn new(source: &'a Source<'a>, task: &EvalTask, seed: &Seed, retry_delay: Duration) -> anyhow::Result<Self> {
        let rng = rng(seed);
        let mut attempt = 0;
        let all = loop {
            match source.size().await {
                Ok(all) => break all,
                Err(e) if e.is_transient() && attempt + 1 < RETRY_LIMIT => {
                    attempt += 1;
                    tokio::time::sleep(retry_delay).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        // A lone /size entry is used even when it is named `default`.
        let configs = if all.len() == 1 || matches!(source, Source::Local(_)) {
            all
        } else {
            all.into_iter().filter(|c| c.config != "default").collect()
        };
        let rows_per_page = task.dataset.rows_per_page.map_or(100, u64::from);
        Ok(Self { source, rows_per_page, rng, configs, buffer: Vec::new(), pages: Vec::new(), failed_pages: Vec::new(), retry_delay })
    }

    /// `_fetch_data_to_buffer(num_pages)`: a fresh initial offset, unique pages, a failed page
    /// replaced by a newly drawn one with a doubling pause.
    async fn fetch(&mut self, num_pages: usize) -> anyhow::Result<()> {
        let mut pages: Vec<Page> = Vec::new();
        let (mut attempts, mut duplicates) = (0, 0);
        let mut delay = self.retry_delay;
        let initial_offset = self.rng.randint(0, self.rows_per_page - 1);
        while pages.len() < num_pages {
            let page = next_page(&mut self.rng, &self.configs, self.rows_per_page, initial_offset)?;
            if pages.contains(&page) {
                duplicates += 1;
                if duplicates >= DUPLICATE_PAGE_THRESHOLD {
                    break;
                }
                continue;
            }
            let name = self.source.page_name(&page.config, &page.split, page.offset);
            match self.source.rows(&page.config, &page.split, page.offset, SERVER_PAGE_ROWS).await {
                Ok(rows) => {
                    for (i, row) in rows.into_iter().enumerate() {
                        let source = self.source.page_name(&page.config, &page.split, page.offset + i as u64);
                        self.buffer.push((row, source));
                    }
                    pages.push(page);
                    self.pages.push(name);
                }
                Err(e) if e.is_transient() => {
                    attempts += 1;
                    self.failed_pages.push(format!("{name}: {}", e.describe()));
                    if attempts >= RETRY_LIMIT {
                        return Err(e).context("too many failed page requests");
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Python's `str.strip()`: Unicode whitespace plus the ASCII separators \x1c–\x1f.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

fn messages(row: &Value) -> Option<&Vec<Value>> {
    row.get("messages").and_then(Value::as_array)
}

fn content(messages: &[Value], i: usize) -> Option<&str> {
    messages.get(i)?.get("content")?.as_str()
}

/// `_parse_verifiable_math`: the answer is the last `\boxed{…}` (non-greedy, so nested braces cut
/// it short), the trace everything before its last occurrence.
fn parse_math(messages: &[Value]) -> Option<(String, String, String)> {
    let (question, assistant) = (content(messages, 0)?, content(messages, 1)?);
    let boxed = Regex::new(r"\\boxed\{(.*?)\}").expect("static regex");
    let answer = boxed.captures_iter(assistant).last().map(|c| c[1].to_string()).unwrap_or_default();
    let trace = match assistant.rfind(&format!("\\boxed{{{answer}}}")) {
        Some(i) if !answer.is_empty() => py_strip(&assistant[..i]).to_string(),
        _ => assistant.to_string(),
    };
    Some((question.to_string(), trace, answer))
}

/// `_parse_code_output_prediction`: the answer is the last `{"output": "…"}`; the trace is the
/// text with the *first* occurrence of that literal removed.
fn parse_code_output(messages: &[Value]) -> Option<(String, String, String)> {
    let (question, assistant) = (content(messages, 0)?, content(messages, 1)?);
    let output = Regex::new(r#"\{"output": "(.*?)"\}"#).expect("static regex");
    let answer = output.captures_iter(assistant).last().map(|c| c[1].to_string()).unwrap_or_default();
    let trace = if answer.is_empty() { assistant.to_string() } else { assistant.replacen(&format!("{{\"output\": \"{answer}\"}}"), "", 1) };
    Some((question.to_string(), trace, answer))
}

/// (question, reference text, source) of SYNTHETIC-1-SFT's samples.
async fn synthetic_1(loader: &mut Loader<'_>, task: &EvalTask) -> anyhow::Result<Vec<(String, String, String)>> {
    let target = task.dataset.target_size.map(|t| t as usize);
    let mut samples = Vec::new();
    let mut parsed = 0;
    let keep_supported = |buffer: &mut Vec<(Value, String)>| {
        buffer.retain(|(row, _)| SUPPORTED_TASK_TYPES.contains(&row.get("task_type").and_then(Value::as_str).unwrap_or("unknown")))
    };
    let parse_more = |buffer: &[(Value, String)], parsed: &mut usize, samples: &mut Vec<(String, String, String)>| {
        while *parsed < buffer.len() {
            let (row, source) = &buffer[*parsed];
            *parsed += 1;
            let math = row.get("task_type").and_then(Value::as_str) == Some("verifiable_math");
            let Some(parts) = messages(row).and_then(|m| if math { parse_math(m) } else { parse_code_output(m) }) else { continue };
            let (question, trace, answer) = parts;
            let reference = if math {
                format!("{} \\boxed{{{answer}}}", py_strip(&trace))
            } else {
                format!("{} {{\"output\": \"{answer}\"}}", py_strip(&trace))
            };
            samples.push((question, reference, source.clone()));
            if target.is_some_and(|t| samples.len() >= t) {
                break;
            }
        }
    };
    loader.fetch(task.pages.unwrap_or(1) as usize).await?;
    keep_supported(&mut loader.buffer);
    parse_more(&loader.buffer, &mut parsed, &mut samples);
    if let Some(target) = target {
        let (mut extra, mut rounds) = (1, 0);
        while samples.len() < target && rounds < 10 {
            rounds += 1;
            loader.fetch(extra).await?;
            keep_supported(&mut loader.buffer);
            parse_more(&loader.buffer, &mut parsed, &mut samples);
            extra = (extra * 2).min(16);
        }
    }
    Ok(samples)
}

/// (question, reference text, source) of codeforces-cots' samples.
async fn codeforces(loader: &mut Loader<'_>, task: &EvalTask) -> anyhow::Result<Vec<(String, String, String)>> {
    loader.fetch(task.pages.unwrap_or(1) as usize).await?;
    let estimate = |s: &str| s.chars().count() / 4;
    Ok(loader
        .buffer
        .iter()
        .filter_map(|(row, source)| {
            let m = messages(row).filter(|m| m.len() == 2)?;
            let (question, trace) = (content(m, 0)?, content(m, 1)?);
            (estimate(question) + estimate(trace) + 10 <= CODEFORCES_MAX_TOKENS)
                .then(|| (question.to_string(), py_strip(trace).to_string(), source.clone()))
        })
        .collect())
}

pub async fn sample(
    source: &Source<'_>,
    task: &EvalTask,
    seed: &Seed,
    tokenizer: &Tokenizer,
    retry_delay: Duration,
) -> anyhow::Result<Sampled> {
    let mut loader = Loader::new(source, task, seed, retry_delay).await?;
    let texts = match task.dataset.loader.as_str() {
        "synthetic-1-sft" => synthetic_1(&mut loader, task).await?,
        _ => codeforces(&mut loader, task).await?,
    };
    let mut samples = Vec::with_capacity(texts.len());
    for (question, reference, source) in texts {
        let prompt = tokenizer.apply_chat_template(&[("system", REASONING_PROMPT), ("user", &question)], true)?;
        let reference = tokenizer.encode(&reference)?;
        if reference.is_empty() {
            tracing::warn!(task = %task.name, %source, "sample skipped: empty reference");
            continue;
        }
        samples.push(Sample { context: tokenizer.encode(&prompt)?, reference, source });
    }
    anyhow::ensure!(!samples.is_empty(), "no usable samples in {} pages", loader.pages.len());
    Ok(Sampled { samples, pages: loader.pages, failed_pages: loader.failed_pages })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msgs(assistant: &str) -> Vec<Value> {
        vec![json!({"role": "user", "content": "q"}), json!({"role": "assistant", "content": assistant})]
    }

    #[test]
    fn math_answers_follow_upstream_regex_quirks() {
        let (_, trace, answer) = parse_math(&msgs("think \\boxed{1} then \\boxed{\\frac{3}{2}} done")).unwrap();
        assert_eq!(answer, "\\frac{3", "non-greedy: nested braces cut the answer");
        assert_eq!(trace, "think \\boxed{1} then");
        let (_, trace, answer) = parse_math(&msgs("no answer")).unwrap();
        assert_eq!((trace.as_str(), answer.as_str()), ("no answer", ""));
    }

    #[test]
    fn code_output_removes_the_first_occurrence() {
        let (_, trace, answer) = parse_code_output(&msgs("{\"output\": \"a\"} mid {\"output\": \"a\"}")).unwrap();
        assert_eq!((trace.as_str(), answer.as_str()), (" mid {\"output\": \"a\"}", "a"));
    }

    #[test]
    fn python_strip_includes_ascii_separators() {
        assert_eq!(py_strip("\x1c\t x \u{3000}\n"), "x");
    }
}
