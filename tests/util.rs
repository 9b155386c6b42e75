//! Helpers shared by the integration tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use valkit::files::{InputFile, Location};
use valkit::tables::{self, Table, TableFile};

/// A temporary directory removed when the test ends.
pub struct TestDir {
    dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    pub fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// The binary under test with an environment that cannot reach the network or a user's cache.
pub fn valkit() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_valkit"));
    for (key, _) in std::env::vars() {
        let cloud = ["AWS_", "GOOGLE_", "AZURE_"].iter().any(|p| key.starts_with(p));
        if key.starts_with("HF_") || key == "RUST_LOG" || key.starts_with("HUGGINGFACE") || cloud {
            cmd.env_remove(key);
        }
    }
    cmd.env("HF_HUB_OFFLINE", "1");
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn stdout_text(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("utf-8 stdout")
    }
}

pub fn run(args: &[&str]) -> Run {
    run_command(valkit().args(args))
}

/// Runs a prepared command (`valkit()` with more environment, say) to completion.
pub fn run_command(command: &mut Command) -> Run {
    let Output { status, stdout, stderr } = command.output().expect("valkit runs");
    Run { code: status.code().expect("exit code"), stdout, stderr: String::from_utf8_lossy(&stderr).into_owned() }
}

/// Arguments as owned strings, for lists built up with `extend`.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `run` for arguments built as owned strings.
pub fn run_owned(args: &[String]) -> Run {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&refs)
}

/// Asserts the exit code, showing stderr when it differs.
#[macro_export]
macro_rules! assert_exit {
    ($run:expr, $code:expr) => {{
        let r = &$run;
        assert_eq!(r.code, $code, "exit code {} (expected {}); stderr:\n{}", r.code, $code, r.stderr);
    }};
    ($run:expr, $code:expr, $($context:tt)+) => {{
        let r = &$run;
        assert_eq!(r.code, $code, "exit code {} (expected {}); stderr:\n{}\n{}", r.code, $code, r.stderr, format!($($context)+));
    }};
}

/// An error run: exit 2 and exactly one `error:` line on stderr (after any warnings) that
/// mentions `culprit`.
pub fn assert_bad_input(r: &Run, culprit: &str) {
    assert_exit!(r, 2);
    assert_one_error_line(r, culprit);
}

pub fn assert_one_error_line(r: &Run, culprit: &str) {
    let errors: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "one error line expected, got:\n{}", r.stderr);
    assert_eq!(r.stderr.lines().last(), Some(errors[0]), "the error comes last:\n{}", r.stderr);
    assert!(errors[0].starts_with("error: "), "{}", errors[0]);
    assert!(errors[0].contains(culprit), "error should name {culprit:?}: {}", errors[0]);
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

pub fn demo(name: &str) -> String {
    repo_path(&format!("testdata/demo/{name}")).display().to_string()
}

pub fn write_table<T: Table>(path: &Path, rows: Vec<T::Row>, provenance: &[(&str, &str)]) {
    let prov: BTreeMap<String, String> = provenance.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let bytes = tables::encode_file::<T>(rows, &prov).expect("encode");
    std::fs::write(path, bytes).expect("write table");
}

pub fn read_table<T: Table>(path: &Path) -> TableFile<T::Row> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let input = InputFile { location: Location::Path(path.to_path_buf()), bytes: bytes.into(), sha256: String::new() };
    tables::decode_file::<T>(&input).expect("decode")
}

/// A section of `../shared/spec/vectors.json`.
pub fn vectors(section: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(repo_path("../shared/spec/vectors.json")).expect("../shared/spec/vectors.json");
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    all[section].clone()
}

pub fn num(v: &serde_json::Value) -> f64 {
    match v.as_str() {
        Some("inf") => f64::INFINITY,
        _ => v.as_f64().unwrap(),
    }
}

pub fn f32_bits(v: &serde_json::Value) -> Vec<u32> {
    v["f32_bits"].as_array().unwrap().iter().map(|b| u32::from_str_radix(b.as_str().unwrap(), 16).unwrap()).collect()
}

pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// Writes `batch` as a foreign tool would: default writer settings, only the given metadata.
pub fn write_foreign(path: &Path, batch: &arrow::array::RecordBatch, metadata: &[(&str, &str)]) {
    use parquet::file::metadata::KeyValue;
    let kv = metadata.iter().map(|(k, v)| KeyValue::new(k.to_string(), v.to_string())).collect();
    #[allow(clippy::disallowed_methods)] // deliberately not valkit's writer settings
    let props = parquet::file::properties::WriterProperties::builder().set_key_value_metadata(Some(kv)).build();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    std::fs::write(path, out).unwrap();
}

/// All rows of any Parquet file as one record batch.
pub fn read_batch(path: &Path) -> arrow::array::RecordBatch {
    let bytes = bytes::Bytes::from(std::fs::read(path).unwrap());
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}
