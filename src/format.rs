//! Numbers for people: the tables keep every bit, the terminal and the report show what a reader
//! can take in. JSON and CSV output keep full precision (f32 as its shortest round-trip form).

/// An f32 in the shortest form that reads back to the same f32 (`0.33333334`, not the widened
/// `0.3333333432674408`), in exponent form when tiny or huge.
pub fn shortest_f32(v: f32) -> String {
    if v != 0.0 && v.is_finite() && (v.abs() < 1e-4 || v.abs() >= 1e15) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// An f64 in the shortest form that reads back to the same f64, in exponent form when tiny or
/// huge (a denormal tracker weight such as 3.7e-44 would print with 40 zeros otherwise).
pub fn shortest_f64(v: f64) -> String {
    if v != 0.0 && v.is_finite() && (v.abs() < 1e-4 || v.abs() >= 1e15) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// An f64 rounded to `digits` significant digits, trailing zeros dropped (`0.00010000000000000026`
/// → `0.0001`), in exponent form when tiny or huge.
pub fn significant(v: f64, digits: usize) -> String {
    if v == 0.0 || !v.is_finite() {
        return v.to_string();
    }
    let magnitude = v.abs().log10().floor() as i32;
    if !(-4..15).contains(&magnitude) {
        let s = format!("{:.*e}", digits.saturating_sub(1), v);
        let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
        return format!("{}e{exponent}", trim_zeros(mantissa));
    }
    let decimals = (digits as i32 - 1 - magnitude).max(0) as usize;
    trim_zeros(&format!("{v:.decimals$}")).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_shortest_round_trips() {
        assert_eq!(shortest_f32(1.0 / 3.0), "0.33333334");
        assert_eq!(shortest_f32(2e-44), "2e-44");
        assert_eq!(shortest_f32(0.0), "0");
        assert_eq!(shortest_f32(1.0), "1");
        for v in [0.1f32, 1.0 / 3.0, 3.714_619_7e-30, 65535.0] {
            assert_eq!(shortest_f32(v).parse::<f32>().unwrap(), v);
        }
    }

    #[test]
    fn f64_to_significant_digits() {
        assert_eq!(significant(0.000_100_000_000_000_000_26, 7), "0.0001");
        assert_eq!(significant(2.287_703_721_300_777, 7), "2.287704");
        assert_eq!(significant(0.004_659_722_222_222_222, 7), "0.004659722");
        assert_eq!(significant(3.783_505_853_677_006e-44, 7), "3.783506e-44");
        assert_eq!(significant(1.0, 7), "1");
        assert_eq!(significant(5_200_000.0, 7), "5200000");
        assert_eq!(significant(f64::INFINITY, 7), "inf");
    }
}
