use valkit::files::{InputFile, Location};
use valkit::scoring::EvalResult;
use valkit::tables::{self, batches, losses, models, tracker, Table};

use crate::util::*;

fn round_trip<T: Table>(rows: Vec<T::Row>) -> Vec<T::Row>
where
    T::Row: Clone,
{
    let dir = TestDir::new();
    write_table::<T>(&dir.path("t.parquet"), rows.clone(), &[("block", "7")]);
    let first = std::fs::read(dir.path("t.parquet")).unwrap();
    let back = read_table::<T>(&dir.path("t.parquet"));
    assert_eq!(back.meta.provenance["block"], "7");
    assert_eq!(back.meta.table.as_deref(), Some(T::NAME));
    write_table::<T>(&dir.path("u.parquet"), back.rows.clone(), &[("block", "7")]);
    assert_eq!(first, std::fs::read(dir.path("u.parquet")).unwrap(), "byte-identical rewrite");
    back.rows
}

#[test]
fn batches_round_trip_in_key_order() {
    let row = |task: &str, i: u32| batches::Row {
        competition_id: 4,
        task: task.into(),
        batch_index: i,
        token_ids: vec![1, 2, i],
        context_len: 0,
        source: format!("ds:cfg:train:{i}"),
    };
    let back = round_trip::<batches::Batches>(vec![row("B", 1), row("A", 2), row("A", 0)]);
    assert_eq!(back, vec![row("A", 0), row("A", 2), row("B", 1)]);
}

#[test]
fn models_and_tracker_round_trip() {
    let model = models::Row {
        uid: 3,
        hotkey: "h".into(),
        competition_id: Some(4),
        repo_id: Some("a/b".into()),
        revision: None,
        commit_block: Some(9),
        local_path: None,
        size_bytes: None,
        n_params: Some(10),
        architecture: None,
        status: models::Status::Rejected,
        reason: Some("pickle-file: model.bin".into()),
        in_step: true,
        step_reason: Some("new".into()),
        model_hash: Some("x".repeat(44)),
    };
    assert_eq!(round_trip::<models::Models>(vec![model.clone()]), vec![model]);
    let history = vec![EvalResult { block: 5, score: f64::INFINITY, winning_model_block: f64::INFINITY, winning_model_score: 1.5 }];
    let row = tracker::Row { competition_id: 4, uid: 1, weight: 3.7835e-44, keep: true, hotkey: Some("h".into()), history };
    assert_eq!(round_trip::<tracker::Tracker>(vec![row.clone()]), vec![row]);
}

#[test]
fn tables_written_by_pyarrow_are_read() {
    // The demo tables were written by pyarrow (int64 columns, Snappy, `element` list children).
    let rows = read_table::<losses::Losses>(std::path::Path::new(&demo("losses.parquet"))).rows;
    assert_eq!(rows.len(), 288);
    assert!(rows.iter().any(|r| r.loss.is_infinite() && r.status == losses::Status::Failed));
}

#[test]
fn a_table_of_another_kind_is_refused_by_its_name() {
    let dir = TestDir::new();
    // A tracker file read as a losses file is refused by the name it carries, before any column
    // is looked at (a missing column is the next test's case).
    let bytes = std::fs::read(demo("tracker.parquet")).unwrap();
    let input = InputFile { location: Location::Path(dir.path("t.parquet")), bytes: bytes.into(), sha256: String::new() };
    let err = tables::decode_file::<losses::Losses>(&input).unwrap_err().to_string();
    assert!(err.contains("is a tracker table, expected a losses table"), "{err}");
}

#[test]
fn a_missing_column_and_a_wrong_type_are_named() {
    let dir = TestDir::new();
    let batch = read_batch(std::path::Path::new(&demo("losses.parquet")));
    let labels = [("valkit.table", "losses"), ("valkit.schema_version", "1")];
    let without_loss =
        batch.project(&(0..batch.num_columns()).filter(|&i| batch.schema().field(i).name() != "loss").collect::<Vec<_>>()).unwrap();
    write_foreign(&dir.path("no-loss.parquet"), &without_loss, &labels);
    let score = |losses: &str| {
        let (metagraph, losses, out) = (demo("metagraph.parquet"), dir.arg(losses), dir.arg("out"));
        run(&[
            "compute-wins",
            "--profile",
            "sn9",
            "--competition-id",
            "4",
            "--metagraph",
            &metagraph,
            "--losses",
            &losses,
            "--out-dir",
            &out,
        ])
    };
    assert_bad_input(&score("no-loss.parquet"), "missing column `loss` of the losses table");
    // A researcher's table with extra columns and int64 ids is fine.
    let extra = arrow::array::StringArray::from(vec!["note"; batch.num_rows()]);
    let mut columns = batch.columns().to_vec();
    columns.push(std::sync::Arc::new(extra));
    let mut fields: Vec<arrow::datatypes::Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(arrow::datatypes::Field::new("my_note", arrow::datatypes::DataType::Utf8, true));
    let with_extra = arrow::array::RecordBatch::try_new(std::sync::Arc::new(arrow::datatypes::Schema::new(fields)), columns).unwrap();
    write_foreign(&dir.path("extra.parquet"), &with_extra, &labels);
    assert_eq!(read_table::<losses::Losses>(&dir.path("extra.parquet")).rows.len(), 288);
    // Text where a number belongs is refused with the column's name.
    let mut fields: Vec<arrow::datatypes::Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let at = fields.iter().position(|f| f.name() == "uid").unwrap();
    fields[at] = arrow::datatypes::Field::new("uid", arrow::datatypes::DataType::Utf8, false);
    let mut columns = batch.columns().to_vec();
    columns[at] = std::sync::Arc::new(arrow::array::StringArray::from(vec!["1"; batch.num_rows()]));
    let text_uid = arrow::array::RecordBatch::try_new(std::sync::Arc::new(arrow::datatypes::Schema::new(fields)), columns).unwrap();
    write_foreign(&dir.path("text-uid.parquet"), &text_uid, &labels);
    let r = run(&["inspect", &dir.arg("text-uid.parquet")]);
    assert_exit!(r, 0);
    assert_bad_input(&score("text-uid.parquet"), "column `uid` has type Utf8, expected uint16");
}
