//! The checkpoint of an eval-losses run: a journal beside the output, one JSON line per finished
//! model, fsynced before the next model starts, so that kill -9, SIGTERM or a full disk loses at
//! most the model that was running. `--resume` reads it back; publishing the output removes it.
//!
//! Line 1 names the run (batches, device, dtype, shard); each later line is one model's rows,
//! keyed by the uid, hotkey and snapshot they were computed for. Losses are stored as their f64
//! bits, so a resumed table is byte-identical to an uninterrupted one. A torn last line (the
//! process died while writing it) is ignored; damage anywhere else is an error.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::tables::losses;

/// What the rows of a journal were computed with; resuming under anything else would mix tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub valkit_journal: u32,
    pub batches_sha256: String,
    pub device: String,
    pub dtype: String,
    pub shard: String,
}

/// One model's rows and what they belong to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub uid: u16,
    pub hotkey: String,
    pub local_path: Option<String>,
    pub rows: Vec<JournalRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalRow {
    competition_id: u16,
    task: String,
    batch_index: u32,
    loss_bits: u64,
    n_tokens: u32,
    status: String,
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    evaluated_as: Option<u16>,
}

impl JournalRow {
    pub fn from_row(r: &losses::Row) -> Self {
        Self {
            competition_id: r.competition_id,
            task: r.task.clone(),
            batch_index: r.batch_index,
            loss_bits: r.loss.to_bits(),
            n_tokens: r.n_tokens,
            status: r.status.as_str().to_string(),
            reason: r.reason.clone(),
            evaluated_as: r.evaluated_as,
        }
    }

    pub fn to_row(&self, uid: u16, hotkey: &str) -> anyhow::Result<losses::Row> {
        Ok(losses::Row {
            uid,
            hotkey: hotkey.to_string(),
            competition_id: self.competition_id,
            task: self.task.clone(),
            batch_index: self.batch_index,
            loss: f64::from_bits(self.loss_bits),
            n_tokens: self.n_tokens,
            status: self.status.parse().map_err(|e: String| anyhow::anyhow!(e))?,
            reason: self.reason.clone(),
            evaluated_as: self.evaluated_as,
        })
    }
}

/// `dir/.NAME.journal` for the output `dir/NAME`.
pub fn path_for(out: &Path) -> PathBuf {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    out.with_file_name(format!(".{name}.journal"))
}

/// The entries of an earlier, interrupted run, when its header matches `expected`.
pub fn read(path: &Path, expected: &Header) -> anyhow::Result<Vec<Entry>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let lines: Vec<String> =
        BufReader::new(file).lines().collect::<Result<_, _>>().with_context(|| format!("reading {}", path.display()))?;
    let Some(first) = lines.first() else { return Ok(Vec::new()) };
    let header: Header = match serde_json::from_str(first) {
        Ok(h) => h,
        // Died while writing the header: nothing was journaled.
        Err(_) if lines.len() == 1 => return Ok(Vec::new()),
        Err(e) => bail!("{}: not an eval-losses journal ({e})", path.display()),
    };
    if header != *expected {
        bail!(
            "{}: an interrupted run with other settings (batches {}, device {}, dtype {}, shard {}); finish it with those or delete the journal",
            path.display(),
            &header.batches_sha256[..12.min(header.batches_sha256.len())],
            header.device,
            header.dtype,
            header.shard
        );
    }
    let mut entries = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(1) {
        match serde_json::from_str::<Entry>(line) {
            Ok(entry) => entries.push(entry),
            Err(_) if i == lines.len() - 1 => {
                tracing::warn!(journal = %path.display(), "last journal line is torn (the run died writing it); its model is recomputed")
            }
            Err(e) => bail!("{}: line {} is damaged ({e})", path.display(), i + 1),
        }
    }
    Ok(entries)
}

/// The journal being written by this run.
pub struct Writer {
    file: File,
    path: PathBuf,
}

impl Writer {
    /// Starts a journal: a fresh one (header first), or appends to `kept`'s file after rewriting
    /// it without torn or dropped lines.
    pub fn create(path: &Path, header: &Header, kept: &[Entry]) -> anyhow::Result<Self> {
        let ctx = || format!("writing the journal {}", path.display());
        let mut file = OpenOptions::new().create(true).write(true).truncate(true).open(path).with_context(ctx)?;
        let mut text = serde_json::to_string(header)?;
        text.push('\n');
        for entry in kept {
            text.push_str(&serde_json::to_string(entry)?);
            text.push('\n');
        }
        file.write_all(text.as_bytes()).with_context(ctx)?;
        file.sync_data().with_context(ctx)?;
        Ok(Self { file, path: path.to_path_buf() })
    }

    /// Appends one model's rows and makes them durable before returning.
    pub fn append(&mut self, entry: &Entry) -> anyhow::Result<()> {
        let ctx = || format!("writing the journal {}", self.path.display());
        let mut line = serde_json::to_string(entry)?;
        line.push('\n');
        self.file.write_all(line.as_bytes()).with_context(ctx)?;
        self.file.sync_data().with_context(ctx)
    }

    /// The output is published: the journal has served.
    pub fn finish(self) -> anyhow::Result<()> {
        drop(self.file);
        std::fs::remove_file(&self.path).with_context(|| format!("removing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header { valkit_journal: 1, batches_sha256: "ab".repeat(32), device: "cpu".into(), dtype: "f32".into(), shard: "0/1".into() }
    }

    fn entry(uid: u16, loss: f64) -> Entry {
        let row = losses::Row {
            uid,
            hotkey: format!("hk{uid}"),
            competition_id: 1,
            task: "WEB".into(),
            batch_index: 0,
            loss,
            n_tokens: 7,
            status: losses::Status::Ok,
            reason: None,
            evaluated_as: None,
        };
        Entry { uid, hotkey: row.hotkey.clone(), local_path: Some("/m".into()), rows: vec![JournalRow::from_row(&row)] }
    }

    #[test]
    fn entries_survive_exactly_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(&dir.path().join("losses.parquet"));
        assert!(path.ends_with(".losses.parquet.journal"));
        let mut w = Writer::create(&path, &header(), &[]).unwrap();
        w.append(&entry(1, 0.1 + 0.2)).unwrap();
        w.append(&entry(2, f64::INFINITY)).unwrap();
        drop(w);
        // A process killed halfway through its next line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"uid\":3,\"hotk").unwrap();
        let entries = read(&path, &header()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].rows[0].to_row(1, "hk1").unwrap().loss.to_bits(), (0.1f64 + 0.2).to_bits());
        assert_eq!(entries[1].rows[0].to_row(2, "hk2").unwrap().loss, f64::INFINITY);
        let other = Header { dtype: "bf16".into(), ..header() };
        assert!(read(&path, &other).unwrap_err().to_string().contains("dtype f32"));
        // Damage before the last line is not a torn write.
        std::fs::write(
            &path,
            format!("{}\nnot json\n{}\n", serde_json::to_string(&header()).unwrap(), serde_json::to_string(&entry(1, 1.0)).unwrap()),
        )
        .unwrap();
        assert!(read(&path, &header()).unwrap_err().to_string().contains("line 2 is damaged"));
    }
}
