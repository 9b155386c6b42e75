//! Python's `bytes.decode(encoding)` (strict) for the `src_encoding` labels of The Stack v2, whose
//! file contents upstream decodes that way (upstream.md §4.2). A byte string Python refuses is an
//! error here too: upstream's loader then raises and the task is skipped, so must valkit's.
//!
//! Exact for UTF-8, UTF-16 (BOM-sniffing, little-endian without one), UTF-16LE/BE, ASCII,
//! ISO-8859-1 and windows-1252 (Python leaves 0x81, 0x8D, 0x8F, 0x90 and 0x9D undefined). Other
//! labels (windows-125x, KOI8, Shift_JIS, EUC-*, GB*, Big5) go through encoding_rs, whose tables
//! (the WHATWG Encoding Standard) agree with Python's codecs on every character their shared
//! ranges define; they differ only on byte sequences one of the two leaves undefined.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("unknown encoding {0:?}")]
    Unknown(String),
    #[error("bytes that are not valid {0}")]
    Invalid(String),
}

pub fn decode(bytes: &[u8], label: &str) -> Result<String, Error> {
    let invalid = || Error::Invalid(label.to_string());
    // Python normalises codec names: case, and `_` for `-`.
    let name = label.trim().to_ascii_lowercase().replace('_', "-");
    match name.as_str() {
        "utf-8" | "utf8" => String::from_utf8(bytes.to_vec()).map_err(|_| invalid()),
        "ascii" | "us-ascii" => bytes.is_ascii().then(|| String::from_utf8(bytes.to_vec()).expect("ascii")).ok_or_else(invalid),
        "iso-8859-1" | "latin-1" | "latin1" | "iso8859-1" => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
        "windows-1252" | "cp1252" => {
            if bytes.iter().any(|b| matches!(b, 0x81 | 0x8D | 0x8F | 0x90 | 0x9D)) {
                return Err(invalid());
            }
            encoding_rs_strict(encoding_rs::WINDOWS_1252, bytes).ok_or_else(invalid)
        }
        "utf-16" | "utf16" => match bytes {
            [0xFF, 0xFE, rest @ ..] => utf16(rest, u16::from_le_bytes).ok_or_else(invalid),
            [0xFE, 0xFF, rest @ ..] => utf16(rest, u16::from_be_bytes).ok_or_else(invalid),
            _ => utf16(bytes, u16::from_le_bytes).ok_or_else(invalid),
        },
        "utf-16le" | "utf-16-le" => utf16(bytes, u16::from_le_bytes).ok_or_else(invalid),
        "utf-16be" | "utf-16-be" => utf16(bytes, u16::from_be_bytes).ok_or_else(invalid),
        _ => {
            let encoding = encoding_rs::Encoding::for_label(name.as_bytes()).ok_or_else(|| Error::Unknown(label.to_string()))?;
            // WHATWG maps some labels onto other encodings (UTF-16 variants, "replacement");
            // those are handled above or are not Python codecs at all.
            if encoding == encoding_rs::REPLACEMENT || encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE {
                return Err(Error::Unknown(label.to_string()));
            }
            encoding_rs_strict(encoding, bytes).ok_or_else(invalid)
        }
    }
}

/// Code units to text; an odd length or an unpaired surrogate is an error, as in Python. A BOM
/// inside the text (or at the start of UTF-16LE/BE) stays a U+FEFF character.
fn utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> Option<String> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units = bytes.chunks_exact(2).map(|c| unit([c[0], c[1]]));
    char::decode_utf16(units).collect::<Result<String, _>>().ok()
}

fn encoding_rs_strict(encoding: &'static encoding_rs::Encoding, bytes: &[u8]) -> Option<String> {
    encoding.decode_without_bom_handling_and_without_replacement(bytes).map(|text| text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_as_python_does() {
        // Expected values from CPython 3.11: bytes.decode(label).
        assert_eq!(decode("naïve ✓".as_bytes(), "UTF-8").unwrap(), "naïve ✓");
        assert_eq!(decode(b"\xef\xbb\xbfx", "utf-8").unwrap(), "\u{feff}x", "utf-8 keeps a BOM");
        assert_eq!(decode(b"caf\xe9 \x80", "ISO-8859-1").unwrap(), "café \u{80}");
        assert_eq!(decode(b"\x93q\x94 \x80 \x96", "windows-1252").unwrap(), "“q” € –");
        assert_eq!(decode(b"\x81", "windows-1252"), Err(Error::Invalid("windows-1252".into())));
        assert_eq!(decode(b"\xff\xfeh\x00\x13\x27", "UTF-16").unwrap(), "h✓");
        assert_eq!(decode(b"\xfe\xff\x00h", "UTF-16").unwrap(), "h");
        assert_eq!(decode(b"h\x00", "UTF-16").unwrap(), "h", "no BOM: little-endian");
        assert_eq!(decode(b"\xff\xfeh\x00", "UTF-16LE").unwrap(), "\u{feff}h", "utf-16-le keeps a BOM");
        assert_eq!(decode(b"\x00h", "utf_16_be").unwrap(), "h");
        assert!(decode(b"h\x00\x00", "UTF-16LE").is_err(), "odd length");
        assert!(decode(b"\x00\xd8", "UTF-16LE").is_err(), "unpaired surrogate");
        assert_eq!(decode(b"\xef\xf0\xe8\xe2\xe5\xf2", "windows-1251").unwrap(), "привет");
        assert_eq!(decode(b"\x82\xa0", "Shift_JIS").unwrap(), "あ");
        assert_eq!(decode(b"\xc4\xe3\xba\xc3", "GB2312").unwrap(), "你好");
        assert!(decode(b"\xff", "ascii").is_err());
        assert!(decode(b"\xff", "UTF-8").is_err());
        assert_eq!(decode(b"x", "klingon"), Err(Error::Unknown("klingon".into())));
    }
}
