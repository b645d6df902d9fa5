//! The timing protocol, over any [`TextClassifier`]: untimed warm-up, single-example latency
//! over real texts (median, p95), then batched throughput at each batch size (median of
//! repeated batches), documents/s and tokens/s.
//!
//! Timing runs after the accuracy run and only reads the clock around calls whose outputs are
//! discarded: timing never changes predictions (MLPerf's rule).
//!
//! Device synchronisation: a GPU runs queued work asynchronously, so every clock read is
//! preceded by `TextClassifier::synchronize` (candle's `Device::synchronize`: a no-op on the
//! CPU), and a timed interval never starts while earlier work is still running or ends before
//! its own has finished. (`predict_proba` also ends with a device-to-host copy of the
//! probabilities, which waits too; the explicit synchronise does not rely on that.) Device
//! memory is read at the same points, for the peak.

use crate::classifier::TextClassifier;
use crate::suite::PerfSpec;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Where time comes from; tests substitute a simulated clock so that timing logic is exact.
pub trait Clock {
    fn now(&self) -> Duration;
}

/// The monotonic wall clock (`std::time::Instant`).
pub struct WallClock(Instant);

impl WallClock {
    pub fn new() -> WallClock {
        WallClock(Instant::now())
    }
}

impl Default for WallClock {
    fn default() -> Self {
        WallClock::new()
    }
}

impl Clock for WallClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// Summary of repeated latencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub n: usize,
    pub median_ms: f64,
    /// numpy's default (linearly interpolated) 95th percentile.
    pub p95_ms: f64,
    pub mean_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl LatencyStats {
    /// `None` for no samples.
    pub fn from_samples(samples_ms: &[f64]) -> Option<LatencyStats> {
        if samples_ms.is_empty() {
            return None;
        }
        let mut sorted = samples_ms.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(LatencyStats {
            n: sorted.len(),
            median_ms: percentile_linear(&sorted, 50.0),
            p95_ms: percentile_linear(&sorted, 95.0),
            mean_ms: sorted.iter().sum::<f64>() / sorted.len() as f64,
            min_ms: sorted[0],
            max_ms: sorted[sorted.len() - 1],
        })
    }
}

/// numpy's default percentile (method "linear") of sorted, non-empty data. Written here because
/// `eval`'s version is for bootstrap intervals and perf must not depend on eval.
pub fn percentile_linear(sorted: &[f64], q_percent: f64) -> f64 {
    let pos = (sorted.len() - 1) as f64 * q_percent / 100.0;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    match sorted.get(lo + 1) {
        Some(&next) if frac > 0.0 => sorted[lo] + (next - sorted[lo]) * frac,
        _ => sorted[lo],
    }
}

/// Throughput at one batch size: timed passes over the same pool of documents at every batch
/// size (so that sizes compare on equal text lengths), the median pass reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchTiming {
    pub batch_size: usize,
    /// Timed passes over the pool (fewer than asked when the time budget ran out).
    pub repeats: usize,
    /// Documents per pass: the largest batch size, the same documents at every size.
    pub pool_docs: usize,
    pub median_pass_ms: f64,
    pub p95_pass_ms: f64,
    /// Median pass time / batches per pass.
    pub median_batch_ms: f64,
    /// Median pass time / documents per pass.
    pub ms_per_doc: f64,
    /// Documents per pass / median pass time.
    pub docs_per_s: f64,
    /// Tokens in the pool / median pass time; see `token_unit`.
    pub tokens_per_s: Option<f64>,
}

/// A batch size that could not run (typically out of memory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchFailure {
    pub batch_size: usize,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimingReport {
    /// Distinct texts the timing drew from (the first of the primary split).
    pub n_texts: usize,
    pub warmup: usize,
    /// One text per call.
    pub single: Option<LatencyStats>,
    pub batches: Vec<BatchTiming>,
    /// Batch sizes that failed; larger sizes are then skipped (they would fail too).
    #[serde(default)]
    pub failed_batches: Vec<BatchFailure>,
    /// Batch sizes not tried because a smaller one failed.
    #[serde(default)]
    pub skipped_batch_sizes: Vec<usize>,
    /// What `tokens_per_s` counts: `model tokens` (the model's own tokenizer, after truncation)
    /// or `whitespace words` (models without a tokenizer, e.g. TF-IDF).
    pub token_unit: String,
    /// Wall time spent in the whole protocol, warm-up included.
    pub protocol_wall_s: f64,
    /// The machine's 1-minute load average when timing began (Unix). Informational only: it
    /// includes clsbench's own threads and lags by a minute (see `other_cpu_cores`).
    #[serde(default)]
    pub load_average_1m: Option<f64>,
    /// Average cores used by other processes while this model was timed (Linux): above
    /// `contention::BUSY_OTHER_CORES`, the timings are pessimistic.
    #[serde(default)]
    pub other_cpu_cores: Option<f64>,
}

/// Run the timing protocol on `texts` (real documents; reused cyclically when fewer than
/// needed). An error from the single-example phase is returned; an error at a batch size is
/// recorded and ends the batch phase (larger batches would not fit either).
pub fn time_classifier(
    model: &dyn TextClassifier,
    texts: &[&str],
    spec: &PerfSpec,
    clock: &dyn Clock,
) -> crate::Result<TimingReport> {
    if texts.is_empty() {
        return Err(crate::Error::bad_input(
            "timing needs at least one text; the primary split is empty",
        ));
    }
    let start = clock.now();
    let load_average_1m = cfg!(unix).then(|| sysinfo::System::load_average().one);
    let cpu_at_start = super::contention::CpuSnapshot::take();
    let (tokens, token_unit) = count_tokens(model, texts);

    for i in 0..spec.warmup {
        discard(model.predict_proba(&[texts[i % texts.len()]])?);
    }
    let mut single_ms = Vec::with_capacity(spec.single_examples);
    for i in 0..spec.single_examples {
        let text = texts[i % texts.len()];
        let t0 = synced_now(model, clock)?;
        discard(model.predict_proba(&[text])?);
        single_ms.push(ms(synced_now(model, clock)? - t0));
    }

    let mut sizes = spec.batch_sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    // The pool: the first `largest batch` texts, cycled when the split is smaller.
    let pool_len = sizes.last().copied().unwrap_or(1);
    let pool: Vec<usize> = (0..pool_len).map(|i| i % texts.len()).collect();
    let budget = spec.time_budget_s.map(Duration::from_secs_f64);
    let mut batches = Vec::new();
    let mut failed_batches = Vec::new();
    let mut skipped = Vec::new();
    for (k, &size) in sizes.iter().enumerate() {
        match time_batch_size(model, texts, &tokens, &pool, size, spec, budget, clock) {
            Ok(b) => batches.push(b),
            Err(e) => {
                failed_batches.push(BatchFailure {
                    batch_size: size,
                    error: e.to_string(),
                });
                skipped.extend_from_slice(&sizes[k + 1..]);
                break;
            }
        }
    }
    Ok(TimingReport {
        n_texts: texts.len(),
        warmup: spec.warmup,
        single: LatencyStats::from_samples(&single_ms),
        batches,
        failed_batches,
        skipped_batch_sizes: skipped,
        token_unit,
        protocol_wall_s: (clock.now() - start).as_secs_f64(),
        load_average_1m,
        other_cpu_cores: cpu_at_start.and_then(|s| s.other_cores_since()),
    })
}

#[allow(clippy::too_many_arguments)]
fn time_batch_size(
    model: &dyn TextClassifier,
    texts: &[&str],
    tokens: &[usize],
    pool: &[usize],
    size: usize,
    spec: &PerfSpec,
    budget: Option<Duration>,
    clock: &dyn Clock,
) -> crate::Result<BatchTiming> {
    let batches: Vec<Vec<&str>> = pool
        .chunks(size)
        .map(|c| c.iter().map(|&i| texts[i]).collect())
        .collect();
    for w in 0..spec.warmup {
        discard(model.predict_proba(&batches[w % batches.len()])?);
    }
    let began = clock.now();
    let mut pass_ms = Vec::with_capacity(spec.repeats);
    for r in 0..spec.repeats {
        if r > 0 && budget.is_some_and(|b| clock.now() - began > b) {
            break;
        }
        let t0 = synced_now(model, clock)?;
        for batch in &batches {
            discard(model.predict_proba(batch)?);
        }
        pass_ms.push(ms(synced_now(model, clock)? - t0));
    }
    let stats = LatencyStats::from_samples(&pass_ms).expect("at least one timed pass");
    let pass_s = stats.median_ms / 1e3;
    let per_s = |n: f64| if pass_s > 0.0 { n / pass_s } else { f64::INFINITY };
    let pool_tokens: usize = pool.iter().map(|&i| tokens[i]).sum();
    Ok(BatchTiming {
        batch_size: size,
        repeats: pass_ms.len(),
        pool_docs: pool.len(),
        median_pass_ms: stats.median_ms,
        p95_pass_ms: stats.p95_ms,
        median_batch_ms: stats.median_ms / batches.len() as f64,
        ms_per_doc: stats.median_ms / pool.len() as f64,
        docs_per_s: per_s(pool.len() as f64),
        tokens_per_s: Some(per_s(pool_tokens as f64)),
    })
}

/// Tokens per text: the model's own count when it has a tokenizer, else whitespace words.
fn count_tokens(model: &dyn TextClassifier, texts: &[&str]) -> (Vec<usize>, String) {
    let own: Option<Vec<usize>> = texts.iter().map(|t| model.count_tokens(t)).collect();
    match own {
        Some(counts) => (counts, "model tokens".to_string()),
        None => (
            texts.iter().map(|t| t.split_whitespace().count()).collect(),
            "whitespace words".to_string(),
        ),
    }
}

/// The clock after the model's device has finished its queued work.
fn synced_now(model: &dyn TextClassifier, clock: &dyn Clock) -> crate::Result<Duration> {
    model.synchronize()?;
    Ok(clock.now())
}

/// Keeps the optimiser from treating a timed call's output as dead code.
fn discard(probs: Vec<Vec<f32>>) {
    std::hint::black_box(probs);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::test_reference::{assert_close_rel, reference};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    /// A classifier that costs `fixed_us + per_doc_us x batch` simulated microseconds per call,
    /// fails on batches larger than `max_batch` (an out-of-memory stand-in), and logs calls.
    struct Simulated {
        now_us: AtomicU64,
        fixed_us: u64,
        per_doc_us: u64,
        max_batch: usize,
        calls: Mutex<Vec<usize>>,
    }

    impl Simulated {
        fn new(fixed_us: u64, per_doc_us: u64, max_batch: usize) -> Simulated {
            Simulated {
                now_us: AtomicU64::new(0),
                fixed_us,
                per_doc_us,
                max_batch,
                calls: Mutex::new(Vec::new()),
            }
        }
    }

    impl TextClassifier for Simulated {
        fn n_classes(&self) -> usize {
            2
        }
        fn predict_proba(&self, texts: &[&str]) -> crate::Result<Vec<Vec<f32>>> {
            self.calls.lock().unwrap().push(texts.len());
            if texts.len() > self.max_batch {
                return Err(crate::Error::Model(format!("out of memory at batch {}", texts.len())));
            }
            self.now_us
                .fetch_add(self.fixed_us + self.per_doc_us * texts.len() as u64, Ordering::SeqCst);
            Ok(vec![vec![0.5, 0.5]; texts.len()])
        }
    }

    impl Clock for Simulated {
        fn now(&self) -> Duration {
            Duration::from_micros(self.now_us.load(Ordering::SeqCst))
        }
    }

    fn spec(batch_sizes: Vec<usize>) -> PerfSpec {
        PerfSpec {
            warmup: 2,
            single_examples: 5,
            batch_sizes,
            repeats: 4,
            ..PerfSpec::default()
        }
    }

    #[test]
    fn latency_stats_match_numpy() {
        for case in reference()["latency"].as_array().unwrap() {
            let samples: Vec<f64> = case["samples_ms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let s = LatencyStats::from_samples(&samples).unwrap();
            let what = format!("n = {}", samples.len());
            assert_close_rel(s.median_ms, &case["median_ms"], 1e-12, &what);
            assert_close_rel(s.p95_ms, &case["p95_ms"], 1e-12, &what);
            assert_close_rel(s.mean_ms, &case["mean_ms"], 1e-12, &what);
        }
        assert!(LatencyStats::from_samples(&[]).is_none());
    }

    #[test]
    fn simulated_costs_come_out_exactly() {
        // 1 ms per call + 0.25 ms per document. Pool = 8 documents (the largest batch):
        // batch 8 = one 3 ms call -> 8 / 3 ms; batch 1 = eight 1.25 ms calls -> 8 / 10 ms.
        let m = Simulated::new(1000, 250, usize::MAX);
        let r = time_classifier(&m, &["a b", "c", "d e f"], &spec(vec![8, 1]), &m).unwrap();
        let single = r.single.unwrap();
        assert_eq!((single.n, single.median_ms, single.p95_ms), (5, 1.25, 1.25));
        assert_eq!(
            r.batches.iter().map(|b| b.batch_size).collect::<Vec<_>>(),
            vec![1, 8],
            "sizes run in order"
        );
        let (b1, b8) = (&r.batches[0], &r.batches[1]);
        assert_eq!(
            (b8.repeats, b8.pool_docs, b8.median_pass_ms, b8.median_batch_ms),
            (4, 8, 3.0, 3.0)
        );
        assert_eq!(
            (b1.median_pass_ms, b1.median_batch_ms, b1.ms_per_doc),
            (10.0, 1.25, 1.25)
        );
        assert!((b8.docs_per_s - 8.0 / 0.003).abs() < 1e-9 && (b1.docs_per_s - 800.0).abs() < 1e-9);
        // The pool cycles the three texts: words 2 1 3 2 1 3 2 1 = 15 per pass.
        assert!((b8.tokens_per_s.unwrap() - 15.0 / 0.003).abs() < 1e-6);
        assert_eq!(r.token_unit, "whitespace words");
    }

    #[test]
    fn every_batch_size_times_the_same_documents() {
        let m = Simulated::new(1000, 0, usize::MAX);
        let s = PerfSpec {
            warmup: 0,
            single_examples: 0,
            ..spec(vec![2, 4])
        };
        time_classifier(&m, &["x"; 10], &s, &m).unwrap();
        let calls = m.calls.lock().unwrap().clone();
        // 4 passes of two 2-document batches, then 4 passes of one 4-document batch.
        assert_eq!(calls, [vec![2; 8], vec![4; 4]].concat());
    }

    #[test]
    fn warmup_calls_are_made_but_not_timed() {
        let m = Simulated::new(1000, 0, usize::MAX);
        let r = time_classifier(&m, &["x"], &spec(vec![4]), &m).unwrap();
        let calls = m.calls.lock().unwrap().clone();
        // 2 warm-up singles, 5 timed singles, 2 warm-up batches, 4 timed passes of one batch.
        assert_eq!(calls, [vec![1; 7], vec![4; 6]].concat());
        assert_eq!(r.single.unwrap().n, 5);
        assert_eq!(r.batches[0].repeats, 4);
    }

    #[test]
    fn a_batch_that_does_not_fit_is_recorded_and_larger_ones_skipped() {
        let m = Simulated::new(1000, 100, 32);
        let r = time_classifier(&m, &["x"; 10], &spec(vec![1, 8, 32, 64, 128]), &m).unwrap();
        assert_eq!(
            r.batches.iter().map(|b| b.batch_size).collect::<Vec<_>>(),
            vec![1, 8, 32]
        );
        assert_eq!(r.failed_batches.len(), 1);
        assert_eq!(r.failed_batches[0].batch_size, 64);
        assert!(r.failed_batches[0].error.contains("out of memory"));
        assert_eq!(r.skipped_batch_sizes, vec![128]);
        assert!(
            r.batches.iter().all(|b| b.pool_docs == 128),
            "the pool is sized by the largest requested batch"
        );
    }

    #[test]
    fn time_budget_stops_repeats_early_but_keeps_one() {
        let m = Simulated::new(1_000_000, 0, usize::MAX); // 1 s per call, one call per pass
        let s = PerfSpec {
            time_budget_s: Some(1.5),
            repeats: 10,
            ..spec(vec![2])
        };
        let r = time_classifier(&m, &["x"], &s, &m).unwrap();
        assert_eq!(r.batches[0].repeats, 2, "stops once more than 1.5 s were spent");
        let s = PerfSpec {
            time_budget_s: Some(0.0),
            repeats: 10,
            ..spec(vec![2])
        };
        assert_eq!(time_classifier(&m, &["x"], &s, &m).unwrap().batches[0].repeats, 1);
    }

    /// A GPU-like model: a call only queues its work (`pending`), which runs when the caller
    /// synchronises, as candle's CUDA kernels run until `Device::synchronize`.
    struct Queued {
        now_us: AtomicU64,
        pending_us: AtomicU64,
        per_call_us: u64,
    }

    impl TextClassifier for Queued {
        fn n_classes(&self) -> usize {
            2
        }
        fn predict_proba(&self, texts: &[&str]) -> crate::Result<Vec<Vec<f32>>> {
            self.pending_us.fetch_add(self.per_call_us, Ordering::SeqCst);
            Ok(vec![vec![0.5, 0.5]; texts.len()])
        }
        fn synchronize(&self) -> crate::Result<()> {
            let done = self.pending_us.swap(0, Ordering::SeqCst);
            self.now_us.fetch_add(done, Ordering::SeqCst);
            Ok(())
        }
    }

    impl Clock for Queued {
        fn now(&self) -> Duration {
            Duration::from_micros(self.now_us.load(Ordering::SeqCst))
        }
    }

    #[test]
    fn clocks_are_read_after_the_device_finished_its_queued_work() {
        // Without a synchronise before each clock read, a queued call would time as 0 ms and
        // the warm-up's queued work would land in the first timed call.
        let m = Queued {
            now_us: AtomicU64::new(0),
            pending_us: AtomicU64::new(0),
            per_call_us: 2000,
        };
        let r = time_classifier(&m, &["a", "b"], &spec(vec![2]), &m).unwrap();
        let single = r.single.unwrap();
        assert_eq!((single.min_ms, single.max_ms), (2.0, 2.0));
        assert_eq!((r.batches[0].median_pass_ms, r.batches[0].p95_pass_ms), (2.0, 2.0));
    }

    #[test]
    fn no_texts_is_bad_input() {
        let m = Simulated::new(1, 1, 1);
        assert!(time_classifier(&m, &[], &spec(vec![1]), &m).is_err());
    }
}
