use super::args::CompetitionArgs;
use crate::exit::Outcome;
use crate::files::Location;
use crate::format::shortest_f32;
use crate::printer::Printer;
use crate::stages::compute_wins::{self, Overrides};

/// Score one competition step from stored losses: wins, weights and the next tracker.
#[derive(Debug, clap::Args)]
#[command(
    allow_negative_numbers = true,
    after_help = "Examples:\n  valkit compute-wins --profile sn9 --competition-id 4 \\\n      --metagraph metagraph.parquet --losses losses.parquet \\\n      --tracker state/tracker.parquet --out-dir state/\n\nRe-score the same losses with a faster-decaying epsilon:\n  valkit compute-wins --profile sn9 --competition-id 4 \\\n      --metagraph metagraph.parquet --losses losses.parquet \\\n      --epsilon-decay-blocks 7200 --out-dir what-if/\n\nWrites OUT_DIR/wins.parquet, OUT_DIR/weights.parquet and OUT_DIR/tracker.parquet (all or none)."
)]
pub struct Args {
    #[command(flatten)]
    competition: CompetitionArgs,
    /// The competition this step evaluates.
    #[arg(long, value_name = "ID")]
    competition_id: u16,
    /// The metagraph table (uids, hotkeys, commitments).
    #[arg(long, value_name = "FILE")]
    metagraph: String,
    /// Losses tables; repeat for shards from several hosts. `-` reads stdin.
    #[arg(long, value_name = "FILE", required = true, num_args = 1..)]
    losses: Vec<String>,
    /// The tracker written by the previous step (omit on the first step).
    #[arg(long, value_name = "FILE")]
    tracker: Option<String>,
    /// The current block [default: the block the metagraph was read at].
    #[arg(long, value_name = "N")]
    cur_block: Option<u64>,
    /// Directory (or object prefix, `s3://bucket/step/`) for wins.parquet, weights.parquet and
    /// tracker.parquet.
    #[arg(long, value_name = "DIR")]
    out_dir: String,
    /// Override epsilon's starting value.
    #[arg(long, value_name = "X", help_heading = "Re-scoring overrides")]
    epsilon_start: Option<f64>,
    /// Override epsilon's fully decayed value.
    #[arg(long, value_name = "X", help_heading = "Re-scoring overrides")]
    epsilon_end: Option<f64>,
    /// Override the number of blocks epsilon takes to decay.
    #[arg(long, value_name = "N", help_heading = "Re-scoring overrides")]
    epsilon_decay_blocks: Option<u64>,
    /// Override the tracker EMA factor (weight of the old value).
    #[arg(long, value_name = "X", help_heading = "Re-scoring overrides")]
    alpha: Option<f64>,
    /// Override the softmax temperature.
    #[arg(long, value_name = "X", help_heading = "Re-scoring overrides")]
    temperature: Option<f64>,
    /// Override the threshold under which tracker weights are zeroed.
    #[arg(long, value_name = "X", help_heading = "Re-scoring overrides")]
    weight_threshold: Option<f64>,
    /// Override the keep-set size.
    #[arg(long, value_name = "N", help_heading = "Re-scoring overrides")]
    sample_min: Option<usize>,
    #[command(flatten)]
    pub(super) json: super::args::JsonArg,
}

pub fn exec(args: Args, printer: Printer) -> anyhow::Result<Outcome> {
    let options = compute_wins::Options {
        profile: args.competition.resolve()?,
        competition_id: args.competition_id,
        metagraph: Location::parse(&args.metagraph)?,
        losses: args.losses.iter().map(|l| Location::parse(l)).collect::<Result<_, _>>()?,
        tracker: args.tracker.as_deref().map(Location::parse).transpose()?,
        current_block: args.cur_block,
        out_dir: Location::parse(&args.out_dir)?,
        overrides: Overrides {
            epsilon_start: args.epsilon_start,
            epsilon_end: args.epsilon_end,
            epsilon_decay_blocks: args.epsilon_decay_blocks,
            alpha: args.alpha,
            temperature: args.temperature,
            weight_threshold: args.weight_threshold,
            sample_min: args.sample_min,
        },
    };
    let (outcome, summary) = compute_wins::run(&options)?;
    match (&outcome, summary) {
        (_, Some(s)) => {
            let weights: Vec<String> = s
                .nonzero_weights
                .iter()
                .map(|(uid, w)| {
                    let from = s.weight_from.get(uid).map(Vec::as_slice).unwrap_or_default();
                    let names: Vec<String> = from.iter().map(|c| c.to_string()).collect();
                    let elsewhere = if from.contains(&s.competition_id) { "" } else { ", not in this step" };
                    format!("  uid {uid:>5}  {}  (competition {}{elsewhere})", shortest_f32(*w), names.join(", "))
                })
                .collect();
            let outputs = format!("{}/{{wins,weights,tracker}}.parquet", s.out_dir.trim_end_matches('/'));
            let human = format!(
                "competition {} at block {}: {} uids scored, top uid {}\nsubnet weights that survive the u16 conversion (each from the tracker of its competition):\n{}\nwrote {}",
                s.competition_id,
                s.cur_block,
                s.uids,
                s.top_uid,
                weights.join("\n"),
                crate::format::printable(&outputs, &[])
            );
            printer.summary(&human, &serde_json::to_value(&s)?)?;
        }
        (Outcome::NothingToDo { why }, None) => {
            printer.summary(&format!("nothing to do: {why}"), &serde_json::json!({ "nothing_to_do": why }))?
        }
        _ => {}
    }
    Ok(outcome)
}
