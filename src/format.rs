//! Numbers for people: the tables keep every bit, the terminal and the report show what a reader
//! can take in. JSON and CSV output keep full precision (f32 as its shortest round-trip form).
//! Text for people likewise: `printable` shows escaped whatever could rewrite a terminal.

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

/// Whether a character can rewrite what a terminal shows: C0 and C1 controls and DEL (ESC starts
/// the sequences that clear a screen, move the cursor or plant an OSC 8 hyperlink; CR overwrites
/// a line) and the bidirectional overrides and isolates that reorder what follows them.
fn rewrites_the_screen(c: char) -> bool {
    c.is_control() || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` as it may reach a terminal: every character that could rewrite the screen shown escaped
/// (`\x1b`, `\u{202e}`), everything else as it is. Every string from a table, a miner or a
/// server passes through here on its way to a person. `keep` names controls left alone (CSV
/// keeps CR/LF inside its quoted fields).
pub fn printable<'a>(s: &'a str, keep: &[char]) -> std::borrow::Cow<'a, str> {
    if !s.chars().any(|c| rewrites_the_screen(c) && !keep.contains(&c)) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if keep.contains(&c) || !rewrites_the_screen(c) => out.push(c),
            c if u32::from(c) < 0x100 => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push_str(&format!("\\u{{{:04x}}}", u32::from(c))),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `value` as one line of compact JSON that a terminal shows as it is: serde_json escapes C0
/// controls itself; DEL, the C1 controls (U+009B opens a sequence, as ESC [ does) and the bidi
/// overrides it leaves raw are written `\u009b`, `\u202e` here — the same string to any reader.
pub fn json_line(value: &impl serde::Serialize) -> serde_json::Result<String> {
    struct Escaping;
    impl serde_json::ser::Formatter for Escaping {
        fn write_string_fragment<W: ?Sized + std::io::Write>(&mut self, w: &mut W, fragment: &str) -> std::io::Result<()> {
            let mut start = 0;
            for (i, c) in fragment.char_indices().filter(|&(_, c)| rewrites_the_screen(c)) {
                w.write_all(&fragment.as_bytes()[start..i])?;
                // Every such character lies in the Basic Multilingual Plane: one \uXXXX.
                write!(w, "\\u{:04x}", u32::from(c))?;
                start = i + c.len_utf8();
            }
            w.write_all(&fragment.as_bytes()[start..])
        }
    }
    let mut out = Vec::new();
    value.serialize(&mut serde_json::Serializer::with_formatter(&mut out, Escaping))?;
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_escape_what_serde_json_leaves_raw_and_keep_the_string() {
        let text = "a\u{1b}[2J\u{7f}\u{9b}31m\u{202e}txt \u{2067}模型\n";
        let value = serde_json::json!({ "name": text, "list": [text] });
        let line = json_line(&value).unwrap();
        assert!(!line.contains(|c: char| rewrites_the_screen(c)), "{line}");
        assert!(line.contains("\\u001b[2J\\u007f\\u009b31m\\u202etxt \\u2067模型\\n"), "{line}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&line).unwrap(), value);
    }

    #[test]
    fn what_could_rewrite_a_terminal_is_shown_escaped() {
        assert_eq!(printable("llama-3b/model", &[]), "llama-3b/model");
        assert!(matches!(printable("plain ünïcode 模型", &[]), std::borrow::Cow::Borrowed(_)));
        assert_eq!(printable("a\x1b[2Jb", &[]), "a\\x1b[2Jb");
        assert_eq!(printable("\x1b]8;;https://evil\x07link\x1b]8;;\x07", &[]), "\\x1b]8;;https://evil\\x07link\\x1b]8;;\\x07");
        assert_eq!(printable("ok\rfake\n", &[]), "ok\\x0dfake\\x0a");
        assert_eq!(printable("ok\rfake\n", &['\r', '\n']), "ok\rfake\n");
        assert_eq!(printable("x\u{202e}gpj.exe\u{2066}\u{9b}\u{7f}", &[]), "x\\u{202e}gpj.exe\\u{2066}\\x9b\\x7f");
    }

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
