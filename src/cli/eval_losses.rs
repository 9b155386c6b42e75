use anyhow::Context;

use crate::exit::Outcome;
use crate::files::Location;
use crate::model::device;
use crate::model::numerics::{self, AttentionRounding, Upcast};
use crate::printer::Printer;
use crate::stages::eval_losses::{self, Shard};

/// Compute every model's loss on every batch of its competition.
#[derive(Debug, clap::Args)]
// The rules are optional here (fetch-models has applied them already): the shared group is.
#[command(mut_group("CompetitionArgs", |g| g.required(false)))]
#[command(
    after_help = "Examples:\n  valkit eval-losses --models models.parquet --batches batches.parquet \\\n      -o losses.parquet\n  valkit eval-losses --models models.parquet --batches batches.parquet \\\n      -o losses-1.parquet --shard 1/4 --resume\n\nWithout --profile/--competitions any supported model is evaluated (fetch-models has already\nenforced the competition's limits); with one, its architectures, parameter bounds and sanity\ncheck apply. Models with the same model hash in the same competition (a miner's copy of
another's upload) are evaluated once, under the lowest uid; each uid still gets its own rows,
whose evaluated_as column names that uid. Shards (K/N, K from 0) split the distinct models in
uid order; their tables concatenate."
)]
pub struct Args {
    /// The models table written by fetch-models.
    #[arg(long, value_name = "FILE")]
    models: String,
    /// The batches table written by sample-batches.
    #[arg(long, value_name = "FILE")]
    batches: String,
    /// Where to write the losses table (`-` for stdout, `s3://bucket/key` for an object store).
    #[arg(long, short, value_name = "FILE")]
    out: String,
    // Without a profile any supported model is evaluated.
    #[command(flatten)]
    competition: super::args::CompetitionArgs,
    /// cpu, or cuda:N with a CUDA build.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// auto (each competition's dtype: bf16 for sn9 and sn37; f32 without a profile), f32 (the
    /// exactness reference), bf16 or f16.
    #[arg(long, default_value = "auto", value_parser = ["auto", "f32", "bf16", "f16"])]
    dtype: String,
    /// Upcast logits to f32 before the cross entropy: auto (as the transformers version the
    /// profile pins does for the model's architecture), always or never. bf16/f16 only.
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = ["auto", "always", "never"])]
    upcast_logits: String,
    /// Where bf16/f16 attention rounds: flash (flash-attention 2, what the validators run) or
    /// eager (transformers' eager attention).
    #[arg(long, value_name = "KERNEL", default_value = "flash", value_parser = ["flash", "eager"])]
    attention: String,
    /// Evaluate only slice K of N (0 <= K < N).
    #[arg(long, value_name = "K/N", default_value = "0/1")]
    shard: Shard,
    /// Keep rows already in --out (same batches file) and evaluate only the rest.
    #[arg(long)]
    resume: bool,
    /// Give up on a model after this many seconds (its worker is killed; its remaining batches
    /// fail) [default: 6 hours].
    #[arg(long, value_name = "SECS")]
    model_timeout: Option<f64>,
    /// Evaluate every model inside this process instead of one worker process per model (a crash
    /// then ends the run; for debugging and profiling).
    #[arg(long)]
    no_isolation: bool,
    /// Evaluate every copy of a model again, as upstream does, instead of once per model hash
    /// (the table is the same; for checking that, and for benchmarks).
    #[arg(long)]
    evaluate_copies: bool,
    /// Load one model at a time. By default the next model's worker loads while the current
    /// one computes, when both fit in memory (the table is the same either way).
    #[arg(long)]
    no_load_ahead: bool,
    #[command(flatten)]
    pub(super) json: super::args::JsonArg,
}

/// The worker process eval-losses runs per model (internal).
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {}

pub fn exec_worker(_: WorkerArgs) -> anyhow::Result<Outcome> {
    eval_losses::worker::serve()?;
    Ok(Outcome::Done)
}

pub fn exec(args: Args, printer: Printer) -> anyhow::Result<Outcome> {
    let profile = args.competition.resolve_if_given()?;
    let device = device::select(&args.device)?;
    let dtype = match args.dtype.as_str() {
        "auto" => None,
        name => Some(numerics::parse_dtype(name).map(|_| name.to_string()).map_err(|e| anyhow::anyhow!("--dtype: {e}"))?),
    };
    // clap has already checked both against their possible values.
    let upcast = Upcast::from_name(&args.upcast_logits).with_context(|| format!("--upcast-logits {:?}", args.upcast_logits))?;
    let attention = AttentionRounding::from_name(&args.attention).with_context(|| format!("--attention {:?}", args.attention))?;
    let model_timeout = args.model_timeout.map(|s| super::args::seconds(s, "--model-timeout")).transpose()?;
    let options = eval_losses::Options {
        models: Location::parse(&args.models)?,
        batches: Location::parse(&args.batches)?,
        out: Location::parse(&args.out)?,
        profile,
        device,
        device_name: args.device,
        dtype,
        upcast,
        attention,
        shard: args.shard,
        resume: args.resume,
        model_timeout,
        isolate: !args.no_isolation,
        evaluate_copies: args.evaluate_copies,
        load_ahead: !args.no_load_ahead,
    };
    // CPU-bound: run it off the async executor's worker threads.
    let reporter = printer.reporter();
    let (outcome, summary) = tokio::task::block_in_place(|| eval_losses::run(&options, &reporter))?;
    let copies = summary.models - summary.distinct_models;
    let copies = match copies {
        0 => String::new(),
        n if options.evaluate_copies => format!(", {n} of them copies (evaluated again: --evaluate-copies)"),
        1 => ", 1 of them a copy (its rows are the evaluation of the model it copies)".to_string(),
        n => format!(", {n} of them copies (their rows are the evaluations of the models they copy)"),
    };
    let human = format!(
        "{} models evaluated ({} with failures){copies}, {} rows ({} resumed), {:.0} tokens/s over {:.1} s\nwrote {}",
        summary.models,
        summary.failed_models,
        summary.rows,
        summary.resumed_rows,
        summary.tokens as f64 / summary.seconds.max(1e-9),
        summary.seconds,
        crate::format::printable(&options.out.to_string(), &[])
    );
    printer.writing_to(&options.out).summary(&human, &serde_json::to_value(&summary)?)?;
    Ok(outcome)
}
