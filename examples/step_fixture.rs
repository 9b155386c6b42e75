//! A step of eval-losses for `scripts/bench/step.sh`: `distinct` random Llama models of a
//! realistic small shape, the first `copies` of them re-uploaded once more by another miner (a
//! directory of its own, the same files), the `models` table fetch-models would write (model
//! hashes included) and a `batches` table of random tokens.
//!
//!   cargo run --release --example step_fixture -- DIR DISTINCT COPIES

use std::collections::BTreeMap;
use std::path::Path;

use valkit::tables::{self, batches, models};

/// Llama hidden 512 × 8 layers, vocab 32,000 (about 60M parameters), as the eval-losses bench's
/// `small` shape; 2 batches of 1,024 tokens keep a step of several models in a minute on 2 cores.
const HIDDEN: usize = 512;
const INTERMEDIATE: usize = 1408;
const LAYERS: usize = 8;
const HEADS: usize = 8;
const VOCAB: usize = 32_000;
const BATCHES: usize = 2;
const TOKENS: usize = 1024;

/// xorshift64*: reproducible weights without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-scale, scale).
    fn weight(&mut self, scale: f32) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
    }
}

fn write_model(dir: &Path, seed: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS, "vocab_size": VOCAB, "max_position_embeddings": TOKENS,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": false, "hidden_act": "silu",
        "torch_dtype": "float32"
    });
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config)?)?;
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![VOCAB, HIDDEN]),
        ("model.norm.weight".into(), vec![HIDDEN]),
        ("lm_head.weight".into(), vec![VOCAB, HIDDEN]),
    ];
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        for (name, shape) in [
            ("input_layernorm.weight", vec![HIDDEN]),
            ("post_attention_layernorm.weight", vec![HIDDEN]),
            ("self_attn.q_proj.weight", vec![HIDDEN, HIDDEN]),
            ("self_attn.k_proj.weight", vec![HIDDEN, HIDDEN]),
            ("self_attn.v_proj.weight", vec![HIDDEN, HIDDEN]),
            ("self_attn.o_proj.weight", vec![HIDDEN, HIDDEN]),
            ("mlp.gate_proj.weight", vec![INTERMEDIATE, HIDDEN]),
            ("mlp.up_proj.weight", vec![INTERMEDIATE, HIDDEN]),
            ("mlp.down_proj.weight", vec![HIDDEN, INTERMEDIATE]),
        ] {
            shapes.push((format!("{p}.{name}"), shape));
        }
    }
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut data: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, shape) in shapes {
        let n: usize = shape.iter().product();
        let norm = name.ends_with("norm.weight");
        let bytes: Vec<u8> = (0..n).flat_map(|_| if norm { 1.0f32 } else { rng.weight(0.02) }.to_le_bytes()).collect();
        data.insert(name, (shape, bytes));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = data
        .iter()
        .map(|(name, (shape, bytes))| {
            Ok((name.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)?))
        })
        .collect::<anyhow::Result<_>>()?;
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors"))?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, distinct, copies] = args.as_slice() else {
        anyhow::bail!("usage: step_fixture DIR DISTINCT COPIES");
    };
    let (dir, distinct, copies): (&Path, usize, usize) = (Path::new(dir), distinct.parse()?, copies.parse()?);
    anyhow::ensure!(copies <= distinct, "at most one copy per distinct model");
    let files = ["config.json".to_string(), "model.safetensors".to_string()];
    let mut rows = Vec::new();
    let mut uid = 0u16;
    for i in 0..distinct {
        let original = dir.join(format!("model-{i}"));
        write_model(&original, i as u64 + 1)?;
        let hash = valkit::hub::hash::hash_of_files(&original, &files)?;
        let mut snapshots = vec![original.clone()];
        if i < copies {
            let copy = dir.join(format!("copy-of-model-{i}"));
            std::fs::create_dir_all(&copy)?;
            for f in &files {
                std::fs::copy(original.join(f), copy.join(f))?;
            }
            snapshots.push(copy);
        }
        for path in snapshots {
            rows.push(models::Row {
                uid,
                hotkey: format!("bench-hotkey-{uid}"),
                competition_id: Some(1),
                repo_id: Some(format!("bench/{}", path.file_name().unwrap_or_default().to_string_lossy())),
                revision: None,
                commit_block: Some(100 + u64::from(uid)),
                local_path: Some(path.display().to_string()),
                size_bytes: None,
                n_params: None,
                architecture: Some("LlamaForCausalLM".into()),
                status: models::Status::Ok,
                reason: None,
                in_step: true,
                step_reason: Some("new".into()),
                model_hash: Some(hash.clone()),
            });
            uid += 1;
        }
    }
    let mut rng = Rng(7);
    let batch_rows = (0..BATCHES)
        .map(|i| batches::Row {
            competition_id: 1,
            task: "BENCH".into(),
            batch_index: i as u32,
            token_ids: (0..TOKENS).map(|_| (rng.next() % VOCAB as u64) as u32).collect(),
            context_len: 0,
            source: "bench".into(),
        })
        .collect();
    let provenance = BTreeMap::new();
    std::fs::write(dir.join("models.parquet"), tables::encode_file::<models::Models>(rows, &provenance)?)?;
    std::fs::write(dir.join("batches.parquet"), tables::encode_file::<batches::Batches>(batch_rows, &provenance)?)?;
    Ok(())
}
