//! `report`: one step's tables (and earlier steps' for the history) → a self-contained HTML page.
//! Reads step directories as `scripts/run-loop.sh` and `compute-wins --out-dir` leave them, or
//! tables named one by one; writes the page atomically.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Serialize;

use crate::exit::Outcome;
use crate::files::{self, Location};
use crate::report::{self, StepTables};
use crate::tables::{self, clips, consensus, losses, models, tracker, weights, wins};

pub struct Options {
    /// Step directories, in any order; the one scored at the highest block is reported.
    pub steps: Vec<PathBuf>,
    /// Tables of the reported step given one by one (they override its directory's).
    pub wins: Option<Location>,
    pub weights: Option<Location>,
    pub tracker: Option<Location>,
    pub losses: Vec<Location>,
    pub models: Option<Location>,
    /// Default: `report.html` in the reported step's directory (or the current one).
    pub out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub out: String,
    pub steps: usize,
    pub charts: usize,
    pub competition_id: u16,
    pub top_uid: Option<u16>,
}

pub fn run(opts: &Options) -> anyhow::Result<(Outcome, Summary)> {
    let mut seen = BTreeSet::new();
    let mut steps = Vec::new();
    for dir in &opts.steps {
        // `steps/latest` is a link to a step already listed by a glob.
        let real = dir.canonicalize().with_context(|| format!("cannot open step directory {}", dir.display()))?;
        if !seen.insert(real) {
            continue;
        }
        match read_dir_step(dir)? {
            Some(step) => steps.push((dir.clone(), step)),
            None => tracing::warn!("{}: no wins.parquet and weights.parquet (an unfinished step?); left out", dir.display()),
        }
    }
    steps.sort_by_key(|(_, s)| (block(s), s.label.clone()));
    match (&opts.wins, &opts.weights) {
        (Some(wins), Some(weights)) => {
            let tables = Tables { wins, weights, tracker: opts.tracker.as_ref(), losses: &opts.losses, models: opts.models.as_ref() };
            steps.push((PathBuf::new(), read_step(wins.to_string(), &tables)?));
        }
        (None, None) => {
            let Some((_, last)) = steps.last_mut() else {
                bail!("nothing to report: give a step directory (e.g. WORKDIR/steps/latest) or --wins and --weights");
            };
            if let Some(t) = &opts.tracker {
                last.tracker = tables::read::<tracker::Tracker>(t)?.rows;
            }
            if !opts.losses.is_empty() {
                last.losses = read_losses(&opts.losses)?;
            }
            if opts.models.is_some() {
                last.models = read_models(opts.models.as_ref())?;
            }
        }
        _ => bail!("--wins and --weights go together (the tables of the step to report)"),
    }
    let out = match (&opts.out, steps.last()) {
        (Some(out), _) => out.clone(),
        (None, Some((dir, _))) if !dir.as_os_str().is_empty() => dir.join("report.html"),
        _ => PathBuf::from("report.html"),
    };
    let count = steps.len();
    let tables: Vec<StepTables> = steps.into_iter().map(|(_, s)| s).collect();
    let rendered = report::render(&tables)?;
    files::write(&Location::Path(out.clone()), rendered.html.as_bytes())?;
    Ok((
        Outcome::Done,
        Summary {
            out: out.display().to_string(),
            steps: count,
            charts: rendered.charts,
            competition_id: rendered.competition_id,
            top_uid: rendered.top_uid,
        },
    ))
}

fn block(step: &StepTables) -> u64 {
    step.provenance.get("cur_block").and_then(|b| b.parse().ok()).unwrap_or(0)
}

/// Where one step's tables are.
struct Tables<'a> {
    wins: &'a Location,
    weights: &'a Location,
    tracker: Option<&'a Location>,
    losses: &'a [Location],
    models: Option<&'a Location>,
}

fn read_step(label: String, at: &Tables<'_>) -> anyhow::Result<StepTables> {
    let wins = tables::read::<wins::Wins>(at.wins)?;
    Ok(StepTables {
        label,
        provenance: wins.meta.provenance,
        wins: wins.rows,
        weights: tables::read::<weights::Weights>(at.weights)?.rows,
        tracker: at.tracker.map(tables::read::<tracker::Tracker>).transpose()?.map(|t| t.rows).unwrap_or_default(),
        losses: read_losses(at.losses)?,
        models: read_models(at.models)?,
        consensus: None,
    })
}

/// A step directory's tables; `None` when it has no wins and weights (a cycle that stopped early).
fn read_dir_step(dir: &Path) -> anyhow::Result<Option<StepTables>> {
    let at = |name: &str| Location::Path(dir.join(name));
    let present = |name: &str| dir.join(name).exists().then(|| at(name));
    let (Some(wins), Some(weights)) = (present("wins.parquet"), present("weights.parquet")) else {
        return Ok(None);
    };
    // losses.parquet, or the shards of a spread evaluation (losses-0.parquet, …).
    let mut losses: Vec<Location> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("losses") && n.ends_with(".parquet")))
        .map(Location::Path)
        .collect();
    losses.sort_by_key(|l| l.to_string());
    let (tracker, models) = (present("tracker.parquet"), present("models.parquet"));
    let label = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    let tables = Tables { wins: &wins, weights: &weights, tracker: tracker.as_ref(), losses: &losses, models: models.as_ref() };
    let mut step = read_step(label, &tables)?;
    // valkit consensus' prediction for the step's weights (run-loop writes it before set-weights).
    if let (Some(uids), Some(clips)) = (present("consensus.parquet"), present("clips.parquet")) {
        let uids = tables::read::<consensus::Consensus>(&uids)?;
        let mine = uids.meta.provenance.get(consensus::PROVENANCE_MINE_UID).and_then(|u| u.parse().ok());
        let clips = tables::read::<clips::Clips>(&clips)?.rows;
        step.consensus = Some(report::Prediction { provenance: uids.meta.provenance, uids: uids.rows, clips, mine });
    }
    Ok(Some(step))
}

fn read_losses(files_: &[Location]) -> anyhow::Result<Vec<losses::Row>> {
    let mut rows = Vec::new();
    for location in files_ {
        rows.extend(tables::read::<losses::Losses>(location)?.rows);
    }
    Ok(rows)
}

fn read_models(location: Option<&Location>) -> anyhow::Result<Vec<models::Row>> {
    Ok(match location {
        Some(l) => tables::read::<models::Models>(l)?.rows,
        None => Vec::new(),
    })
}
