use crate::exit::Outcome;
use crate::files::Location;
use crate::printer::Printer;
use crate::stages::inspect::{self, Format};

/// Show a table's name, schema version, provenance and rows.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  valkit inspect out/weights.parquet\n  valkit inspect losses.parquet --json | jq 'select(.status != \"ok\")'\n  valkit inspect wins.parquet --csv > wins.csv\n  valkit inspect batches.parquet --meta"
)]
pub struct Args {
    /// A Parquet file, or `-` for stdin.
    #[arg(value_name = "FILE")]
    file: String,
    /// Rows as CSV.
    #[arg(long, conflicts_with = "meta")]
    csv: bool,
    /// Only the metadata (table, schema version, provenance, columns) as one JSON object.
    #[arg(long)]
    meta: bool,
    /// Show at most N rows.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

pub fn exec(args: Args, printer: Printer) -> anyhow::Result<Outcome> {
    let format = match (args.meta, args.csv, printer.json()) {
        (true, _, _) => Format::Meta,
        (false, true, _) => Format::Csv,
        (false, false, true) => Format::Json,
        (false, false, false) => Format::Table,
    };
    let options = inspect::Options { input: Location::parse(&args.file), format, limit: args.limit };
    inspect::run(&options, &mut printer.stdout())
}
