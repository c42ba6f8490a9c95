//! Identifiers from injected randomness.
//!
//! The core never reaches for an OS random source: the browser shell fills
//! bytes from `crypto.getRandomValues`, tests from a seeded generator.

use crate::prelude::*;

use crate::text::HEX_DIGITS;

/// A source of random bytes.
pub trait Entropy {
    fn fill(&mut self, bytes: &mut [u8]);
}

/// A time-ordered UUIDv7 (sessions and events: sortable, index-friendly):
/// 48 bits of Unix milliseconds, the version, 74 random bits, the variant.
pub fn time_ordered_id(now_ms: u64, entropy: &mut dyn Entropy) -> String {
    let mut bytes = [0u8; 16];
    entropy.fill(&mut bytes[6..]);
    for (i, byte) in bytes[..6].iter_mut().enumerate() {
        *byte = (now_ms >> (40 - 8 * i)) as u8;
    }
    hyphenated(bytes, 0x70)
}

/// A random UUIDv4 (visitors: reveals nothing about when it was made).
pub fn random_id(entropy: &mut dyn Entropy) -> String {
    let mut bytes = [0u8; 16];
    entropy.fill(&mut bytes);
    hyphenated(bytes, 0x40)
}

/// The UUID's lowercase hyphenated text, with its `version` nibble and the
/// RFC 4122 variant set (written here: the uuid crate's formatting is more
/// code than the SDK needs).
fn hyphenated(mut bytes: [u8; 16], version: u8) -> String {
    bytes[6] = version | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    let mut out = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX_DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(HEX_DIGITS[usize::from(byte & 15)]));
    }
    out
}

/// A deterministic generator for tests (xorshift64*).
#[derive(Debug, Clone)]
pub struct SeededEntropy(pub u64);

impl Entropy for SeededEntropy {
    fn fill(&mut self, bytes: &mut [u8]) {
        for b in bytes {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuids_of_the_right_version() {
        let mut e = SeededEntropy(7);
        let v7 = uuid::Uuid::parse_str(&time_ordered_id(1_700_000_000_000, &mut e)).unwrap();
        assert_eq!(v7.get_version_num(), 7);
        let v4 = uuid::Uuid::parse_str(&random_id(&mut e)).unwrap();
        assert_eq!(v4.get_version_num(), 4);
    }

    #[test]
    fn ids_are_written_as_the_uuid_crate_writes_them() {
        for seed in 1..50 {
            let (mut a, mut b) = (SeededEntropy(seed), SeededEntropy(seed));
            let ms = 1_700_000_000_000 + seed * 7_919;
            let mut random = [0u8; 10];
            b.fill(&mut random);
            let v7 = uuid::Builder::from_unix_timestamp_millis(ms, &random).into_uuid();
            assert_eq!(time_ordered_id(ms, &mut a), v7.hyphenated().to_string());
            let mut random = [0u8; 16];
            b.fill(&mut random);
            let v4 = uuid::Builder::from_random_bytes(random).into_uuid();
            assert_eq!(random_id(&mut a), v4.hyphenated().to_string());
        }
    }

    #[test]
    fn time_ordered_ids_sort_by_time() {
        let mut e = SeededEntropy(1);
        let a = time_ordered_id(1_000, &mut e);
        let b = time_ordered_id(2_000, &mut e);
        assert!(a < b);
        assert_ne!(
            time_ordered_id(1_000, &mut e),
            time_ordered_id(1_000, &mut e)
        );
    }
}
