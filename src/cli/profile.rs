use std::io::Write;
use std::path::PathBuf;

use super::args::CompetitionArgs;
use crate::competition::Profile;
use crate::exit::Outcome;
use crate::printer::Printer;

/// Show, list or check competition profiles.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  valkit profile list\n  valkit profile show sn9 > my-subnet.toml   # edit, then --competitions\n  valkit profile check my-subnet.toml\n  valkit profile step --profile sn9 --block 5200000 --step 7"
)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Print a built-in profile as TOML.
    Show {
        /// The built-in profile: sn9 or sn37 (see `valkit profile list`).
        name: String,
    },
    /// List the built-in profiles.
    List,
    /// Validate a profile TOML file and summarise its schedule.
    Check {
        /// The profile TOML file to validate.
        file: PathBuf,
    },
    /// Print the competition id a step evaluates at a block: upstream's round robin,
    /// `schedule(block)[step % len]` (with --all: every active id, one per line).
    Step {
        #[command(flatten)]
        competition: CompetitionArgs,
        /// The block whose schedule entry applies.
        #[arg(long, value_name = "N")]
        block: u64,
        /// The validator's step counter.
        #[arg(long, value_name = "N", default_value_t = 0, conflicts_with = "all")]
        step: u64,
        /// Print every competition active at the block.
        #[arg(long)]
        all: bool,
    },
}

pub fn exec(args: Args, printer: Printer) -> anyhow::Result<Outcome> {
    let mut out = printer.stdout();
    match args.action {
        Action::Show { name } => out.write_all(Profile::builtin_text(&name)?.as_bytes())?,
        Action::List => {
            for name in Profile::builtin_names() {
                let p = Profile::builtin(name)?;
                writeln!(out, "{name}\tnetuid {}\t{} schedule entries", p.netuid, p.schedule.len())?;
            }
        }
        Action::Check { file } => {
            let p = Profile::from_file(&file)?;
            writeln!(out, "{}: profile {} for netuid {} is valid", file.display(), p.name, p.netuid)?;
            for entry in &p.schedule {
                let comps: Vec<String> =
                    entry.competitions.iter().map(|c| format!("{} (id {}, reward {})", c.name, c.id, c.reward)).collect();
                writeln!(out, "  from block {}: {}", entry.block, comps.join(", "))?;
            }
        }
        Action::Step { competition, block, step, all } => {
            let profile = competition.resolve()?;
            let entry = profile
                .schedule_at(block)
                .ok_or_else(|| anyhow::anyhow!("profile {} has no competition at block {block}", profile.name))?;
            let ids: Vec<u16> = entry.competitions.iter().map(|c| c.id).collect();
            anyhow::ensure!(!ids.is_empty(), "profile {} schedules no competition at block {block}", profile.name);
            if all {
                for id in ids {
                    writeln!(out, "{id}")?;
                }
            } else {
                writeln!(out, "{}", ids[(step % ids.len() as u64) as usize])?;
            }
        }
    }
    out.flush()?;
    Ok(Outcome::Done)
}
