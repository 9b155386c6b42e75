//! The only code that writes to the terminal. stdout carries data (Parquet with `-o -`, `--json`
//! summaries, `inspect` rows); everything meant for people goes to stderr.

#![allow(clippy::print_stderr)]

use std::io::{self, IsTerminal, Write};

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    quiet: bool,
    json: bool,
    /// Bars only on a terminal, and not under -q or -v (they would tear the logs).
    bars: bool,
}

impl Printer {
    pub fn new(quiet: bool, json: bool) -> Self {
        Self { quiet, json, bars: false }
    }

    /// Allows progress bars when stderr is a terminal and `--no-progress`/`-q`/`-v` are absent.
    pub fn with_progress(self, wanted: bool) -> Self {
        Self { bars: wanted && !self.quiet && io::stderr().is_terminal(), ..self }
    }

    /// The reporter a long stage draws through: a bar per unit of work, or nothing.
    pub fn reporter(&self) -> ProgressReporter {
        ProgressReporter { bar: self.bars.then(indicatif::ProgressBar::hidden) }
    }

    /// The printer for a stage writing `out`: when that is stdout (`-o -`), the table's bytes
    /// take it and the summary stays prose on stderr.
    pub fn writing_to(self, out: &crate::files::Location) -> Self {
        match out {
            crate::files::Location::Std => Self { json: false, ..self },
            _ => self,
        }
    }

    /// Whether a stage was asked for a one-line JSON summary on stdout.
    pub fn json(&self) -> bool {
        self.json
    }

    pub fn stdout(&self) -> io::StdoutLock<'static> {
        io::stdout().lock()
    }

    /// The end-of-stage summary: one JSON line on stdout with `--json`, else prose on stderr
    /// (escaped but for its line breaks: a summary quotes paths, reasons and servers' answers;
    /// text that may hold a line break of its own is escaped where it is quoted).
    pub fn summary(&self, human: &str, json: &serde_json::Value) -> io::Result<()> {
        if self.json {
            let mut out = self.stdout();
            writeln!(out, "{}", crate::format::json_line(json)?)?;
            out.flush()
        } else {
            if !self.quiet {
                eprintln!("{}", crate::format::printable(human, &['\n']));
            }
            Ok(())
        }
    }

    /// The single line a failed run prints, with its whole cause chain.
    pub fn error(&self, err: &anyhow::Error) {
        // Errors quote repository names, reasons and server answers: escaped like any cell.
        eprintln!("error: {}", crate::format::printable(&format!("{err:#}"), &[]));
    }
}

/// indicatif bars for `stages::Reporter`: one bar per model, in tokens, with tokens/s.
pub struct ProgressReporter {
    bar: Option<indicatif::ProgressBar>,
}

impl crate::stages::Reporter for ProgressReporter {
    fn start(&self, name: &str, _steps: u64, tokens: u64) {
        if let Some(bar) = &self.bar {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.reset();
            bar.set_length(tokens);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} tokens, {per_sec} ({eta})")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_message(crate::format::printable(name, &[]).into_owned());
        }
    }

    fn advance(&self, tokens: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(tokens);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// indicatif bars for `fetch_models::DownloadReporter`: an overall bar over models and one bar
/// per file being downloaded.
pub struct DownloadBars {
    bars: Option<(indicatif::MultiProgress, indicatif::ProgressBar)>,
}

impl Printer {
    pub fn download_reporter(&self) -> DownloadBars {
        DownloadBars {
            bars: self.bars.then(|| {
                let multi = indicatif::MultiProgress::with_draw_target(indicatif::ProgressDrawTarget::stderr());
                let overall = multi.add(indicatif::ProgressBar::new(0));
                overall.set_style(
                    indicatif::ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} models ({elapsed})")
                        .expect("static template"),
                );
                overall.set_message("models");
                (multi, overall)
            }),
        }
    }
}

impl crate::stages::fetch_models::DownloadReporter for DownloadBars {
    fn begin(&self, models: u64) {
        if let Some((_, overall)) = &self.bars {
            overall.set_length(models);
        }
    }

    fn file(&self, label: &str) -> Option<Box<dyn crate::hub::Progress>> {
        let (multi, _) = self.bars.as_ref()?;
        Some(Box::new(FileBar(multi.add(file_bar(label)))))
    }

    fn model_done(&self) {
        if let Some((_, overall)) = &self.bars {
            overall.inc(1);
        }
    }

    fn end(&self) {
        if let Some((_, overall)) = &self.bars {
            overall.finish_and_clear();
        }
    }
}

/// One file's bar, labelled with the repository's file name (a miner's text).
fn file_bar(label: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:40!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message(crate::format::printable(label, &[]).into_owned());
    bar
}

struct FileBar(indicatif::ProgressBar);

impl Drop for FileBar {
    /// A download that failed leaves no bar behind.
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

impl crate::hub::Progress for FileBar {
    fn start(&self, total_bytes: u64) {
        self.0.set_length(total_bytes);
    }
    fn advance(&self, bytes_done: u64) {
        self.0.set_position(bytes_done);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::Reporter;

    const HOSTILE: &str = "uid 7 \x1b[2J\x1b]8;;https://evil\x07repo\rfake\u{202e}txt";

    fn escaped(shown: &str) {
        assert!(!shown.contains(['\x1b', '\x07', '\r', '\u{202e}']), "{shown:?}");
        assert!(shown.contains("\\x1b[2J") && shown.contains("\\u{202e}txt"), "{shown:?}");
    }

    #[test]
    fn progress_messages_show_a_miners_text_escaped() {
        let bar = indicatif::ProgressBar::hidden();
        ProgressReporter { bar: Some(bar.clone()) }.start(HOSTILE, 1, 10);
        escaped(&bar.message());
        escaped(&file_bar(HOSTILE).message());
    }
}
