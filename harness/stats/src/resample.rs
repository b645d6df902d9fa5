//! Bootstrap index streams: the seed's numpy draws replayed exactly, or our own ChaCha8
//! streams that can be generated in parallel.

use crate::error::{Error, Result};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Which random stream draws the bootstrap indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResampleRng {
    /// numpy's legacy `RandomState(seed).randint(0, n, n)` per resample, replayed exactly
    /// (MT19937): the seed's own resamples.
    Numpy,
    /// ChaCha8 streams, one per resample; parallel and platform-independent.
    Chacha,
}

/// numpy's legacy `np.random.RandomState(seed)`, enough of it to replay
/// `randint(0, n, size)` draw for draw.
///
/// numpy seeds MT19937 with `init_genrand(seed)` for an integer seed (`rand_mt::Mt::new`), and
/// its legacy bounded integers (`random_bounded_uint64_fill` with `use_masked`) take, for a
/// range below 2^32, 32-bit outputs masked to the smallest all-ones mask >= n - 1, rejecting
/// values > n - 1. A range of one value (n = 1) consumes no output at all. Not `rand`'s
/// `gen_range`: that uses a different (widening-multiply) rejection and would draw other indices.
/// Verified against numpy in fixtures/reference/eval_reference.json (`numpy_draws`).
#[derive(Clone, Debug)]
pub struct NumpyRandomState {
    mt: rand_mt::Mt,
}

impl NumpyRandomState {
    /// `RandomState(seed)`; numpy only accepts integer seeds in 0..2^32.
    pub fn new(seed: u64) -> Result<NumpyRandomState> {
        let seed = u32::try_from(seed).map_err(|_| {
            Error::bad_input(format!(
                "bootstrap seed {seed}: numpy's RandomState needs a seed in 0..=4294967295"
            ))
        })?;
        Ok(NumpyRandomState {
            mt: rand_mt::Mt::new(seed),
        })
    }

    /// The next raw 32-bit output (`randint(0, 2**32, dtype=np.uint64)`).
    pub fn next_u32(&mut self) -> u32 {
        self.mt.next_u32()
    }

    /// The next double in [0, 1) as `random_sample()` (and `uniform(0, 1)`) draws it: MT19937's
    /// `genrand_res53`, 27 + 26 bits of two outputs.
    pub fn random_sample(&mut self) -> f64 {
        let a = self.mt.next_u32() >> 5;
        let b = self.mt.next_u32() >> 6;
        (f64::from(a) * 67_108_864.0 + f64::from(b)) / 9_007_199_254_740_992.0
    }

    /// `permutation(n)`: `arange(n)` shuffled as numpy's legacy `shuffle` does (Fisher-Yates from
    /// the last position down, `j = random_interval(i)`: a 32-bit output masked to the smallest
    /// all-ones mask >= i, rejected while > i). The seed splits its val set for temperature
    /// scaling with `RandomState(42 + 999).permutation(n)` (protocol.md 10). Verified against numpy
    /// in fixtures/reference/calibration_reference.json (`permutations`).
    pub fn permutation(&mut self, n: usize) -> Result<Vec<usize>> {
        if u32::try_from(n).is_err() {
            return Err(Error::bad_input(format!(
                "permutation of {n} items: numpy's 32-bit draws cover at most 2^32 items"
            )));
        }
        let mut out: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let max = i as u32;
            let mask = u32::MAX >> max.leading_zeros();
            let j = loop {
                let v = self.mt.next_u32() & mask;
                if v <= max {
                    break v as usize;
                }
            };
            out.swap(i, j);
        }
        Ok(out)
    }

    /// Fills `out` as `randint(0, n, len(out))` does.
    pub fn randint_into(&mut self, n: u32, out: &mut [u32]) -> Result<()> {
        let max = n.checked_sub(1).ok_or_else(empty_range)?;
        if max == 0 {
            out.fill(0);
            return Ok(());
        }
        let mask = u32::MAX >> max.leading_zeros();
        // Branch-free acceptance: a rejected value is written and then overwritten. About one
        // draw in five is rejected at random, which a branch would mispredict (3x slower).
        let len = out.len();
        let mut filled = 0;
        while filled < len {
            let v = self.mt.next_u32() & mask;
            out[filled] = v;
            filled += usize::from(v <= max);
        }
        Ok(())
    }
}

/// numpy's `np.random.default_rng(seed)`: PCG64 seeded through `SeedSequence`, enough of it to
/// replay `integers(0, n, size)` and `choice(a, size, replace=True)` (which is
/// `a[integers(0, len(a), size)]`) draw for draw (protocol.md 7B).
///
/// - `SeedSequence(seed)` hashes the seed's 32-bit words into a 4-word pool and
///   `generate_state(4, uint64)` reads 8 words off it (numpy's `bit_generator.pyx`, after
///   M. E. O'Neill's seed_seq_fe); PCG64 takes words 0-1 as the initial state and 2-3 as the
///   stream (`pcg_setseq_128_srandom_r`).
/// - PCG64 is the 128-bit LCG with the XSL-RR output; `next_uint32` hands out the low half of a
///   64-bit output and keeps the high half for the next call.
/// - Bounded integers below 2^32 use Lemire's multiply-and-reject on 32-bit outputs
///   (`buffered_bounded_lemire_uint32`); a range of one value consumes nothing.
///
/// No crate replays this: `rand_pcg`'s `Pcg64` is a different generator (XSH-RR 64/32).
/// Verified against numpy in fixtures/reference/seed_stats_reference.json (`pcg64`).
#[derive(Clone, Debug)]
pub struct NumpyGenerator {
    state: u128,
    increment: u128,
    spare_u32: Option<u32>,
}

const PCG64_MULTIPLIER: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;

impl NumpyGenerator {
    /// `np.random.default_rng(seed)` for a non-negative integer seed.
    pub fn new(seed: u64) -> NumpyGenerator {
        let words = seed_sequence_words(seed);
        let pair = |i: usize| u64::from(words[2 * i]) | (u64::from(words[2 * i + 1]) << 32);
        let init_state = (u128::from(pair(0)) << 64) | u128::from(pair(1));
        let init_seq = (u128::from(pair(2)) << 64) | u128::from(pair(3));
        let mut g = NumpyGenerator {
            state: 0,
            increment: (init_seq << 1) | 1,
            spare_u32: None,
        };
        g.step();
        g.state = g.state.wrapping_add(init_state);
        g.step();
        g
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG64_MULTIPLIER).wrapping_add(self.increment);
    }

    /// The next raw 64-bit output (`bit_generator.random_raw()`).
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let folded = ((self.state >> 64) as u64) ^ (self.state as u64);
        folded.rotate_right((self.state >> 122) as u32)
    }

    fn next_u32(&mut self) -> u32 {
        if let Some(spare) = self.spare_u32.take() {
            return spare;
        }
        let next = self.next_u64();
        self.spare_u32 = Some((next >> 32) as u32);
        next as u32
    }

    /// Fills `out` as `integers(0, n, len(out))` does.
    pub fn integers_into(&mut self, n: u32, out: &mut [u32]) -> Result<()> {
        let max = n.checked_sub(1).ok_or_else(empty_range)?;
        if max == 0 {
            out.fill(0);
            return Ok(());
        }
        let threshold = n.wrapping_neg() % n;
        for slot in out.iter_mut() {
            *slot = loop {
                let product = u64::from(self.next_u32()) * u64::from(n);
                // numpy only computes the threshold once a low half falls below n; the
                // accepted draws are the same.
                if product as u32 >= threshold {
                    break (product >> 32) as u32;
                }
            };
        }
        Ok(())
    }
}

/// `SeedSequence(seed).generate_state(4, np.uint64)` as 8 little-endian 32-bit words.
fn seed_sequence_words(seed: u64) -> [u32; 8] {
    const INIT_A: u32 = 0x43b0_d7e5;
    const MULT_A: u32 = 0x931e_8875;
    const INIT_B: u32 = 0x8b51_f9dd;
    const MULT_B: u32 = 0x58f3_8ded;
    const MIX_MULT_L: u32 = 0xca01_f9dd;
    const MIX_MULT_R: u32 = 0x4973_f715;
    const XSHIFT: u32 = 16;
    // The seed as 32-bit words, least significant first; zero is one word.
    let entropy: Vec<u32> = if seed >> 32 == 0 {
        vec![seed as u32]
    } else {
        vec![seed as u32, (seed >> 32) as u32]
    };
    let mut hash_const = INIT_A;
    let mut hashmix = |value: u32| -> u32 {
        let mut v = value ^ hash_const;
        hash_const = hash_const.wrapping_mul(MULT_A);
        v = v.wrapping_mul(hash_const);
        v ^ (v >> XSHIFT)
    };
    let mix = |x: u32, y: u32| -> u32 {
        let r = MIX_MULT_L.wrapping_mul(x).wrapping_sub(MIX_MULT_R.wrapping_mul(y));
        r ^ (r >> XSHIFT)
    };
    let mut pool = [0u32; 4];
    for (i, slot) in pool.iter_mut().enumerate() {
        *slot = hashmix(entropy.get(i).copied().unwrap_or(0));
    }
    for src in 0..4 {
        for dst in 0..4 {
            if src != dst {
                let h = hashmix(pool[src]);
                pool[dst] = mix(pool[dst], h);
            }
        }
    }
    // (Entropy beyond four words would be mixed in here; a u64 seed has at most two.)
    let mut out = [0u32; 8];
    let mut hash_const = INIT_B;
    for (i, slot) in out.iter_mut().enumerate() {
        let mut d = pool[i % 4] ^ hash_const;
        hash_const = hash_const.wrapping_mul(MULT_B);
        d = d.wrapping_mul(hash_const);
        *slot = d ^ (d >> XSHIFT);
    }
    out
}

fn empty_range() -> Error {
    Error::bad_input("bootstrap: cannot draw indices from zero documents")
}

/// Fills `out` with uniform indices in 0..n from resample `resample`'s own ChaCha8 stream.
///
/// One key (the seed) and one stream number per resample: resamples are independent of each
/// other and of thread scheduling, so they can be drawn in any order. Each index is Lemire's
/// unbiased multiply-and-reject reduction of one 32-bit output (Lemire 2019, "Fast random
/// integer generation in an interval"), written here rather than `gen_range`, which is 3x
/// slower per call and whose algorithm `rand` may change between versions: the stream is
/// pinned by this code alone, the same on every platform.
pub fn chacha_indices(seed: u64, resample: u64, n: u32, out: &mut [u32]) -> Result<()> {
    if n == 0 {
        return Err(empty_range());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(resample);
    lemire_fill(&mut rng, n, out);
    Ok(())
}

/// Calls `f(r, indices)` for resample r = 0, 1, ... of `cfg`'s document bootstrap over `n`
/// documents, with exactly the indices [`crate::bootstrap::paired_bootstrap`] scores: the
/// numpy stream's `randint(0, n, n)` one resample after another, or resample r's own ChaCha8
/// stream. Statistics computed outside the paired bootstrap (calibration's ECE) use it to share
/// its resamples.
pub fn for_each_resample(
    cfg: &crate::bootstrap::BootstrapConfig,
    n: usize,
    mut f: impl FnMut(usize, &[u32]),
) -> Result<()> {
    let n_u32 = u32::try_from(n).map_err(|_| Error::bad_input(format!("bootstrap: {n} documents is too many")))?;
    let mut indices = vec![0u32; n];
    match cfg.rng {
        ResampleRng::Numpy => {
            let mut rs = NumpyRandomState::new(cfg.seed)?;
            for r in 0..cfg.resamples {
                rs.randint_into(n_u32, &mut indices)?;
                f(r, &indices);
            }
        }
        ResampleRng::Chacha => {
            for r in 0..cfg.resamples {
                chacha_indices(cfg.seed, r as u64, n_u32, &mut indices)?;
                f(r, &indices);
            }
        }
    }
    Ok(())
}

/// Fills `out` with uniform integers in 0..n (n >= 1) by Lemire's reduction of 32-bit outputs.
pub(crate) fn lemire_fill(rng: &mut impl RngCore, n: u32, out: &mut [u32]) {
    // Products whose low half falls below (2^32 - n) mod n are rejected: with them the
    // high halves would not be uniform. For n in the thousands that is ~1 draw in a million.
    let threshold = n.wrapping_neg() % n;
    for slot in out.iter_mut() {
        *slot = loop {
            let product = u64::from(rng.next_u32()) * u64::from(n);
            if product as u32 >= threshold {
                break (product >> 32) as u32;
            }
        };
    }
}

/// A ChaCha8 stream for one resample of a draw other than the document indices (seeds in the
/// two-level bootstrap, ASO's quantile draws): the key is the seed's bytes followed by `purpose`,
/// so it never coincides with [`chacha_indices`]' keys (those are expanded from the seed by
/// PCG32 and do not end in ASCII text), and the stream number is the resample.
pub(crate) fn chacha_purpose_stream(seed: u64, purpose: &[u8; 24], resample: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..].copy_from_slice(purpose);
    let mut rng = ChaCha8Rng::from_seed(key);
    rng.set_stream(resample);
    rng
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_reference::reference;
    use serde_json::Value;

    fn u32s(v: &Value) -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    }

    #[test]
    fn permutation_replays_numpy() {
        let r = crate::test_reference::calibration_reference();
        for case in r["permutations"].as_array().unwrap() {
            let (seed, n) = (case["seed"].as_u64().unwrap(), case["n"].as_u64().unwrap() as usize);
            let got = NumpyRandomState::new(seed).unwrap().permutation(n).unwrap();
            let want = crate::test_reference::usizes(&case["permutation"]);
            assert_eq!(got, want, "RandomState({seed}).permutation({n})");
        }
    }

    #[test]
    fn mt19937_matches_numpy_seeding() {
        let r = reference();
        let d = &r["numpy_draws"];
        let mut rs = NumpyRandomState::new(d["seed"].as_u64().unwrap()).unwrap();
        let got: Vec<u32> = (0..5).map(|_| rs.next_u32()).collect();
        assert_eq!(got, u32s(&d["first_u32"]));
    }

    #[test]
    fn randint_replays_numpy_resample_after_resample() {
        let r = reference();
        let d = &r["numpy_draws"];
        for (key, n) in [("n6430", 6430u32), ("n10", 10)] {
            let mut rs = NumpyRandomState::new(d["seed"].as_u64().unwrap()).unwrap();
            for (i, expected) in d[key].as_array().unwrap().iter().enumerate() {
                let mut got = vec![0u32; n as usize];
                rs.randint_into(n, &mut got).unwrap();
                assert_eq!(got, u32s(expected), "{key}, resample {i}");
            }
        }
    }

    #[test]
    fn randint_edge_ranges_match_numpy() {
        // n = 1 draws nothing, powers of two never reject, 17 rejects most draws.
        let r = reference();
        let d = &r["numpy_draws"];
        let mut rs = NumpyRandomState::new(d["mixed_seed"].as_u64().unwrap()).unwrap();
        for case in d["mixed"].as_array().unwrap() {
            let n = case["n"].as_u64().unwrap() as u32;
            let mut got = vec![0u32; n as usize];
            rs.randint_into(n, &mut got).unwrap();
            assert_eq!(got, u32s(&case["indices"]), "n = {n}");
        }
    }

    #[test]
    fn chacha_indices_are_uniform() {
        // Chi-squared goodness of fit over 7 cells, and a range whose rejection zone is large
        // ((2^32 - n) mod n = 1,294,967,296, ~30% of draws): both halves equally likely.
        use statrs::distribution::{ChiSquared, ContinuousCDF};
        let mut draws = vec![0u32; 70_000];
        chacha_indices(1, 0, 7, &mut draws).unwrap();
        let mut cells = [0f64; 7];
        draws.iter().for_each(|&d| cells[d as usize] += 1.0);
        let chi2: f64 = cells.iter().map(|&o| (o - 10_000.0).powi(2) / 10_000.0).sum();
        assert!(
            ChiSquared::new(6.0).unwrap().sf(chi2) > 1e-4,
            "chi2 = {chi2}, cells {cells:?}"
        );
        let n = 3_000_000_000u32;
        chacha_indices(1, 1, n, &mut draws).unwrap();
        let low = draws.iter().filter(|&&d| d < n / 2).count() as f64 / draws.len() as f64;
        assert!(
            draws.iter().all(|&d| d < n) && (low - 0.5).abs() < 0.01,
            "share below n/2: {low}"
        );
    }

    #[test]
    fn pcg64_replays_numpy_default_rng() {
        let r = crate::test_reference::seed_stats_reference();
        let d = &r["tier_bootstrap"]["pcg64"];
        let parse = |v: &Value| -> Vec<u64> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().parse().unwrap())
                .collect()
        };
        let mut g = NumpyGenerator::new(d["seed"].as_u64().unwrap());
        let raw: Vec<u64> = (0..4).map(|_| g.next_u64()).collect();
        assert_eq!(raw, parse(&d["raw"]));
        let mut big = NumpyGenerator::new(d["big_seed"].as_str().unwrap().parse().unwrap());
        let raw: Vec<u64> = (0..2).map(|_| big.next_u64()).collect();
        assert_eq!(raw, parse(&d["big_seed_raw"]), "a seed above 2^32 (two entropy words)");
        // One generator through every range in the script's order: the spare 32-bit half
        // carries over from one call to the next.
        let mut g = NumpyGenerator::new(d["seed"].as_u64().unwrap());
        for n in [1u32, 7, 210, 5155, 3_000_000_000] {
            let mut got = vec![0u32; 12];
            g.integers_into(n, &mut got).unwrap();
            assert_eq!(got, u32s(&d["integers_in_order"][n.to_string()]), "n = {n}");
        }
    }

    #[test]
    fn random_sample_is_in_unit_interval() {
        let mut rs = NumpyRandomState::new(5).unwrap();
        assert!((0..1000).map(|_| rs.random_sample()).all(|u| (0.0..1.0).contains(&u)));
    }

    #[test]
    fn empty_ranges_are_errors() {
        assert!(NumpyGenerator::new(1).integers_into(0, &mut [0; 3]).is_err());
        assert!(NumpyRandomState::new(1).unwrap().randint_into(0, &mut [0; 3]).is_err());
        assert!(chacha_indices(1, 0, 0, &mut [0; 3]).is_err());
    }

    #[test]
    fn numpy_seed_must_fit_32_bits() {
        assert!(NumpyRandomState::new(1 << 32)
            .unwrap_err()
            .to_string()
            .contains("4294967295"));
    }

    #[test]
    fn chacha_streams_are_deterministic_distinct_and_in_range() {
        let mut a = vec![0u32; 1000];
        let mut b = vec![0u32; 1000];
        chacha_indices(49, 3, 17, &mut a).unwrap();
        chacha_indices(49, 3, 17, &mut b).unwrap();
        assert_eq!(a, b);
        assert!(a.iter().all(|&i| i < 17));
        chacha_indices(49, 4, 17, &mut b).unwrap();
        assert_ne!(a, b, "resamples must use different streams");
        chacha_indices(50, 3, 17, &mut b).unwrap();
        assert_ne!(a, b, "seeds must give different streams");
        // Every index turns up in 1000 draws from 17 (a stream that ignored n would not).
        assert!((0..17).all(|i| a.contains(&i)));
    }
}
