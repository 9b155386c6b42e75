//! The only code that writes to the terminal. stdout carries data (Parquet with `-o -`, `--json`
//! summaries, `inspect` rows); everything meant for people goes to stderr.

#![allow(clippy::print_stderr)]

use std::io::{self, IsTerminal, Write};

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    quiet: bool,
    json: bool,
}

impl Printer {
    pub fn new(quiet: bool, json: bool) -> Self {
        Self { quiet, json }
    }

    /// The same printer with its summary kept off stdout, for a stage whose output is stdout.
    pub fn stdout_taken(self) -> Self {
        Self { json: false, ..self }
    }

    /// Whether a stage was asked for a one-line JSON summary on stdout.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Whether stdout is a terminal (inspect aligns columns there).
    pub fn stdout_is_terminal(&self) -> bool {
        io::stdout().is_terminal()
    }

    pub fn stdout(&self) -> io::StdoutLock<'static> {
        io::stdout().lock()
    }

    /// The end-of-stage summary: one JSON line on stdout with `--json`, else prose on stderr.
    pub fn summary(&self, human: &str, json: &serde_json::Value) -> io::Result<()> {
        if self.json {
            let mut out = self.stdout();
            writeln!(out, "{json}")?;
            out.flush()
        } else {
            if !self.quiet {
                eprintln!("{human}");
            }
            Ok(())
        }
    }

    /// Extra information for people, silenced by `-q`.
    pub fn note(&self, message: &str) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }

    /// The single line a failed run prints, with its whole cause chain.
    pub fn error(&self, err: &anyhow::Error) {
        eprintln!("error: {err:#}");
    }
}
