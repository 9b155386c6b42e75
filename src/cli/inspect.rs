use crate::exit::Outcome;
use crate::files::Location;
use crate::printer::Printer;
use crate::stages::inspect::{self, Columns, Format};

/// Show a table's name, schema version, provenance and rows.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  valkit inspect step/wins.parquet\n  valkit inspect step/wins.parquet --describe\n  valkit inspect step/wins.parquet --columns uid,score,win_rate,top\n  valkit inspect losses.parquet --json | grep '\"status\":\"failed\"'\n  valkit inspect step/weights.parquet --csv > weights.csv\n  valkit inspect metagraph.parquet --meta"
)]
pub struct Args {
    /// A Parquet file, `-` for stdin, or an object (`s3://bucket/key`).
    #[arg(value_name = "FILE")]
    file: String,
    /// Rows as CSV.
    #[arg(long, conflicts_with = "meta")]
    csv: bool,
    /// Rows as JSON lines (one object per row).
    #[arg(long, conflicts_with_all = ["csv", "meta"])]
    pub(super) json: bool,
    /// Only the metadata (table, schema version, provenance, columns) as one JSON object.
    #[arg(long)]
    meta: bool,
    /// What each column means (and which the default view shows).
    #[arg(long, conflicts_with_all = ["csv", "meta", "json"])]
    describe: bool,
    /// The columns to print, comma-separated, or `all` [default: a set that fits 120 columns in
    /// the table view; every column in JSON and CSV].
    #[arg(long, value_name = "A,B,…|all", value_delimiter = ',')]
    columns: Vec<String>,
    /// Show at most N rows.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
}

pub fn exec(args: Args, printer: Printer) -> anyhow::Result<Outcome> {
    let format = match (args.meta, args.describe, args.csv, args.json) {
        (true, ..) => Format::Meta,
        (_, true, ..) => Format::Describe,
        (_, _, true, _) => Format::Csv,
        (_, _, _, true) => Format::Json,
        _ => Format::Table,
    };
    let columns = match args.columns.as_slice() {
        [] => Columns::Default,
        [all] if all == "all" => Columns::All,
        names => Columns::Named(names.to_vec()),
    };
    let options = inspect::Options { input: Location::parse(&args.file)?, format, columns, limit: args.limit };
    inspect::run(&options, &mut printer.stdout())
}
