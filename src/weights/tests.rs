//! Every case of `../shared/spec/weights_vectors.json` (bittensor 9.0.0, numpy 2.0.2).

use serde_json::Value;

use super::*;

fn cases(name: &str) -> Vec<Value> {
    let all: Value = serde_json::from_str(include_str!("../../../shared/spec/weights_vectors.json")).unwrap();
    all[name].as_array().unwrap().clone()
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|b| f32::from_bits(b.as_u64().unwrap() as u32)).collect()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
}

fn u16s(v: &Value) -> Vec<u16> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u16).collect()
}

#[test]
fn convert_weights_and_uids_for_emit() {
    let all = cases("convert_weights_and_uids_for_emit");
    assert_eq!(all.len(), 13);
    for case in all {
        let weights: Vec<f64> = f32s(&case["weights_f32_bits"]).into_iter().map(f64::from).collect();
        let got = convert_for_emit(&ints(&case["uids"]), &weights);
        match case.get("error") {
            Some(e) => {
                let err = got.expect_err(e.as_str().unwrap());
                let kind = e.as_str().unwrap();
                match err {
                    Error::NegativeWeight { .. } => assert!(kind.contains("weight is negative")),
                    Error::NegativeUid(_) => assert!(kind.contains("uid is negative")),
                    Error::LengthMismatch { .. } => assert!(kind.contains("same length")),
                    other => panic!("unexpected {other}"),
                }
            }
            None => {
                let (uids, values) = got.unwrap();
                assert_eq!(uids, u16s(&case["out_uids"]), "{}", case["name"]);
                assert_eq!(values, u16s(&case["out_values"]), "{}", case["name"]);
            }
        }
    }
}

#[test]
fn normalize_max_weight_cases() {
    for case in cases("normalize_max_weight") {
        let x = f32s(&case["x_f32_bits"]);
        let got = normalize_max_weight(&x, case["limit"].as_f64().unwrap());
        let expected: Vec<f32> = case["y"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(got, expected, "limit {}", case["limit"]);
    }
}

#[test]
fn process_weights_then_emit() {
    for case in cases("process_weights") {
        let out = process_weights(
            &ints(&case["uids"]),
            &f32s(&case["weights_f32_bits"]),
            case["num_neurons"].as_u64().unwrap() as usize,
            case["min_allowed_weights"].as_u64().unwrap() as usize,
            case["max_weight_limit_float"].as_f64().unwrap(),
            case["exclude_quantile_u16"].as_u64().unwrap() as u16,
        );
        let name = &case["name"];
        assert_eq!(out.uids, ints(&case["out_uids"]), "{name}");
        let expected: Vec<f64> = case["out_weights"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(out.weights, expected, "{name}");
        assert_eq!(out.float32, case["out_dtype"] == "float32", "{name}");
        let (uids, values) = convert_for_emit(&out.uids, &out.weights).unwrap();
        assert_eq!(uids, u16s(&case["then_emit_uids"]), "{name}");
        assert_eq!(values, u16s(&case["then_emit_values"]), "{name}");
    }
}

#[test]
fn u16_normalized_float_cases() {
    for case in cases("u16_normalized_float") {
        let got = u16_normalized_float(case["u16"].as_u64().unwrap() as u16);
        assert_eq!(got, case["float"].as_f64().unwrap());
    }
}

#[test]
fn generate_weight_hash_cases() {
    for case in cases("generate_weight_hash") {
        let key = hex::decode(case["pubkey_hex"].as_str().unwrap().trim_start_matches("0x")).unwrap();
        let account: [u8; 32] = key.try_into().unwrap();
        let hash = weight_commit_hash(
            &account,
            case["netuid_index"].as_u64().unwrap() as u16,
            &u16s(&case["uids"]),
            &u16s(&case["values"]),
            &u16s(&case["salt"]),
            case["version_key"].as_u64().unwrap(),
        );
        assert_eq!(format!("0x{}", hex::encode(hash)), case["hash"].as_str().unwrap());
    }
}
