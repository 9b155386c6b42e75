use super::args::{seconds, ChainArgs, CompetitionArgs};
use crate::chain::client::endpoint;
use crate::exit::Outcome;
use crate::files::Location;
use crate::printer::Printer;
use crate::stages::sync_metadata;

/// Read a subnet's uids, hotkeys, stakes, permits, weights and model commitments from the chain.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  valkit sync-metadata --network finney --netuid 9 --profile sn9 \\\n      -o metagraph.parquet\n  valkit sync-metadata --network local --netuid 2 --profile sn37 \\\n      --block 1200 -o metagraph.parquet\n\nEvery read is pinned to one block (the finalized head unless --block). A commitment that does\nnot parse is recorded in its uid's metadata_error column. The table's metadata keeps the\nblock, the profile's sync block and its hash (the data seed) and the subnet's weight\nhyperparameters, so no later stage needs the chain."
)]
pub struct Args {
    /// finney, test, local (ws://127.0.0.1:9944), or a ws:// / wss:// URL.
    #[arg(long, value_name = "NETWORK")]
    network: String,
    /// The subnet to read.
    #[arg(long, value_name = "N")]
    netuid: u16,
    #[command(flatten)]
    competition: CompetitionArgs,
    /// Read at this block [default: the finalized head].
    #[arg(long, value_name = "N")]
    block: Option<u64>,
    /// Where to write the metagraph table (`-` for stdout, `s3://bucket/key` for an object store).
    #[arg(short, long, value_name = "FILE")]
    out: String,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    pub(super) json: super::args::JsonArg,
}

pub async fn exec(args: Args, printer: Printer) -> anyhow::Result<Outcome> {
    let options = sync_metadata::Options {
        endpoint: endpoint(&args.network)?,
        netuid: args.netuid,
        profile: args.competition.resolve()?,
        block: args.block,
        rpc_timeout: seconds(args.chain.rpc_timeout, "--rpc-timeout")?,
        out: Location::parse(&args.out)?,
    };
    let (outcome, summary) = args.chain.within_deadline(&options.endpoint, sync_metadata::run(&options)).await?;
    let human = format!(
        "netuid {} at block {}: {} uids, {} commitments ({} unreadable), {} validator permits; sync block {} ({})\nwrote {}",
        summary.netuid,
        summary.block,
        summary.uids,
        summary.commitments,
        summary.metadata_errors,
        summary.validator_permits,
        summary.sync_block,
        summary.sync_block_hash,
        crate::format::printable(&summary.out, &[])
    );
    printer.writing_to(&options.out).summary(&human, &serde_json::to_value(&summary)?)?;
    Ok(outcome)
}
