//! `wins`: one row per uid evaluated in a competition step — its score, whether it stayed
//! competitive, its wins and win rate, its step and tracker weights, and whether it is kept for
//! the next step (SPEC §3, upstream.md §6). Sorted by `uid`.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float32Array, Float64Array, StringArray, UInt16Array, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, SchemaRef};

use super::{field, schema_of, Column, Columns, Error, Table};

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub uid: u16,
    pub hotkey: String,
    pub competition_id: u16,
    /// Null when the uid has no usable commitment for this competition (upstream's block = inf).
    pub commit_block: Option<u64>,
    /// Task-weighted mean loss; `inf` when the model failed or has no commitment.
    pub score: f64,
    /// Epsilon the uid would get against a later model at the current block.
    pub epsilon_adv: f64,
    pub competitive: bool,
    pub wins: u32,
    pub win_rate: f64,
    pub step_weight: f32,
    pub tracker_weight: f32,
    pub keep: bool,
    /// The step's winner (first uid with the best win rate).
    pub top: bool,
    /// Why the score is `inf`, when it is.
    pub score_reason: Option<String>,
}

pub struct Wins;

impl Table for Wins {
    const NAME: &'static str = "wins";
    const SCHEMA_VERSION: u32 = 1;
    const LEGEND: &'static [Column] = &[
        Column { name: "uid", shown: true, about: "the neuron's slot on the subnet" },
        Column { name: "hotkey", shown: false, about: "the neuron's hotkey" },
        Column { name: "competition_id", shown: false, about: "the competition scored" },
        Column { name: "commit_block", shown: true, about: "the block of the model's commitment (empty: no usable commitment)" },
        Column { name: "score", shown: true, about: "task-weighted mean loss, lower is better (inf: failed or no model)" },
        Column {
            name: "epsilon_adv",
            shown: true,
            about: "epsilon advantage: the fraction by which a later model must beat this one's loss",
        },
        Column { name: "competitive", shown: true, about: "passed SN9's competitive filter (always, for winner-takes-all)" },
        Column { name: "wins", shown: true, about: "competitive opponents this uid beat" },
        Column { name: "win_rate", shown: true, about: "wins over competitive opponents" },
        Column { name: "step_weight", shown: false, about: "this step's weight (softmax of win rates, or winner-takes-all)" },
        Column { name: "tracker_weight", shown: true, about: "the competition tracker's EMA weight after this step" },
        Column { name: "keep", shown: false, about: "re-evaluated next step (keep set)" },
        Column { name: "top", shown: true, about: "the step's winner" },
        Column { name: "score_reason", shown: true, about: "why the score is inf, when it is" },
    ];
    type Row = Row;

    fn schema() -> SchemaRef {
        schema_of(vec![
            field("uid", DataType::UInt16, false),
            field("hotkey", DataType::Utf8, false),
            field("competition_id", DataType::UInt16, false),
            field("commit_block", DataType::UInt64, true),
            field("score", DataType::Float64, false),
            field("epsilon_adv", DataType::Float64, false),
            field("competitive", DataType::Boolean, false),
            field("wins", DataType::UInt32, false),
            field("win_rate", DataType::Float64, false),
            field("step_weight", DataType::Float32, false),
            field("tracker_weight", DataType::Float32, false),
            field("keep", DataType::Boolean, false),
            field("top", DataType::Boolean, false),
            field("score_reason", DataType::Utf8, true),
        ])
    }

    fn encode(rows: &[Row]) -> Vec<ArrayRef> {
        let bools = |f: fn(&Row) -> bool| -> ArrayRef { Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(f(r))))) };
        vec![
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.uid))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.hotkey))),
            Arc::new(UInt16Array::from_iter_values(rows.iter().map(|r| r.competition_id))),
            Arc::new(UInt64Array::from_iter(rows.iter().map(|r| r.commit_block))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.score))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.epsilon_adv))),
            bools(|r| r.competitive),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.wins))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.win_rate))),
            Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r.step_weight))),
            Arc::new(Float32Array::from_iter_values(rows.iter().map(|r| r.tracker_weight))),
            bools(|r| r.keep),
            bools(|r| r.top),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.score_reason.as_deref()))),
        ]
    }

    fn decode(c: &Columns) -> Result<Vec<Row>, Error> {
        let (uid, hotkey, competition_id) = (c.u16("uid")?, c.string("hotkey")?, c.u16("competition_id")?);
        let (commit_block, score, epsilon_adv) = (c.opt_u64("commit_block")?, c.f64("score")?, c.f64("epsilon_adv")?);
        let (competitive, wins, win_rate) = (c.bool("competitive")?, c.u32("wins")?, c.f64("win_rate")?);
        let (step_weight, tracker_weight) = (c.f32("step_weight")?, c.f32("tracker_weight")?);
        let (keep, top, reason) = (c.bool("keep")?, c.opt_bool("top")?, c.opt_string("score_reason")?);
        Ok((0..c.num_rows())
            .map(|i| Row {
                uid: uid[i],
                hotkey: hotkey[i].clone(),
                competition_id: competition_id[i],
                commit_block: commit_block[i],
                score: score[i],
                epsilon_adv: epsilon_adv[i],
                competitive: competitive[i],
                wins: wins[i],
                win_rate: win_rate[i],
                step_weight: step_weight[i],
                tracker_weight: tracker_weight[i],
                keep: keep[i],
                top: top[i].unwrap_or(false),
                score_reason: reason[i].clone(),
            })
            .collect())
    }

    fn sort(rows: &mut [Row]) {
        rows.sort_by_key(|r| r.uid);
    }
}
