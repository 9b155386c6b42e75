use std::io::Write;
use std::path::PathBuf;

use crate::competition::Profile;
use crate::exit::Outcome;
use crate::printer::Printer;

/// Show, list or check competition profiles.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  valkit profile show sn9 > my-subnet.toml   # then edit and use --competitions my-subnet.toml\n  valkit profile check my-subnet.toml\n  valkit profile list"
)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Print a built-in profile as TOML.
    Show { name: String },
    /// List the built-in profiles.
    List,
    /// Validate a profile TOML file and summarise its schedule.
    Check { file: PathBuf },
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
    }
    out.flush()?;
    Ok(Outcome::Done)
}
