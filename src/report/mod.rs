//! `valkit report`'s content: one competition step (and, given earlier steps, each uid's weight
//! over time) as a self-contained HTML page — a summary of who won and why, charts drawn by
//! plotters as inline SVG, and the tables behind them. Pure: rows in, HTML out; the stage reads
//! the files.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context;
use serde::Serialize;

use crate::format::{shortest_f32, significant};
use crate::tables::{losses, models, tracker, weights, wins};

mod charts;

/// The tables of one step, as compute-wins and the stages before it wrote them.
pub struct StepTables {
    /// The step's name (its directory), shown in the history chart's legend.
    pub label: String,
    /// The wins table's provenance (profile, competition, block, epsilon, …).
    pub provenance: BTreeMap<String, String>,
    pub wins: Vec<wins::Row>,
    pub weights: Vec<weights::Row>,
    pub tracker: Vec<tracker::Row>,
    /// Empty when the step's losses are not at hand.
    pub losses: Vec<losses::Row>,
    /// Empty when the step's models table is not at hand.
    pub models: Vec<models::Row>,
    /// `valkit consensus`' prediction of the chain's next epoch for this step's weights, when the
    /// step has it (run-loop writes it before set-weights).
    pub consensus: Option<Prediction>,
}

/// The `consensus` and `clips` tables of a step, and the validator whose weights they tried.
pub struct Prediction {
    pub provenance: BTreeMap<String, String>,
    pub uids: Vec<crate::tables::consensus::Row>,
    pub clips: Vec<crate::tables::clips::Row>,
    /// The validator `--weights` replaced (provenance `mine_uid`).
    pub mine: Option<u16>,
}

pub struct Report {
    pub html: String,
    pub charts: usize,
    pub competition_id: u16,
    pub top_uid: Option<u16>,
}

#[derive(Serialize)]
struct Chart {
    id: String,
    caption: String,
    svg: String,
}

#[derive(Serialize)]
struct Section {
    id: &'static str,
    title: String,
    intro: String,
    charts: Vec<Chart>,
    table: Option<HtmlTable>,
}

#[derive(Serialize)]
struct HtmlTable {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    /// Row indices drawn emphasised (the winner).
    marked: Vec<usize>,
}

const TEMPLATE: &str = include_str!("report.html");

/// Tracker weights below this are decayed leftovers (e.g. 2e-44), not shown as holding weight.
const SHOWN_WEIGHT: f32 = 1e-6;

/// Renders the last of `steps` (sorted oldest first); earlier steps feed the history chart, and
/// the one just before gives the tracker weights "before".
pub fn render(steps: &[StepTables]) -> anyhow::Result<Report> {
    let step = steps.last().context("no step to report")?;
    let previous = steps.len().checked_sub(2).map(|i| &steps[i]);
    let prov = |key: &str| step.provenance.get(key).cloned().unwrap_or_default();
    let competition_id: u16 = step.wins.first().map(|w| w.competition_id).or_else(|| prov("competition_id").parse().ok()).unwrap_or(0);
    let top = step.wins.iter().find(|w| w.top);

    let mut sections =
        vec![scores_section(step)?, losses_section(step)?, tracker_section(step, previous, competition_id)?, weights_section(step)?];
    if let Some(prediction) = &step.consensus {
        sections.push(consensus_section(prediction)?);
    }
    if steps.len() > 1 {
        sections.push(history_section(steps)?);
    }
    sections.push(failures_section(step));
    let sections: Vec<Section> = sections.into_iter().filter(|s| !s.charts.is_empty() || s.table.is_some()).collect();
    let charts = sections.iter().map(|s| s.charts.len()).sum();

    let summary: Vec<(&str, String)> = [
        ("profile", prov("profile")),
        ("netuid", prov("netuid")),
        ("competition", competition_id.to_string()),
        ("block", prov("cur_block")),
        ("epsilon", prov("epsilon")),
        ("weighting", prov("weighting")),
        ("tracker EMA alpha", prov("alpha")),
        ("uids evaluated", step.wins.iter().filter(|w| w.score.is_finite()).count().to_string()),
        ("uids without a score", step.wins.iter().filter(|w| !w.score.is_finite()).count().to_string()),
        ("steps in this report", steps.len().to_string()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .collect();

    let mut env = minijinja::Environment::new();
    env.add_template("report.html", TEMPLATE).context("the report template")?;
    let html = env
        .get_template("report.html")
        .and_then(|t| {
            t.render(minijinja::context! {
                title => format!("valkit report: {} competition {competition_id}, block {}", prov("profile"), prov("cur_block")),
                version => crate::VERSION,
                step => step.label.as_str(),
                headline => headline(step, top),
                summary => minijinja::value::Serde(&summary),
                sections => minijinja::value::Serde(&sections),
            })
        })
        .context("rendering the report")?;
    Ok(Report { html, charts, competition_id, top_uid: top.map(|w| w.uid) })
}

/// Who won and why, in two or three sentences.
fn headline(step: &StepTables, top: Option<&wins::Row>) -> String {
    let Some(top) = top else {
        return "No uid won this step: no model had a score.".to_string();
    };
    let competitive = step.wins.iter().filter(|w| w.competitive).count();
    // Win rates count the competitive opponents only (SN9's filter drops the rest first).
    let opponents = step.wins.iter().filter(|w| w.competitive && w.uid != top.uid).count();
    let mut text = format!(
        "uid {} won competition {}: it beat {} of its {} competitive opponents (win rate {}) with a score of {}.",
        top.uid,
        top.competition_id,
        top.wins,
        opponents,
        significant(top.win_rate, 4),
        significant(top.score, 7)
    );
    if let Some(best) = step.wins.iter().filter(|w| w.score.is_finite()).min_by(|a, b| a.score.total_cmp(&b.score)) {
        if best.uid != top.uid {
            text.push_str(&format!(
                " The lowest score was uid {}'s ({}), but a model must beat an earlier commit's loss by that commit's epsilon advantage to count as a win.",
                best.uid,
                significant(best.score, 7)
            ));
        }
    }
    text.push_str(&format!(
        " {competitive} uids stayed competitive; the others get no weight from this step. Earlier commits are credited with their epsilon advantage (the ticks in the score chart)."
    ));
    text
}

fn uid_labels(uids: impl Iterator<Item = u16>) -> Vec<String> {
    uids.map(|u| u.to_string()).collect()
}

fn scores_section(step: &StepTables) -> anyhow::Result<Section> {
    let scored: Vec<&wins::Row> = step.wins.iter().filter(|w| w.score.is_finite()).collect();
    let categories = uid_labels(scored.iter().map(|w| w.uid));
    let mut charts = Vec::new();
    if !scored.is_empty() {
        charts.push(chart(
            "scores",
            "Task-weighted score (mean loss, lower is better) per uid; competitive uids in colour. The tick is the score an earlier commit is credited with against later ones: score × (1 − epsilon advantage).",
            charts::bar_chart(&charts::BarChart {
                title: "score per uid (lower is better)",
                x_desc: "uid",
                y_desc: "score",
                categories: &categories,
                series: vec![charts::BarSeries {
                    name: "score".into(),
                    bars: scored.iter().map(|w| charts::Bar { value: w.score, highlight: w.competitive, note: None }).collect(),
                    colour: charts::colour(0),
                }],
                ticks: Some(charts::Ticks {
                    name: "credited with epsilon".into(),
                    values: scored.iter().map(|w| Some(w.score * (1.0 - w.epsilon_adv))).collect(),
                }),
                zoom: true,
            }),
        )?);
        charts.push(chart(
            "win-rates",
            "The fraction of opponents each uid beat; the winner is marked.",
            charts::bar_chart(&charts::BarChart {
                title: "win rate per uid",
                x_desc: "uid",
                y_desc: "win rate",
                categories: &categories,
                series: vec![charts::BarSeries {
                    name: "win rate".into(),
                    bars: scored
                        .iter()
                        .map(|w| charts::Bar { value: w.win_rate, highlight: w.competitive, note: w.top.then(|| "winner".to_string()) })
                        .collect(),
                    colour: charts::colour(2),
                }],
                ticks: None,
                zoom: false,
            }),
        )?);
    }
    let rows = step
        .wins
        .iter()
        .map(|w| {
            vec![
                w.uid.to_string(),
                w.commit_block.map(|b| b.to_string()).unwrap_or_default(),
                significant(w.score, 7),
                significant(w.epsilon_adv, 4),
                yes(w.competitive),
                w.wins.to_string(),
                significant(w.win_rate, 4),
                significant(f64::from(w.tracker_weight), 4),
                yes(w.keep),
                w.score_reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    Ok(Section {
        id: "scores",
        title: "Scores and wins".into(),
        intro: "Each uid's task-weighted loss, its epsilon advantage (how much an earlier commit's loss is discounted against later ones), whether it passed the competitive filter, and the wins that decide the step's weights.".into(),
        charts,
        table: Some(HtmlTable {
            header: vec![
                "uid", "commit block", "score", "epsilon adv", "competitive", "wins", "win rate", "tracker weight", "kept",
                "why no score",
            ],
            marked: step.wins.iter().enumerate().filter(|(_, w)| w.top).map(|(i, _)| i).collect(),
            rows,
        }),
    })
}

fn losses_section(step: &StepTables) -> anyhow::Result<Section> {
    let ok: Vec<&losses::Row> = step.losses.iter().filter(|r| r.is_ok()).collect();
    let tasks: BTreeSet<&str> = ok.iter().map(|r| r.task.as_str()).collect();
    let uids: Vec<u16> = ok.iter().map(|r| r.uid).collect::<BTreeSet<_>>().into_iter().collect();
    let colour_of = |uid: u16| charts::colour(uids.iter().position(|u| *u == uid).unwrap_or(0));
    let mut charts = Vec::new();
    for task in &tasks {
        // The task's rows by uid, in table (batch) order.
        let mut per_uid: BTreeMap<u16, Vec<&losses::Row>> = BTreeMap::new();
        for r in ok.iter().filter(|r| r.task == *task) {
            per_uid.entry(r.uid).or_default().push(r);
        }
        let task_uids: Vec<u16> = per_uid.keys().copied().collect();
        let categories = uid_labels(task_uids.iter().copied());
        charts.push(chart(
            &format!("loss-distribution-{task}"),
            &format!("{task}: the spread of each uid's per-batch losses (median, quartiles, range)."),
            charts::box_chart(&charts::BoxChart {
                title: &format!("{task}: per-batch loss by uid"),
                x_desc: "uid",
                y_desc: "loss",
                categories: &categories,
                samples: per_uid.values().map(|rows| rows.iter().map(|r| r.loss).collect()).collect(),
                colours: task_uids.iter().map(|&u| colour_of(u)).collect(),
            }),
        )?);
        charts.push(chart(
            &format!("loss-per-batch-{task}"),
            &format!("{task}: every uid's loss on each batch; a win is decided batch by batch."),
            charts::line_chart(&charts::LineChart {
                title: &format!("{task}: loss per batch"),
                x_desc: "batch",
                y_desc: "loss",
                series: per_uid
                    .iter()
                    .map(|(&u, rows)| charts::LineSeries {
                        name: format!("uid {u}"),
                        colour: colour_of(u),
                        points: rows.iter().map(|r| (f64::from(r.batch_index), r.loss)).collect(),
                    })
                    .collect(),
                x_labels: &[],
                zoom: true,
            }),
        )?);
    }
    Ok(Section {
        id: "losses",
        title: "Losses".into(),
        // Shown only with charts, so only when there are losses.
        intro: format!(
            "{} per-batch losses over {} tasks ({}).",
            ok.len(),
            tasks.len(),
            tasks.iter().copied().collect::<Vec<_>>().join(", ")
        ),
        charts,
        table: None,
    })
}

fn tracker_section(step: &StepTables, previous: Option<&StepTables>, competition_id: u16) -> anyhow::Result<Section> {
    let of = |t: &StepTables| -> BTreeMap<u16, f32> {
        t.tracker.iter().filter(|r| r.competition_id == competition_id).map(|r| (r.uid, r.weight)).collect()
    };
    let after = of(step);
    let before = previous.map(of).unwrap_or_default();
    let uids: Vec<u16> =
        after.iter().chain(&before).filter(|(_, w)| **w >= SHOWN_WEIGHT).map(|(u, _)| *u).collect::<BTreeSet<_>>().into_iter().collect();
    let categories = uid_labels(uids.iter().copied());
    let bars = |m: &BTreeMap<u16, f32>| -> Vec<charts::Bar> {
        uids.iter().map(|u| charts::Bar { value: f64::from(m.get(u).copied().unwrap_or(0.0)), highlight: true, note: None }).collect()
    };
    let mut series = Vec::new();
    if previous.is_some() {
        series.push(charts::BarSeries {
            name: format!("before ({})", previous.map_or("", |p| &p.label)),
            bars: bars(&before),
            colour: charts::colour(7),
        });
    }
    series.push(charts::BarSeries { name: "after this step".into(), bars: bars(&after), colour: charts::colour(1) });
    let mut charts = Vec::new();
    if !uids.is_empty() {
        charts.push(chart(
            "tracker",
            "The competition's tracker weights (an EMA of step weights) before and after this step; uids under 1e-6 are left out.",
            charts::bar_chart(&charts::BarChart {
                title: &format!("competition {competition_id} tracker weights"),
                x_desc: "uid",
                y_desc: "tracker weight",
                categories: &categories,
                series,
                ticks: None,
                zoom: false,
            }),
        )?);
    }
    Ok(Section {
        id: "tracker",
        title: "Tracker".into(),
        intro: if previous.is_some() {
            "Each step moves the tracker towards its step weights; the subnet weights come from the trackers of every competition.".into()
        } else {
            "Give the previous step's directory too to see the tracker before this step.".into()
        },
        charts,
        table: None,
    })
}

fn weights_section(step: &StepTables) -> anyhow::Result<Section> {
    let nonzero: Vec<&weights::Row> = step.weights.iter().filter(|w| w.weight_u16 > 0).collect();
    let categories = uid_labels(nonzero.iter().map(|w| w.uid));
    let mut charts = Vec::new();
    if !nonzero.is_empty() {
        charts.push(chart(
            "subnet-weights",
            "The weights this step sets on the chain (float32), labelled with the u16 value the SDK sends.",
            charts::bar_chart(&charts::BarChart {
                title: "subnet weights (non-zero u16)",
                x_desc: "uid",
                y_desc: "weight",
                categories: &categories,
                series: vec![charts::BarSeries {
                    name: "weight".into(),
                    bars: nonzero
                        .iter()
                        .map(|w| charts::Bar { value: f64::from(w.weight), highlight: true, note: Some(w.weight_u16.to_string()) })
                        .collect(),
                    colour: charts::colour(4),
                }],
                ticks: None,
                zoom: false,
            }),
        )?);
    }
    // Where each weight comes from: the trackers of the competitions that hold it.
    let sources = |uid: u16| -> String {
        step.tracker
            .iter()
            .filter(|r| r.uid == uid && r.weight >= SHOWN_WEIGHT)
            .map(|r| format!("competition {} tracker {}", r.competition_id, shortest_f32(r.weight)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let rows = nonzero
        .iter()
        .map(|w| {
            vec![
                w.uid.to_string(),
                w.hotkey.as_deref().map(short_hotkey).unwrap_or_default(),
                shortest_f32(w.weight),
                w.weight_u16.to_string(),
                sources(w.uid),
            ]
        })
        .collect();
    Ok(Section {
        id: "weights",
        title: "Subnet weights".into(),
        intro: format!(
            "{} of {} uids get a non-zero u16 weight. A uid can hold weight without being in this step: it comes from another competition's tracker.",
            nonzero.len(),
            step.weights.len()
        ),
        charts,
        table: Some(HtmlTable { header: vec!["uid", "hotkey", "weight", "u16", "from"], rows, marked: vec![] }),
    })
}

fn consensus_section(p: &Prediction) -> anyhow::Result<Section> {
    let of_u16 = |v: u16| f64::from(v) / f64::from(u16::MAX);
    let epoch_block = p.provenance.get(crate::tables::consensus::PROVENANCE_EPOCH_BLOCK).cloned().unwrap_or_default();
    let mut charts = Vec::new();
    let mut intro = format!("The chain's epoch at block {epoch_block}, replayed by valkit consensus (the runtime's fixed-point rules) before the weights were set.");
    if let Some(mine) = p.mine {
        let own: Vec<&crate::tables::clips::Row> = p.clips.iter().filter(|c| c.validator == mine).collect();
        let row = p.uids.iter().find(|r| r.uid == mine);
        if let Some(row) = row {
            let chain = row.chain_validator_trust.map_or_else(String::new, |c| format!(" (the chain's now {:.3})", of_u16(c)));
            let clipped: f64 = own.iter().map(|c| c.clipped).sum();
            intro.push_str(&format!(
                " With these weights uid {mine} keeps a vTrust of {:.3}{chain}: {clipped:.3} of its weight is above consensus.",
                of_u16(row.validator_trust)
            ));
        }
        if !own.is_empty() {
            let categories = uid_labels(own.iter().map(|c| c.miner));
            charts.push(chart(
                "consensus",
                "This validator's weight on each miner (its row normalized) against the miner's consensus (the tick); bars in colour are clipped above it, and what is clipped is vTrust lost.",
                charts::bar_chart(&charts::BarChart {
                    title: &format!("uid {mine}'s weights against consensus"),
                    x_desc: "miner uid",
                    y_desc: "weight",
                    categories: &categories,
                    series: vec![charts::BarSeries {
                        name: "weight".into(),
                        bars: own.iter().map(|c| charts::Bar { value: c.weight, highlight: c.clipped > 0.0, note: None }).collect(),
                        colour: charts::colour(1),
                    }],
                    ticks: Some(charts::Ticks { name: "consensus".into(), values: own.iter().map(|c| Some(c.consensus)).collect() }),
                    zoom: false,
                }),
            )?);
        }
    }
    let validators: Vec<&crate::tables::consensus::Row> = p.uids.iter().filter(|r| r.validator_permit && r.stake > 0.0).collect();
    let rows = validators
        .iter()
        .map(|r| {
            vec![
                r.uid.to_string(),
                short_hotkey(&r.hotkey),
                format!("{:.4}", r.stake),
                if r.active { "yes".into() } else { "no".into() },
                format!("{:.3}", of_u16(r.validator_trust)),
                r.chain_validator_trust.map_or_else(String::new, |c| format!("{:.3}", of_u16(c))),
                format!("{:.3}", of_u16(r.dividends)),
            ]
        })
        .collect();
    let marked = validators.iter().position(|r| Some(r.uid) == p.mine).into_iter().collect();
    Ok(Section {
        id: "consensus",
        title: "Consensus".into(),
        intro,
        charts,
        table: Some(HtmlTable {
            header: vec!["validator", "hotkey", "stake", "active", "vTrust", "chain's vTrust", "dividends"],
            rows,
            marked,
        }),
    })
}

fn history_section(steps: &[StepTables]) -> anyhow::Result<Section> {
    let uids: BTreeSet<u16> = steps.iter().flat_map(|s| s.weights.iter().filter(|w| w.weight_u16 > 0).map(|w| w.uid)).collect();
    let x_labels: Vec<String> = steps.iter().map(|s| s.provenance.get("cur_block").cloned().unwrap_or_else(|| s.label.clone())).collect();
    let series = uids
        .iter()
        .enumerate()
        .map(|(i, &uid)| charts::LineSeries {
            name: format!("uid {uid}"),
            colour: charts::colour(i),
            points: steps
                .iter()
                .enumerate()
                .map(|(x, s)| (x as f64, s.weights.iter().find(|w| w.uid == uid).map_or(0.0, |w| f64::from(w.weight))))
                .collect(),
        })
        .collect();
    Ok(Section {
        id: "history",
        title: "Weights over time".into(),
        intro: format!("The subnet weight of every uid that held one, over {} steps (x: the block each step scored at).", steps.len()),
        charts: vec![chart(
            "weights-over-time",
            "Subnet weight per uid, step by step.",
            charts::line_chart(&charts::LineChart {
                title: "subnet weight per step",
                x_desc: "step (block)",
                y_desc: "weight",
                series,
                x_labels: &x_labels,
                zoom: false,
            }),
        )?],
        table: None,
    })
}

fn failures_section(step: &StepTables) -> Section {
    let mut rows: Vec<Vec<String>> = Vec::new();
    for m in step.models.iter().filter(|m| matches!(m.status, models::Status::Rejected | models::Status::Failed)) {
        rows.push(vec![
            m.uid.to_string(),
            m.repo_id.clone().unwrap_or_default(),
            format!("fetch-models: {}", m.status),
            m.reason.clone().unwrap_or_default(),
        ]);
    }
    let mut seen = BTreeSet::new();
    for l in step.losses.iter().filter(|l| l.status == losses::Status::Failed) {
        if seen.insert(l.uid) {
            let repo = step.models.iter().find(|m| m.uid == l.uid).and_then(|m| m.repo_id.clone()).unwrap_or_default();
            rows.push(vec![l.uid.to_string(), repo, "eval-losses: failed".into(), l.reason.clone().unwrap_or_default()]);
        }
    }
    if step.models.is_empty() && step.losses.is_empty() {
        for w in step.wins.iter().filter(|w| w.score_reason.as_deref().is_some_and(|r| r.starts_with("failed"))) {
            rows.push(vec![w.uid.to_string(), String::new(), "scoring".into(), w.score_reason.clone().unwrap_or_default()]);
        }
    }
    Section {
        id: "failures",
        title: "Failed models".into(),
        intro: if rows.is_empty() {
            "No model was rejected or failed in this step.".into()
        } else {
            format!("{} models were rejected or failed; they score inf and win nothing.", rows.len())
        },
        charts: vec![],
        table: (!rows.is_empty()).then_some(HtmlTable { header: vec!["uid", "repository", "where", "reason"], rows, marked: vec![] }),
    }
}

fn chart(id: &str, caption: &str, svg: Result<String, String>) -> anyhow::Result<Chart> {
    let svg = svg.map_err(|e| anyhow::anyhow!("drawing the {id} chart: {e}"))?;
    Ok(Chart { id: id.to_string(), caption: caption.to_string(), svg })
}

fn short_hotkey(hotkey: &str) -> String {
    if hotkey.chars().count() > 12 {
        format!("{}…", hotkey.chars().take(10).collect::<String>())
    } else {
        hotkey.to_string()
    }
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "" }.to_string()
}
