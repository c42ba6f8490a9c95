//! Identifiers from injected randomness.
//!
//! The core never reaches for an OS random source: the browser shell fills
//! bytes from `crypto.getRandomValues`, tests from a seeded generator; the
//! uuid crate lays them out as UUIDs.

use crate::prelude::*;

/// A source of random bytes.
pub trait Entropy {
    fn fill(&mut self, bytes: &mut [u8]);
}

/// A time-ordered UUIDv7 (sessions and events: sortable, index-friendly):
/// 48 bits of Unix milliseconds, the version, 74 random bits, the variant.
pub fn time_ordered_id(now_ms: u64, entropy: &mut dyn Entropy) -> String {
    let mut random = [0u8; 10];
    entropy.fill(&mut random);
    text(uuid::Builder::from_unix_timestamp_millis(now_ms, &random).into_uuid())
}

/// A random UUIDv4 (visitors: reveals nothing about when it was made).
pub fn random_id(entropy: &mut dyn Entropy) -> String {
    let mut random = [0u8; 16];
    entropy.fill(&mut random);
    text(uuid::Builder::from_random_bytes(random).into_uuid())
}

/// The UUID's lowercase hyphenated text.
fn text(id: uuid::Uuid) -> String {
    let mut buffer = uuid::Uuid::encode_buffer();
    id.hyphenated().encode_lower(&mut buffer).to_owned()
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
