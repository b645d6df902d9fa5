//! Bootstrap index streams: the seed's numpy draws replayed exactly, or our own ChaCha8
//! streams that can be generated in parallel.

use crate::error::{Error, Result};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::test_reference::reference;
    use serde_json::Value;

    fn u32s(v: &Value) -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
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
    fn empty_ranges_are_errors() {
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
