//! The demo's Hugging Face hub: serves the demo subnet's six tiny models (`testdata/models/`, with
//! the test tokenizer) on 127.0.0.1 through the test suite's hub fixture, and writes the demo
//! subnet's metagraph whose commitments point at them — pinned commits and the secure hash each
//! hotkey's miner would have committed. `make demo` runs it in the background while
//! `fetch-models` downloads from it; it serves until killed.
//!
//!     demo_hub METAGRAPH_OUT URL_FILE

#[path = "../tests/fixtures/hub.rs"]
#[allow(dead_code)]
mod hub;

use std::collections::BTreeMap;
use std::path::Path;

use valkit::files::{self, Location};
use valkit::tables::{self, metagraph};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, metagraph_out, url_file] = args.as_slice() else { anyhow::bail!("usage: demo_hub METAGRAPH_OUT URL_FILE") };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = tables::decode_file::<metagraph::Metagraph>(&files::read(&Location::parse(
        &root.join("testdata/demo/subnet-metagraph.parquet").display().to_string(),
    ))?)?;
    let models = tables::decode_file::<valkit::tables::models::Models>(&files::read(&Location::parse(
        &root.join("testdata/demo/models.parquet").display().to_string(),
    ))?)?;
    let server = hub::start();
    let mut rows = Vec::new();
    for (meta, model) in base.rows.iter().zip(&models.rows) {
        let name = Path::new(model.local_path.as_deref().unwrap_or_default()).file_name().unwrap().to_string_lossy().into_owned();
        let mut repo_files = BTreeMap::new();
        for f in ["config.json", "generation_config.json", "model.safetensors"] {
            repo_files.insert(f.to_string(), std::fs::read(root.join("testdata/models").join(&name).join(f))?);
        }
        repo_files.insert("tokenizer.json".into(), std::fs::read(root.join("testdata/tokenizer/tokenizer.json"))?);
        let model_hash = directory_hash(&repo_files);
        let commit = hub::commit_of(&format!("demo/{name}"));
        server.add(&format!("demo/{name}"), &commit, repo_files);
        let secure = valkit::chain::commitment::secure_hash(&model_hash, &meta.hotkey);
        let mut row = meta.clone();
        row.commitment = Some(format!("demo:{name}:{commit}:{secure}:1"));
        (row.repo_namespace, row.repo_name, row.revision) = (Some("demo".into()), Some(name), Some(commit));
        (row.secure_hash, row.competition_id) = (Some(secure), Some(1));
        rows.push(row);
    }
    let bytes = tables::encode_file::<metagraph::Metagraph>(rows, &base.meta.provenance)?;
    files::write(&Location::parse(metagraph_out), &bytes)?;
    std::fs::write(url_file, &server.url)?;
    loop {
        std::thread::park();
    }
}

/// upstream.md §2.3's directory hash of files held in memory: the hash of their per-file hashes,
/// concatenated in `os.walk` order.
fn directory_hash(files: &BTreeMap<String, Vec<u8>>) -> String {
    use valkit::hub::hash::{hash_of_bytes, walk_order_of};
    let names: Vec<String> = files.keys().cloned().collect();
    let joined: String = walk_order_of(&names).iter().map(|n| hash_of_bytes(&files[n])).collect();
    hash_of_bytes(joined.as_bytes())
}
