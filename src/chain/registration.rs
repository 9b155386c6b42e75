//! SCALE decoding of `Commitments.CommitmentOf` values (chain.md §2.2), by hand so that a runtime
//! upgrade that does not touch this layout cannot break valkit:
//! `Registration { deposit: u64, block: u32, info: CommitmentInfo { fields: Vec<Data> } }`;
//! and of `SubtensorModule.Weights` rows (`Vec<(u16, u16)>`, §2.1) with the same reader.

/// The chain bounds a commitment to 3 fields; the SDK reads the first.
const MAX_FIELDS: usize = 16;
/// `BigRaw` is bounded by the runtime (512 bytes at spec 365); refuse anything far beyond.
const MAX_BIG_RAW: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("commitment value ends after {at} of {len} bytes")]
    Truncated { at: usize, len: usize },
    #[error("commitment field has unknown Data variant {0}")]
    UnknownVariant(u8),
    #[error("commitment has {0} fields, more than any runtime allows")]
    TooManyFields(u64),
    #[error("commitment BigRaw field of {0} bytes is larger than any runtime allows")]
    TooLarge(u64),
    #[error("{0} unexpected bytes after the commitment value")]
    Trailing(usize),
}

/// One `pallet_commitments::types::Data` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    None,
    /// `Raw0..Raw128` and `BigRaw`: the bytes a miner committed.
    Raw(Vec<u8>),
    /// `BlakeTwo256`, `Sha256`, `Keccak256`, `ShaThree256`: a 32-byte hash.
    Hash {
        variant: &'static str,
        hash: [u8; 32],
    },
    TimelockEncrypted {
        reveal_round: u64,
    },
    ResetBondsFlag,
}

impl Data {
    pub fn variant_name(&self) -> &'static str {
        match self {
            Data::None => "None",
            Data::Raw(_) => "Raw",
            Data::Hash { variant, .. } => variant,
            Data::TimelockEncrypted { .. } => "TimelockEncrypted",
            Data::ResetBondsFlag => "ResetBondsFlag",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub deposit: u64,
    /// The block in which `set_commitment` ran: the model's upload block.
    pub block: u32,
    pub fields: Vec<Data>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or(Error::Truncated { at: self.at, len: self.bytes.len() })?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    /// SCALE compact integer (all four modes).
    fn compact(&mut self) -> Result<u64, Error> {
        let first = self.take(1)?[0];
        Ok(match first & 0b11 {
            0 => u64::from(first >> 2),
            1 => u64::from(u16::from_le_bytes([first, self.take(1)?[0]]) >> 2),
            2 => {
                let rest = self.take(3)?;
                u64::from(u32::from_le_bytes([first, rest[0], rest[1], rest[2]]) >> 2)
            }
            _ => {
                let len = usize::from(first >> 2) + 4;
                if len > 8 {
                    return Err(Error::TooManyFields(u64::MAX));
                }
                let mut buf = [0u8; 8];
                buf[..len].copy_from_slice(self.take(len)?);
                u64::from_le_bytes(buf)
            }
        })
    }
}

pub fn decode(bytes: &[u8]) -> Result<Registration, Error> {
    let mut r = Reader { bytes, at: 0 };
    let deposit = u64::from_le_bytes(r.array()?);
    let block = u32::from_le_bytes(r.array()?);
    let count = r.compact()?;
    if count > MAX_FIELDS as u64 {
        return Err(Error::TooManyFields(count));
    }
    let mut fields = Vec::with_capacity(count as usize);
    for _ in 0..count {
        fields.push(decode_data(&mut r)?);
    }
    if r.at != bytes.len() {
        return Err(Error::Trailing(bytes.len() - r.at));
    }
    Ok(Registration { deposit, block, fields })
}

fn decode_data(r: &mut Reader) -> Result<Data, Error> {
    let tag = r.take(1)?[0];
    let mut hash = |variant| -> Result<Data, Error> { Ok(Data::Hash { variant, hash: r.array()? }) };
    match tag {
        0 => Ok(Data::None),
        1..=129 => Ok(Data::Raw(r.take(usize::from(tag - 1))?.to_vec())),
        130 => hash("BlakeTwo256"),
        131 => hash("Sha256"),
        132 => hash("Keccak256"),
        133 => hash("ShaThree256"),
        134 => {
            let len = r.compact()?;
            if len > MAX_BIG_RAW as u64 {
                return Err(Error::TooLarge(len));
            }
            r.take(len as usize)?;
            Ok(Data::TimelockEncrypted { reveal_round: u64::from_le_bytes(r.array()?) })
        }
        135 => Ok(Data::ResetBondsFlag),
        136 => {
            let len = r.compact()?;
            if len > MAX_BIG_RAW as u64 {
                return Err(Error::TooLarge(len));
            }
            Ok(Data::Raw(r.take(len as usize)?.to_vec()))
        }
        other => Err(Error::UnknownVariant(other)),
    }
}

/// A `Weights` row: a compact length, then plain little-endian (dest uid, value) pairs.
pub fn weight_pairs(bytes: &[u8]) -> Result<(Vec<u16>, Vec<u16>), Error> {
    let mut r = Reader { bytes, at: 0 };
    let count = r.compact()?;
    // Each pair takes 4 bytes: a count the bytes cannot hold is a truncated value.
    if count > (bytes.len() / 4) as u64 {
        return Err(Error::Truncated { at: r.at, len: bytes.len() });
    }
    let mut pairs = (Vec::with_capacity(count as usize), Vec::with_capacity(count as usize));
    for _ in 0..count {
        pairs.0.push(u16::from_le_bytes(r.array()?));
        pairs.1.push(u16::from_le_bytes(r.array()?));
    }
    if r.at != bytes.len() {
        return Err(Error::Trailing(bytes.len() - r.at));
    }
    Ok(pairs)
}

/// The commitment string as the SDK's `decode_metadata` reads it: the first field's bytes as
/// UTF-8. Anything else is the reason this uid has no model (its row's `metadata_error`).
pub fn commitment_text(registration: &Registration) -> Result<String, String> {
    match registration.fields.first() {
        None => Err("commitment has no fields".into()),
        Some(Data::Raw(bytes)) => String::from_utf8(bytes.clone())
            .map_err(|e| format!("commitment is not UTF-8 (invalid byte at offset {})", e.utf8_error().valid_up_to())),
        Some(other) => Err(format!("commitment's first field is {}, not raw bytes", other.variant_name())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The raw value the chain fixture stored for uid 0 (`../shared/chain/README.md`).
    const SEEDED: &str = "my-org:my-model-0:745ea260a18f2bfe675c205131dc43a2c5cae3f4:109kw6Dka+iXIX+2vUf/jzsjl+A6Y/v885RjjugxX+0=:2";

    fn encoded(deposit: u64, block: u32, fields: &[&[u8]]) -> Vec<u8> {
        let mut out = deposit.to_le_bytes().to_vec();
        out.extend_from_slice(&block.to_le_bytes());
        out.push((fields.len() as u8) << 2);
        for f in fields {
            out.extend_from_slice(f);
        }
        out
    }

    #[test]
    fn decodes_the_chain_fixture_commitment() {
        let mut field = vec![SEEDED.len() as u8 + 1];
        field.extend_from_slice(SEEDED.as_bytes());
        let bytes = encoded(0, 8, &[&field]);
        // The prefix of the raw value the README shows for this commitment.
        assert!(hex::encode(&bytes).starts_with("000000000000000008000000046a6d792d"));
        let reg = decode(&bytes).unwrap();
        assert_eq!((reg.deposit, reg.block), (0, 8));
        assert_eq!(commitment_text(&reg).unwrap(), SEEDED);
    }

    #[test]
    fn decodes_every_data_variant() {
        let big_raw = [&[136u8, 3 << 2][..], b"abc"].concat();
        let hash = [&[131u8][..], &[7u8; 32]].concat();
        let timelock = [&[134u8, 2 << 2, 9, 9][..], &5u64.to_le_bytes()].concat();
        let bytes = encoded(1, 2, &[&[0], &[1], &big_raw, &hash, &timelock, &[135]]);
        let reg = decode(&bytes).unwrap();
        assert_eq!(
            reg.fields,
            vec![
                Data::None,
                Data::Raw(vec![]),
                Data::Raw(b"abc".to_vec()),
                Data::Hash { variant: "Sha256", hash: [7; 32] },
                Data::TimelockEncrypted { reveal_round: 5 },
                Data::ResetBondsFlag,
            ]
        );
        assert_eq!(commitment_text(&reg).unwrap_err(), "commitment's first field is None, not raw bytes");
    }

    #[test]
    fn refuses_malformed_values() {
        assert!(matches!(decode(&[0; 5]), Err(Error::Truncated { .. })));
        assert_eq!(decode(&encoded(0, 0, &[&[137]])), Err(Error::UnknownVariant(137)));
        assert!(matches!(decode(&encoded(0, 0, &[&[10, b'a']])), Err(Error::Truncated { .. })));
        assert_eq!(decode(&[encoded(0, 0, &[&[0]]), vec![1]].concat()), Err(Error::Trailing(1)));
        let mut many = encoded(0, 0, &[]);
        many[12] = 0x01; // compact two-byte mode
        many.push(0x10); // 0x1001 >> 2 = 1024 fields
        assert_eq!(decode(&many), Err(Error::TooManyFields(1024)));
        let huge = encoded(0, 0, &[&[136, 0xfe, 0xff, 0xff, 0xff]]);
        assert!(matches!(decode(&huge), Err(Error::TooLarge(_))));
    }

    #[test]
    fn weight_rows_decode_as_the_chain_stores_them() {
        // chain.md §2.1: the raw `Weights(2, 0)` value of the fixture.
        let bytes = hex::decode("0c010055550200aaaa0300ffff").unwrap();
        assert_eq!(weight_pairs(&bytes).unwrap(), (vec![1, 2, 3], vec![0x5555, 0xaaaa, 0xffff]));
        assert!(weight_pairs(&bytes[..bytes.len() - 1]).is_err());
        assert!(weight_pairs(&[bytes.clone(), vec![0]].concat()).is_err());
        assert_eq!(weight_pairs(&[0]).unwrap(), (vec![], vec![]));
    }

    #[test]
    fn non_utf8_is_an_error_not_a_panic() {
        let reg = Registration { deposit: 0, block: 1, fields: vec![Data::Raw(vec![b'a', 0xff])] };
        assert_eq!(commitment_text(&reg).unwrap_err(), "commitment is not UTF-8 (invalid byte at offset 1)");
        let empty = Registration { deposit: 0, block: 1, fields: vec![] };
        assert!(commitment_text(&empty).is_err());
    }
}
