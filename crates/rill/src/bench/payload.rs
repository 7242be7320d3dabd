//! What the benchmark's producers send: payloads (random bytes of a fixed
//! size, or the records of a file), keys drawn from a distribution, and the
//! send-time stamp that end-to-end runs read back on the consumer side.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use clap::ValueEnum;

/// Bytes at the front of a payload that carry its send time in `e2e` runs.
pub(crate) const STAMP_LEN: usize = 8;

/// The message values of a run.
pub(crate) enum Payloads {
    /// One random value of the configured size, sent over and over.
    Random(Vec<u8>),
    /// The records of a file (split at a delimiter), picked at random per
    /// message, as Kafka's `kafka-producer-perf-test --payload-file`.
    File(Vec<Vec<u8>>),
}

impl Payloads {
    pub(crate) fn random(size: usize, seed: u64) -> Payloads {
        let mut rng = SplitMix64::new(seed);
        let mut value = Vec::with_capacity(size + 8);
        while value.len() < size {
            value.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        value.truncate(size);
        Payloads::Random(value)
    }

    /// The non-empty records of `path` separated by `delimiter`.
    pub(crate) fn from_file(path: &Path, delimiter: u8) -> anyhow::Result<Payloads> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let records: Vec<Vec<u8>> = bytes
            .split(|&byte| byte == delimiter)
            .filter(|record| !record.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        ensure!(
            !records.is_empty(),
            "{} holds no payloads (records separated by byte {delimiter:#04x})",
            path.display()
        );
        Ok(Payloads::File(records))
    }

    /// The value of the next message.
    pub(crate) fn pick<'a>(&'a self, rng: &mut SplitMix64) -> &'a [u8] {
        match self {
            Payloads::Random(value) => value,
            Payloads::File(records) => &records[rng.below(records.len() as u64) as usize],
        }
    }

    /// The shortest value this source gives.
    pub(crate) fn min_len(&self) -> usize {
        match self {
            Payloads::Random(value) => value.len(),
            Payloads::File(records) => records.iter().map(Vec::len).min().unwrap_or(0),
        }
    }
}

/// How message keys are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KeyDistribution {
    /// No key: the client spreads messages over partitions.
    None,
    /// Each of --key-count keys equally likely.
    Uniform,
    /// Key k of --key-count with probability proportional to 1/k^s
    /// (--zipf-exponent s): a few hot keys, a long tail.
    Zipf,
}

/// Draws keys `key-0 .. key-(count-1)` from a distribution.
pub(crate) struct Keys {
    distribution: KeyDistribution,
    count: u64,
    /// Zipf only: the cumulative probability of keys 0..=k.
    cumulative: Vec<f64>,
}

impl Keys {
    pub(crate) fn new(distribution: KeyDistribution, count: u64, exponent: f64) -> Keys {
        let cumulative = if distribution == KeyDistribution::Zipf {
            let weights: Vec<f64> = (1..=count).map(|k| (k as f64).powf(-exponent)).collect();
            let total: f64 = weights.iter().sum();
            let mut running = 0.0;
            weights
                .iter()
                .map(|weight| {
                    running += weight / total;
                    running
                })
                .collect()
        } else {
            Vec::new()
        };
        Keys {
            distribution,
            count,
            cumulative,
        }
    }

    /// Writes the next key into `buffer`; `false` when messages have none.
    pub(crate) fn next(&self, rng: &mut SplitMix64, buffer: &mut Vec<u8>) -> bool {
        let index = match self.distribution {
            KeyDistribution::None => return false,
            KeyDistribution::Uniform => rng.below(self.count),
            KeyDistribution::Zipf => {
                let draw = rng.unit();
                self.cumulative
                    .partition_point(|&probability| probability < draw)
                    .min(self.cumulative.len().saturating_sub(1)) as u64
            }
        };
        buffer.clear();
        buffer.extend_from_slice(b"key-");
        buffer.extend_from_slice(index.to_string().as_bytes());
        true
    }
}

/// Writes the current wall-clock time, nanoseconds since the Unix epoch,
/// into the first [`STAMP_LEN`] bytes of `value` (consumers on the same
/// machine subtract it from their own clock).
pub(crate) fn stamp(value: &mut [u8], at: SystemTime) {
    let nanos = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64);
    value[..STAMP_LEN].copy_from_slice(&nanos.to_le_bytes());
}

/// The stamp of `value`, if it is long enough to carry one.
pub(crate) fn read_stamp(value: &[u8]) -> Option<SystemTime> {
    let bytes: [u8; STAMP_LEN] = value.get(..STAMP_LEN)?.try_into().ok()?;
    Some(UNIX_EPOCH + std::time::Duration::from_nanos(u64::from_le_bytes(bytes)))
}

/// A small, fast pseudo-random generator (SplitMix64): payload bytes and
/// key draws need speed and a seed, not cryptographic quality.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` > 0); the modulo bias is negligible
    /// for the key counts used here.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_payloads_have_the_asked_size() {
        for size in [0, 1, 7, 8, 100, 1024] {
            let payloads = Payloads::random(size, 1);
            assert_eq!(payloads.pick(&mut SplitMix64::new(2)).len(), size);
        }
    }

    #[test]
    fn file_payloads_are_the_non_empty_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("payloads");
        std::fs::write(&path, b"one\n\ntwo\nthree\n").expect("write");
        let payloads = Payloads::from_file(&path, b'\n').expect("payloads");
        let mut rng = SplitMix64::new(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.insert(payloads.pick(&mut rng).to_vec());
        }
        let expected: std::collections::BTreeSet<Vec<u8>> =
            [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()].into();
        assert_eq!(seen, expected);
        assert_eq!(payloads.min_len(), 3);
    }

    #[test]
    fn zipf_keys_favour_the_first_keys_and_uniform_keys_do_not() {
        let mut rng = SplitMix64::new(4);
        let mut key = Vec::new();
        let count = |keys: &Keys, rng: &mut SplitMix64, key: &mut Vec<u8>| {
            let mut hot = 0;
            for _ in 0..10_000 {
                assert!(keys.next(rng, key));
                if key == b"key-0" {
                    hot += 1;
                }
            }
            hot
        };
        let zipf = Keys::new(KeyDistribution::Zipf, 1000, 1.0);
        let uniform = Keys::new(KeyDistribution::Uniform, 1000, 1.0);
        // P(key-0) is 1/H(1000) ≈ 13% under Zipf(1), 0.1% when uniform.
        let zipf_hot = count(&zipf, &mut rng, &mut key);
        let uniform_hot = count(&uniform, &mut rng, &mut key);
        assert!((1000..1600).contains(&zipf_hot), "zipf: {zipf_hot}");
        assert!(uniform_hot < 40, "uniform: {uniform_hot}");
        assert!(!Keys::new(KeyDistribution::None, 1, 1.0).next(&mut rng, &mut key));
    }

    #[test]
    fn stamps_round_trip() {
        let at = UNIX_EPOCH + std::time::Duration::from_nanos(1_700_000_000_123_456_789);
        let mut value = vec![0u8; 16];
        stamp(&mut value, at);
        assert_eq!(read_stamp(&value), Some(at));
        assert_eq!(read_stamp(&value[..7]), None);
    }
}
