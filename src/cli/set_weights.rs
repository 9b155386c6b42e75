use std::path::PathBuf;

use super::args::{seconds, ChainArgs};
use crate::chain::client::endpoint;
use crate::chain::wallet;
use crate::exit::Outcome;
use crate::files::Location;
use crate::printer::Printer;
use crate::stages::set_weights;

/// Send a weights table to the chain as the bittensor SDK would (or preview it with --dry-run).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  valkit set-weights --weights step/weights.parquet --netuid 9 --dry-run\n  valkit set-weights --network finney --netuid 9 --wallet validator \\\n      --hotkey default --weights step/weights.parquet\n\nWithout --network, --dry-run only converts: the exact uids and u16 values that would be sent,\nand the uids whose weight rounds to zero. With --network it first checks, with a message for\neach: the hotkey is registered, has a validator permit, the version key is not below the\nsubnet's WeightsVersionKey, and the rate limit has passed (exit 3, with the blocks to go).\nWith commit-reveal on, it sends a drand-timelocked commit that the chain reveals itself\n(CRv4; CRv3 on older runtimes), after the chain's own checks; each later run confirms earlier\ncommits whose reveal block has passed (revealed, or lost and why). Each submission and each\nconfirmation is a row of the receipts table."
)]
pub struct Args {
    /// The weights table written by compute-wins.
    #[arg(long, value_name = "FILE")]
    weights: String,
    /// The subnet to set weights on (must match the weights table's netuid).
    #[arg(long, value_name = "N")]
    netuid: u16,
    /// finney, test, local (ws://127.0.0.1:9944), or a ws:// / wss:// URL; without it, only --dry-run works.
    #[arg(long, value_name = "NETWORK")]
    network: Option<String>,
    /// Wallet name under --wallet-path.
    #[arg(long, value_name = "NAME", default_value = "default")]
    wallet: String,
    /// Hotkey name in the wallet.
    #[arg(long, value_name = "NAME", default_value = "default")]
    hotkey: String,
    /// Where wallets live [default: ~/.bittensor/wallets].
    #[arg(long, value_name = "DIR")]
    wallet_path: Option<PathBuf>,
    /// Version key sent with the weights [default: the one compute-wins recorded in the table].
    #[arg(long, value_name = "K")]
    version_key: Option<u64>,
    /// The subnet mechanism the weights are for (runtimes with mechanisms).
    #[arg(long, value_name = "N", default_value_t = 0)]
    mechanism: u8,
    /// Encrypt a timelocked commit to this drand round instead of the SDK's (re-sending a lost commit).
    #[arg(long, value_name = "ROUND")]
    reveal_round: Option<u64>,
    /// Check and show what would be sent; send nothing.
    #[arg(long)]
    dry_run: bool,
    /// The receipts table each submission is appended to [default: STATE_DIR/receipts.parquet].
    #[arg(long, value_name = "FILE")]
    receipts: Option<PathBuf>,
    /// Keeps pending commit-reveal salts between runs [default: $VALKIT_STATE_DIR, else
    /// $XDG_STATE_HOME/valkit, else ~/.local/state/valkit].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    pub(super) json: super::args::JsonArg,
}

pub async fn exec(args: Args, printer: Printer) -> anyhow::Result<Outcome> {
    let chain = match &args.network {
        None if !args.dry_run => anyhow::bail!("set-weights needs --network (or --dry-run to only preview the conversion)"),
        None => None,
        Some(network) => {
            let state_dir = args.state_dir.clone().unwrap_or_else(crate::env::state_dir);
            Some(set_weights::ChainOptions {
                endpoint: endpoint(network)?,
                rpc_timeout: seconds(args.chain.rpc_timeout, "--rpc-timeout")?,
                hotkey: wallet::load_named(args.wallet_path.as_deref(), &args.wallet, &args.hotkey)?,
                receipts: Location::Path(args.receipts.clone().unwrap_or_else(|| state_dir.join("receipts.parquet"))),
                state_dir,
            })
        }
    };
    let options = set_weights::Options {
        weights: Location::parse(&args.weights)?,
        netuid: args.netuid,
        mechanism: args.mechanism,
        version_key: args.version_key,
        reveal_round: args.reveal_round,
        dry_run: args.dry_run,
        chain,
    };
    let endpoint = options.chain.as_ref().map(|c| c.endpoint.clone()).unwrap_or_default();
    let (outcome, summary) = args.chain.within_deadline(&endpoint, set_weights::run(&options)).await?;
    let p = &summary.plan;
    let pairs = p.uids.iter().zip(&p.values).map(|(u, v)| format!("{u}={v}")).collect::<Vec<_>>().join(" ");
    let key = p.version_key.map_or("unknown".to_string(), |k| k.to_string());
    let mut json = serde_json::to_value(&summary)?;
    let mut human = match &outcome {
        Outcome::NothingToDo { why } => {
            json["nothing_sent"] = why.clone().into();
            format!(
                "nothing sent to netuid {}: {why}
would send {} uids (version key {key}): {pairs}",
                p.netuid,
                p.uids.len()
            )
        }
        _ => format!("{}: {} uids on netuid {} (version key {key}): {pairs}", summary.action.replace('_', "-"), p.uids.len(), p.netuid),
    };
    if !p.dropped_by_rounding.is_empty() {
        human.push_str(&format!("\nnot sent (weight rounds to 0): uids {:?}", p.dropped_by_rounding));
    }
    if let Some(reason) = &summary.path_reason {
        human.push_str(&format!("\n{reason}"));
    }
    if let Some(included) = &summary.included {
        human.push_str(&format!("\nincluded in block {} ({})", included.block, included.block_hash));
    }
    if let Some(c) = &summary.commit {
        human.push_str(&format!(
            "\ntimelocked to drand round {} ({}); filed under epoch {}, the chain reveals it by block {} ({} bytes, sha256 {})",
            c.reveal_round, c.round_rule, c.commit_epoch, c.reveal_block, c.ciphertext_bytes, c.ciphertext_sha256
        ));
    }
    for r in &summary.reconciled {
        human.push_str(&format!("\n{}", r.line()));
    }
    if let Some(block) = summary.reveal_from_block {
        human.push_str(&format!("\nreveal from block {block} (run set-weights again then)"));
    }
    printer.summary(&human, &json)?;
    Ok(outcome)
}
