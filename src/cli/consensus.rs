use crate::exit::Outcome;
use crate::files::Location;
use crate::format::printable;
use crate::printer::Printer;
use crate::stages::consensus;

/// Predict the chain's next epoch of a subnet: consensus, vTrust, incentive and dividends.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  valkit consensus --metagraph metagraph.parquet\n  valkit consensus --metagraph metagraph.parquet -o consensus.parquet \\\n      --clips clips.parquet --json\n  valkit consensus --metagraph metagraph.parquet \\\n      --weights step/weights.parquet \\\n      --hotkey 56c1c771eaf998c6cd90b434313581f9180563b2fee04a9a\n\nReplays the Yuma epoch the chain will run at the subnet's next epoch block, from what\nsync-metadata read (weights, bonds, stake, permits, last updates, the epoch's parameters), in\nthe runtime's fixed-point arithmetic (spec 293's rules). The consensus table holds each uid's\npredicted values (u16, as the chain stores them) beside the chain's from its last epoch; the\nclips table each weight, its miner's consensus and the part clipped above it. With --weights
and --hotkey (your validator's; the demo's uid 0 above), your row is the weights you are about
to set, as set-weights would send them: what vTrust would they keep?"
)]
pub struct Args {
    /// The metagraph table written by sync-metadata.
    #[arg(long, value_name = "FILE")]
    metagraph: String,
    /// Where to write the consensus table (one row per uid).
    #[arg(long, short, value_name = "FILE")]
    out: Option<String>,
    /// Where to write the clips table (one row per validator and miner weighted).
    #[arg(long, value_name = "FILE")]
    clips: Option<String>,
    /// A weights table you are about to set (compute-wins' weights.parquet): your row is
    /// replaced by it, as set-weights would send it, to see what vTrust it would keep.
    #[arg(long, value_name = "FILE", requires = "hotkey")]
    weights: Option<String>,
    /// Your validator's hotkey, whose row --weights replaces: its SS58 address, or with --wallet
    /// its name in the wallet.
    #[arg(long, value_name = "SS58|NAME", requires = "weights")]
    hotkey: Option<String>,
    /// Read --hotkey from this bittensor wallet (as set-weights does).
    #[arg(long, value_name = "NAME", requires = "hotkey")]
    wallet: Option<String>,
    /// Where wallets live [default: ~/.bittensor/wallets].
    #[arg(long, value_name = "DIR", requires = "wallet")]
    wallet_path: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub(super) json: super::args::JsonArg,
}

/// The SS58 address `--hotkey` names: itself, or with `--wallet` that wallet's hotkey of that name.
fn hotkey_address(hotkey: String, wallet: Option<String>, wallet_path: Option<std::path::PathBuf>) -> anyhow::Result<String> {
    let Some(wallet) = wallet else { return Ok(hotkey) };
    Ok(crate::chain::wallet::load_named(wallet_path.as_deref(), &wallet, &hotkey)?.ss58())
}

/// "vTrust 0.300 (chain now 0.000): 0.700 clipped, 0.700 of it on uid 4 (you 1.000, consensus
/// 0.300)", the validator's weight named `whose`.
fn vtrust_line(v: &consensus::Validator, whose: &str) -> String {
    let chain = v.chain_validator_trust.map_or_else(String::new, |c| format!(" (chain now {c:.3})"));
    let most = v.most_clipped.as_ref().map_or_else(String::new, |c| {
        format!(", {:.3} of it on uid {} ({whose} {:.3}, consensus {:.3})", c.clipped, c.miner, c.weight, c.consensus)
    });
    format!("vTrust {:.3}{chain}: {:.3} clipped{most}", v.validator_trust, v.clipped)
}

pub fn exec(args: Args, printer: Printer) -> anyhow::Result<Outcome> {
    let options = consensus::Options {
        metagraph: Location::parse(&args.metagraph)?,
        out: args.out.as_deref().map(Location::parse).transpose()?,
        clips: args.clips.as_deref().map(Location::parse).transpose()?,
        mine: match (args.weights.as_deref(), args.hotkey) {
            (Some(weights), Some(hotkey)) => Some((Location::parse(weights)?, hotkey_address(hotkey, args.wallet, args.wallet_path)?)),
            _ => None,
        },
    };
    let (outcome, summary) = consensus::run(&options)?;
    let mut human = format!(
        "netuid {} epoch at block {} (metagraph of block {}): {} uids, {} validator{} with active stake\n",
        summary.netuid,
        summary.epoch_block,
        summary.metagraph_block,
        summary.uids,
        summary.validators.len(),
        if summary.validators.len() == 1 { "" } else { "s" }
    );
    if let Some(warning) = &summary.rules_warning {
        human.push_str(&format!("warning: {warning}\n"));
    }
    for v in &summary.validators {
        human.push_str(&format!("uid {} {}: {}\n", v.uid, printable(&v.hotkey, &[]), vtrust_line(v, "weight")));
    }
    if let Some(mine) = &summary.mine {
        let m = &mine.validator;
        if mine.validator_permit {
            human.push_str(&format!("with your weights, uid {}: {}\n", m.uid, vtrust_line(m, "you")));
        } else {
            human.push_str(&format!("uid {} has no validator permit: its weights count for nothing in this epoch\n", m.uid));
        }
    }
    for (what, out) in [("consensus", &options.out), ("clips", &options.clips)] {
        if let Some(out) = out {
            human.push_str(&format!("wrote {what} to {}\n", printable(&out.to_string(), &[])));
        }
    }
    printer.summary(human.trim_end(), &serde_json::to_value(&summary)?)?;
    Ok(outcome)
}
