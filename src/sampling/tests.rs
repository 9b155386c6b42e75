//! The `seeds`, `python_random`, `page_selection` and `packing` vectors.

use serde_json::Value;

use super::*;
use crate::scoring::vectors::section;

fn u64s(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

fn seed(v: &Value) -> Seed {
    Seed::from_decimal(v.as_str().unwrap()).unwrap()
}

#[test]
fn seeds_from_block_hashes() {
    let s = section("seeds");
    let got = seed_from_block_hash(s["block_hash_string"].as_str().unwrap()).unwrap();
    assert_eq!(got.to_decimal(), s["sn9"]["seed"].as_str().unwrap());
    assert_eq!(got, seed(&s["sn37"]["seed_if_same_hash"]));
    assert!(seed_from_block_hash("4dc02bb2").is_err());
    assert_eq!(Seed::from_decimal("0").unwrap().words(), &[0]);
    assert_eq!(Seed::from_u64(4_294_967_296).words(), &[0, 1]);
}

#[test]
fn python_random_sequences() {
    for case in section("python_random")["cases"].as_array().unwrap() {
        let s = seed(&case["seed"]);
        let mut rng = PyRandom::new(&s);
        let first: Vec<u64> = (0..3).map(|_| rng.randint(1, 968_000_015)).collect();
        assert_eq!(first, u64s(&case["randint_1_968000015_x3"]), "seed {}", case["seed"]);
        let then: Vec<u64> = (0..3).map(|_| rng.randint(0, 49)).collect();
        assert_eq!(then, u64s(&case["then_randint_0_49_x3"]));
        let mut order: Vec<u64> = (0..10).collect();
        PyRandom::new(&s).shuffle(&mut order);
        assert_eq!(order, u64s(&case["Random(seed).shuffle(range(10))"]));
        let mut rng = PyRandom::new(&s);
        let bits: Vec<u64> = (0..3).map(|_| rng.getrandbits(32)).collect();
        assert_eq!(bits, u64s(&case["getrandbits32_x3_after_reseed"]));
    }
}

#[test]
fn page_selection() {
    let v = section("page_selection");
    let s = seed(&v["seed"]);
    let cases = &v["cases"];
    let falcon = row_offset_pages(&mut PyRandom::new(&s), 968_000_015, 4);
    assert_eq!(falcon, u64s(&cases["falcon_like_sample_pages(max_pages=968000015,num_pages=4)"]));

    let fw = &cases["fineweb_like"];
    let configs: Vec<ConfigRows> = fw["configs_data_in_size_endpoint_order"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, c)| ConfigRows {
            config: name.clone(),
            num_rows: c["num_rows"].as_u64().unwrap(),
            split: c["split"].as_str().unwrap().into(),
        })
        .collect();
    let (initial, pages) = config_sampling_pages(&mut PyRandom::new(&s), &configs, 50, 6).unwrap();
    assert_eq!(initial, fw["initial_offset"].as_u64().unwrap());
    let expected: Vec<Page> = fw["pages(config,offset,split)"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Page { config: p[0].as_str().unwrap().into(), offset: p[1].as_u64().unwrap(), split: p[2].as_str().unwrap().into() })
        .collect();
    assert_eq!(pages, expected);

    let sn37 = &cases["sn37_synthetic1_like"];
    let configs = [ConfigRows { config: "default".into(), num_rows: 894_086, split: "train".into() }];
    let (initial, pages) = config_sampling_pages(&mut PyRandom::new(&s), &configs, 150, 1).unwrap();
    assert_eq!(initial, sn37["initial_offset"].as_u64().unwrap());
    assert_eq!(pages[0].offset, sn37["first_page"][1].as_u64().unwrap());
}

/// A config listed under two splits: pages as CPython's dict and `random` pick them
/// (`scripts/make_multisplit_pages_reference.py`).
#[test]
fn a_config_with_several_splits_keeps_its_first_place_and_last_split() {
    let data: Value = serde_json::from_str(include_str!("../../testdata/expected/multisplit_pages.json")).unwrap();
    let listing: Vec<ConfigRows> = data["splits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["config"] != "default")
        .map(|c| ConfigRows {
            config: c["config"].as_str().unwrap().into(),
            num_rows: c["num_rows"].as_u64().unwrap(),
            split: c["split"].as_str().unwrap().into(),
        })
        .collect();
    let configs = as_python_dict(listing);
    let names: Vec<(&str, &str)> = configs.iter().map(|c| (c.config.as_str(), c.split.as_str())).collect();
    assert_eq!(names, [("CC-MAIN-2024-10", "test"), ("CC-MAIN-2023-50", "train"), ("CC-MAIN-2023-06", "train")]);
    let expected_pages = data["pages"].as_array().unwrap();
    let (initial, pages) = config_sampling_pages(
        &mut PyRandom::new(&seed(&data["seed"])),
        &configs,
        data["rows_per_page"].as_u64().unwrap(),
        expected_pages.len(),
    )
    .unwrap();
    assert_eq!(initial, data["initial_offset"].as_u64().unwrap());
    let expected: Vec<Page> = expected_pages
        .iter()
        .map(|p| Page { config: p[0].as_str().unwrap().into(), offset: p[1].as_u64().unwrap(), split: p[2].as_str().unwrap().into() })
        .collect();
    assert_eq!(pages, expected);
}

#[test]
fn packing_and_shuffle() {
    let v = section("packing");
    let buffer: Vec<u32> = u64s(&v["buffer"]).into_iter().map(|t| t as u32).collect();
    let windows = pack_windows(&buffer, v["sequence_length"].as_u64().unwrap() as usize);
    let expected: Vec<Vec<u32>> =
        v["batches"].as_array().unwrap().iter().map(|b| u64s(&b[0]).into_iter().map(|t| t as u32).collect()).collect();
    assert_eq!(windows, expected);
    let seed = seed(&section("page_selection")["seed"]);
    let mut shuffled = windows;
    PyRandom::new(&seed).shuffle(&mut shuffled);
    shuffled.truncate(50);
    let expected: Vec<Vec<u32>> = v["after_Random(seed).shuffle_then_truncate_50"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| u64s(&b[0]).into_iter().map(|t| t as u32).collect())
        .collect();
    assert_eq!(shuffled, expected);
}

/// `testdata/expected/python_random.json`, made with CPython by `scripts/make_python_random_reference.py`.
#[test]
fn generated_cpython_sequences() {
    let data: Value = serde_json::from_str(include_str!("../../testdata/expected/python_random.json")).unwrap();
    for case in data["cases"].as_array().unwrap() {
        let mut rng = PyRandom::new(&seed(&case["seed"]));
        let context = case["seed"].as_str().unwrap();
        for r in case["randint"].as_array().unwrap() {
            let (a, b, want) = (r[0].as_u64().unwrap(), r[1].as_u64().unwrap(), r[2].as_u64().unwrap());
            assert_eq!(rng.randint(a, b), want, "seed {context} randint({a}, {b})");
        }
        for g in case["getrandbits"].as_array().unwrap() {
            assert_eq!(rng.getrandbits(g[0].as_u64().unwrap() as u32), g[1].as_u64().unwrap(), "seed {context} getrandbits({})", g[0]);
        }
        let items: Vec<u64> = (0..23).collect();
        let choices: Vec<u64> = (0..10).map(|_| *rng.choice(&items).unwrap()).collect();
        assert_eq!(choices, u64s(&case["choice"]), "seed {context} choice");
        let mut perm: Vec<u64> = (0..37).collect();
        rng.shuffle(&mut perm);
        assert_eq!(perm, u64s(&case["shuffle_37"]), "seed {context} shuffle");
        for r in case["random"].as_array().unwrap() {
            assert_eq!(rng.random(), r.as_str().unwrap().parse::<f64>().unwrap(), "seed {context} random()");
        }
        assert_eq!(rng.getrandbits(32), case["after"].as_u64().unwrap());
    }
}
