//! Identifiers from injected randomness.
//!
//! The core never reaches for an OS random source: the browser shell fills
//! bytes from `crypto.getRandomValues`, tests from a seeded generator; the
//! uuid crate lays them out as UUIDs.

use crate::prelude::*;
use alloc::boxed::Box;

/// A source of random bytes.
pub trait Entropy {
    fn fill(&mut self, bytes: &mut [u8]);
}

/// A boxed source (see the boxed [`crate::Storage`]).
impl<E: Entropy + ?Sized> Entropy for Box<E> {
    fn fill(&mut self, bytes: &mut [u8]) {
        (**self).fill(bytes);
    }
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

/// Bytes drawn from a key, the same on every machine: the ids of an early
/// page whose events both the collector (from the loader's beacon) and the
/// SDK (from the stub's record, on the next page) build, so that the two
/// copies are one event to the collector ([`crate::EarlyPage::key`]). The
/// key's text (a random UUID's) is folded into two 64-bit halves (FNV-1a,
/// forwards and backwards); each 8-byte block is then splitmix64's
/// finaliser over the halves and a block counter. Not for secrets: it only
/// has to give unrelated ids for unrelated keys.
#[derive(Debug, Clone)]
pub struct KeyedEntropy {
    halves: [u64; 2],
    block: u64,
}

impl KeyedEntropy {
    pub fn new(key: &str) -> KeyedEntropy {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let fold = |acc: u64, byte: &u8| (acc ^ u64::from(*byte)).wrapping_mul(PRIME);
        let bytes = key.as_bytes();
        KeyedEntropy {
            halves: [
                bytes.iter().fold(OFFSET, fold),
                bytes.iter().rev().fold(!OFFSET, fold),
            ],
            block: 0,
        }
    }
}

/// splitmix64's output function.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Entropy for KeyedEntropy {
    fn fill(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            self.block += 1;
            let step = self.block.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let word =
                mix(self.halves[0].wrapping_add(step)) ^ mix(self.halves[1] ^ step).rotate_left(29);
            for (b, w) in chunk.iter_mut().zip(word.to_le_bytes()) {
                *b = w;
            }
        }
    }
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
    fn keyed_ids_follow_the_key_alone() {
        let key = "9b2f3c1e-7a44-4e0b-9a51-0c6f1d2e3a4b";
        let ids = |key: &str| {
            let mut e = KeyedEntropy::new(key);
            [
                time_ordered_id(1_000, &mut e),
                random_id(&mut e),
                random_id(&mut e),
            ]
        };
        assert_eq!(ids(key), ids(key));
        // A pinned answer: the SDK (wasm32) and the collector (x86-64)
        // must draw the same ids from a key.
        assert_eq!(
            ids(key),
            [
                "00000000-03e8-72ca-8392-629437fc09e5",
                "3cab8a3f-fc96-45aa-b434-e634ea749749",
                "2eb16f3f-1072-4259-b7f8-c4bdf5353318"
            ]
        );
        let (a, b) = (ids(key), ids("9b2f3c1e-7a44-4e0b-9a51-0c6f1d2e3a4c"));
        assert!(a.iter().all(|id| !b.contains(id)), "{a:?} {b:?}");
        assert_ne!(a[1], a[2]);
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
