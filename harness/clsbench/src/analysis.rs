//! Analysis of one evaluated split: metrics and tier metrics per model, the paired bootstrap
//! over all models, McNemar for every pair. Pure: class ids in, statistics out (no files, no
//! run directories). Shared by `run` (`crate::scoring` reads the predictions files) and
//! `score` (from any CSV of predictions).

use crate::error::Result;
use crate::suite::EvaluationSpec;
use clsbench_stats::{aso, bootstrap, mcnemar, metrics, power, tier_bootstrap, tiers, two_level};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitAnalysis {
    pub split: String,
    pub n: usize,
    /// Ids of the documents, in the order every per-document vector below uses.
    #[serde(default)]
    pub doc_ids: Vec<String>,
    /// Gold class ids (positions in the dataset's labels).
    #[serde(default)]
    pub gold: Vec<usize>,
    pub models: Vec<ModelAnalysis>,
    pub bootstrap: Option<bootstrap::BootstrapReport>,
    pub mcnemar: Vec<PairTest>,
    /// Several training seeds: per-seed scores, seed-aware intervals and ASO. Absent when every
    /// model has one seed (then `models` and `bootstrap` are the whole story).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<SeedAnalysis>,
}

/// The statistics of a split over every model's training seeds. `SplitAnalysis::models`,
/// `bootstrap` and `mcnemar` stay those of each model's first seed (what a one-seed study
/// reports); this adds what the seeds say.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedAnalysis {
    pub method: SeedMethod,
    pub resamples: usize,
    pub confidence: f64,
    /// Models in the split's model order, each with its finished seeds.
    pub models: Vec<SeedModel>,
    /// Every pair (a before b in model order): b − a.
    pub pairs: Vec<SeedPair>,
    /// Why some pairs have no ASO (a model with fewer than two seeds), if any.
    #[serde(default)]
    pub aso_note: Option<String>,
}

/// How the seed-aware intervals were made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeedMethod {
    /// Seeds and documents resampled together, documents shared by every model (paired):
    /// the split is fixed, seeds control training only.
    TwoLevel,
    /// Seeds resampled per model, each seed scored on its own split (unpaired): seeds also
    /// re-drew the split.
    SeedBootstrapUnpaired,
}

impl SeedMethod {
    pub fn label(self) -> &'static str {
        match self {
            SeedMethod::TwoLevel => "two-level bootstrap (seeds x documents, paired)",
            SeedMethod::SeedBootstrapUnpaired => "seed bootstrap (unpaired: each seed re-drew the split)",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedModel {
    pub model: String,
    pub seeds: Vec<u64>,
    /// Per seed, in `seeds` order, on all of the split's documents (its own split when seeds
    /// re-drew it).
    pub accuracy: Vec<f64>,
    pub macro_f1: Vec<f64>,
    /// Sample standard deviations across seeds (ddof = 1); `None` with one seed.
    pub accuracy_sd: Option<f64>,
    pub macro_f1_sd: Option<f64>,
    /// Mean over seeds with its seed-aware percentile interval.
    pub accuracy_mean: two_level::SeedAwareEstimate,
    pub macro_f1_mean: two_level::SeedAwareEstimate,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedPair {
    pub a: String,
    pub b: String,
    /// Seed-mean difference b − a with its seed-aware interval.
    pub accuracy: two_level::SeedAwareDelta,
    pub macro_f1: two_level::SeedAwareDelta,
    /// Almost Stochastic Order over the per-seed scores, when both models have >= 2 seeds.
    #[serde(default)]
    pub aso_accuracy: Option<AsoPair>,
    #[serde(default)]
    pub aso_macro_f1: Option<AsoPair>,
}

/// ASO in both directions (ε_min is not symmetric).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AsoPair {
    /// ε_min of "b almost stochastically dominates a" (< 0.2: it does).
    pub b_over_a: aso::Aso,
    pub a_over_b: aso::Aso,
}

/// One model's runs for the seed statistics: (seed, predicted class per document).
pub struct SeedRuns {
    pub model: String,
    pub runs: Vec<(u64, Vec<usize>)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelAnalysis {
    pub model: String,
    pub metrics: metrics::Metrics,
    #[serde(default)]
    pub tiers: Vec<tiers::TierReport>,
    /// Predicted class ids, aligned with `SplitAnalysis::doc_ids`.
    #[serde(default)]
    pub pred: Vec<usize>,
    /// ECE, MCE, NLL, Brier, temperature scaling (`crate::calibration_run`); `None` without
    /// the model's probabilities.
    #[serde(default)]
    pub calibration: Option<clsbench_stats::calibration::CalibrationReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairTest {
    pub a: String,
    pub b: String,
    pub test: mcnemar::McNemar,
    /// Smallest accuracy difference (b - a) a paired test detects with 80% power at two-sided
    /// alpha 0.05 on this split (Miller 2024); absent in results written before it existed.
    #[serde(default)]
    pub mde: Option<power::MinimumDetectableEffect>,
    /// Protocol 7B and 7C per-tier paired bootstraps of b - a, one entry per tier scheme
    /// (empty without training labels).
    #[serde(default)]
    pub tier_deltas: Vec<PairTierDeltas>,
}

/// Per-tier paired bootstraps of one pair under one tier scheme.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairTierDeltas {
    pub scheme: crate::suite::TierScheme,
    /// 7B: Δaccuracy, `default_rng(42)` replayed.
    pub delta_accuracy: Vec<tier_bootstrap::TierDeltaAccuracy>,
    /// 7C: Δmacro F1 over each tier's fixed label set, `RandomState(42)` replayed.
    pub delta_macro_f1: Vec<tier_bootstrap::TierDeltaMacroF1>,
}

/// Inputs of `analyse` for one split.
pub struct SplitInput<'a> {
    pub split: &'a str,
    pub doc_ids: Vec<String>,
    pub gold: Vec<usize>,
    /// (model id, predicted class per document).
    pub preds: Vec<(String, Vec<usize>)>,
    pub n_classes: usize,
    /// Class of every training document, in training order (tiers need the counts and the
    /// first-seen order; `score` has none).
    pub train_labels: Option<&'a [usize]>,
}

pub fn analyse(input: SplitInput, eval: &EvaluationSpec, bootstrap_seed: u64) -> Result<SplitAnalysis> {
    let SplitInput {
        split,
        doc_ids,
        gold,
        preds,
        n_classes,
        train_labels,
    } = input;
    let tier_inputs = match train_labels {
        Some(labels) => {
            let mut counts = vec![0usize; n_classes];
            labels.iter().for_each(|&l| counts[l] += 1);
            Some((counts, tiers::first_seen_order(labels, n_classes)?))
        }
        None => None,
    };
    let mut models = Vec::with_capacity(preds.len());
    for (id, pred) in &preds {
        let tiers = match &tier_inputs {
            Some((counts, first_seen)) => eval
                .tiers
                .iter()
                .map(|&scheme| tiers::tier_report(&gold, pred, counts, first_seen, scheme))
                .collect::<clsbench_stats::Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        models.push(ModelAnalysis {
            model: id.clone(),
            metrics: metrics::compute(&gold, pred, n_classes)?,
            tiers,
            pred: pred.clone(),
            calibration: None,
        });
    }
    let bootstrap = if preds.is_empty() || gold.is_empty() {
        None
    } else {
        let cfg = bootstrap::BootstrapConfig {
            resamples: eval.resamples,
            confidence: eval.confidence,
            seed: bootstrap_seed,
            rng: eval.rng,
        };
        let slices: Vec<&[usize]> = preds.iter().map(|(_, p)| p.as_slice()).collect();
        Some(bootstrap::paired_bootstrap(&gold, &slices, n_classes, &cfg)?)
    };
    let mut pairs = Vec::new();
    for i in 0..preds.len() {
        for j in i + 1..preds.len() {
            let (pa, pb) = (&preds[i].1, &preds[j].1);
            let mde = if gold.len() >= 2 {
                Some(power::minimum_detectable_effect(
                    &gold,
                    pa,
                    pb,
                    power::DEFAULT_ALPHA,
                    power::DEFAULT_POWER,
                )?)
            } else {
                None
            };
            let tier_deltas = match &tier_inputs {
                Some((counts, first_seen)) => eval
                    .tiers
                    .iter()
                    .map(|&scheme| pair_tier_deltas(&gold, pa, pb, counts, first_seen, scheme, eval))
                    .collect::<Result<Vec<_>>>()?,
                None => Vec::new(),
            };
            pairs.push(PairTest {
                a: preds[i].0.clone(),
                b: preds[j].0.clone(),
                test: mcnemar::mcnemar(&gold, pa, pb)?,
                mde,
                tier_deltas,
            });
        }
    }
    Ok(SplitAnalysis {
        split: split.to_string(),
        n: gold.len(),
        doc_ids,
        gold,
        models,
        bootstrap,
        mcnemar: pairs,
        seeds: None,
    })
}

/// Seed statistics of models scored on the same documents (`gold`), seeds controlling training
/// only: the two-level bootstrap and ASO. `None` when no model has two seeds.
pub fn seed_analysis_paired(
    gold: &[usize],
    models: &[SeedRuns],
    n_classes: usize,
    eval: &EvaluationSpec,
    bootstrap_seed: u64,
) -> Result<Option<SeedAnalysis>> {
    if models.iter().all(|m| m.runs.len() < 2) || gold.is_empty() {
        return Ok(None);
    }
    let cfg = eval.bootstrap_config(bootstrap_seed);
    let preds: Vec<Vec<&[usize]>> = models
        .iter()
        .map(|m| m.runs.iter().map(|(_, p)| p.as_slice()).collect())
        .collect();
    let report = two_level::two_level_bootstrap(gold, &preds, n_classes, &cfg)?;
    seed_analysis_from(SeedMethod::TwoLevel, models, report, eval, bootstrap_seed).map(Some)
}

/// (seed, accuracy, macro F1) of one seed's run on that seed's own split.
pub type SeedScore = (u64, f64, f64);

/// Seed statistics when each seed re-drew the split: per model, its id and the scores of its
/// seeds.
pub fn seed_analysis_unpaired(
    models: &[(String, Vec<SeedScore>)],
    n_classes: usize,
    eval: &EvaluationSpec,
    bootstrap_seed: u64,
) -> Result<Option<SeedAnalysis>> {
    if models.iter().all(|(_, runs)| runs.len() < 2) {
        return Ok(None);
    }
    let cfg = eval.bootstrap_config(bootstrap_seed);
    let scores: Vec<Vec<(f64, f64)>> = models
        .iter()
        .map(|(_, runs)| runs.iter().map(|&(_, a, f)| (a, f)).collect())
        .collect();
    let report = two_level::seed_bootstrap(&scores, n_classes, &cfg)?;
    let runs: Vec<SeedRuns> = models
        .iter()
        .map(|(id, runs)| SeedRuns {
            model: id.clone(),
            runs: runs.iter().map(|&(s, _, _)| (s, Vec::new())).collect(),
        })
        .collect();
    seed_analysis_from(SeedMethod::SeedBootstrapUnpaired, &runs, report, eval, bootstrap_seed).map(Some)
}

fn seed_analysis_from(
    method: SeedMethod,
    models: &[SeedRuns],
    report: two_level::TwoLevelReport,
    eval: &EvaluationSpec,
    bootstrap_seed: u64,
) -> Result<SeedAnalysis> {
    let seed_models: Vec<SeedModel> = report
        .models
        .iter()
        .zip(models)
        .map(|(r, m)| SeedModel {
            model: m.model.clone(),
            seeds: m.runs.iter().map(|(s, _)| *s).collect(),
            accuracy: r.per_seed_accuracy.clone(),
            macro_f1: r.per_seed_macro_f1.clone(),
            accuracy_sd: r.accuracy_seed_sd,
            macro_f1_sd: r.macro_f1_seed_sd,
            accuracy_mean: r.accuracy.clone(),
            macro_f1_mean: r.macro_f1.clone(),
        })
        .collect();
    // ASO over the models with at least two seeds, Bonferroni-corrected over their pairs
    // (deepsig's multi_aso), on each of the two metrics.
    let with_seeds: Vec<usize> = (0..models.len()).filter(|&j| models[j].runs.len() >= 2).collect();
    let aso_cfg = aso::AsoConfig {
        seed: bootstrap_seed,
        rng: eval.rng,
        ..aso::AsoConfig::default()
    };
    let aso_of = |per_seed: &dyn Fn(&SeedModel) -> &[f64]| -> Result<Vec<aso::Aso>> {
        if with_seeds.len() < 2 {
            return Ok(Vec::new());
        }
        let scores: Vec<&[f64]> = with_seeds.iter().map(|&j| per_seed(&seed_models[j])).collect();
        Ok(aso::aso_pairs(&scores, &aso_cfg)?)
    };
    let aso_acc = aso_of(&|m| &m.accuracy)?;
    let aso_f1 = aso_of(&|m| &m.macro_f1)?;
    let find = |all: &[aso::Aso], a: usize, b: usize| -> Option<AsoPair> {
        let (pa, pb) = (
            with_seeds.iter().position(|&j| j == a)?,
            with_seeds.iter().position(|&j| j == b)?,
        );
        let dir = |x: usize, y: usize| all.iter().find(|r| r.a == x && r.b == y).cloned();
        Some(AsoPair {
            b_over_a: dir(pb, pa)?,
            a_over_b: dir(pa, pb)?,
        })
    };
    let mut pairs = Vec::new();
    for a in 0..models.len() {
        for b in a + 1..models.len() {
            let two = report
                .pairs
                .iter()
                .find(|p| p.a == a && p.b == b)
                .expect("two-level reports every ordered pair");
            pairs.push(SeedPair {
                a: models[a].model.clone(),
                b: models[b].model.clone(),
                accuracy: two.accuracy.clone(),
                macro_f1: two.macro_f1.clone(),
                aso_accuracy: find(&aso_acc, a, b),
                aso_macro_f1: find(&aso_f1, a, b),
            });
        }
    }
    let single: Vec<&str> = models
        .iter()
        .filter(|m| m.runs.len() < 2)
        .map(|m| m.model.as_str())
        .collect();
    let aso_note = (!single.is_empty()).then(|| {
        format!(
            "no ASO for {}: ASO compares score distributions over seeds and needs at least two seeds per model",
            single.join(", ")
        )
    });
    Ok(SeedAnalysis {
        method,
        resamples: report.resamples,
        confidence: report.confidence,
        models: seed_models,
        pairs,
        aso_note,
    })
}

/// The seed's per-tier bootstraps (protocol 7B, 7C) with its stream seed 42 and the suite's
/// resample count and confidence.
fn pair_tier_deltas(
    gold: &[usize],
    pred_a: &[usize],
    pred_b: &[usize],
    train_counts: &[usize],
    first_seen: &[usize],
    scheme: crate::suite::TierScheme,
    eval: &EvaluationSpec,
) -> Result<PairTierDeltas> {
    let assignment = tiers::assign(train_counts, first_seen, scheme)?;
    let cfg = tier_bootstrap::TierBootstrapConfig {
        resamples: eval.resamples,
        confidence: eval.confidence,
        ..tier_bootstrap::TierBootstrapConfig::default()
    };
    Ok(PairTierDeltas {
        scheme,
        delta_accuracy: tier_bootstrap::tier_delta_accuracy_bootstrap(gold, pred_a, pred_b, &assignment, scheme, &cfg)?,
        delta_macro_f1: tier_bootstrap::tier_delta_macro_f1_bootstrap(gold, pred_a, pred_b, &assignment, scheme, &cfg)?,
    })
}

impl SplitAnalysis {
    pub fn model(&self, id: &str) -> Option<(usize, &ModelAnalysis)> {
        self.models.iter().enumerate().find(|(_, m)| m.model == id)
    }

    /// The paired bootstrap of `b - a` for two model ids.
    pub fn pair(&self, a: &str, b: &str) -> Option<&bootstrap::PairedDelta> {
        let (ia, ib) = (self.model(a)?.0, self.model(b)?.0);
        self.bootstrap.as_ref()?.pairs.iter().find(|p| p.a == ia && p.b == ib)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_carry_the_mde_and_per_tier_bootstraps() {
        let gold: Vec<usize> = (0..60).map(|i| i % 3).collect();
        let a: Vec<usize> = gold
            .iter()
            .enumerate()
            .map(|(i, &g)| if i % 4 == 0 { (g + 1) % 3 } else { g })
            .collect();
        let b: Vec<usize> = gold
            .iter()
            .enumerate()
            .map(|(i, &g)| if i % 5 == 0 { (g + 1) % 3 } else { g })
            .collect();
        let train: Vec<usize> = (0..90).map(|i| [0, 0, 0, 1, 1, 2][i % 6]).collect();
        let eval = EvaluationSpec {
            resamples: 50,
            ..EvaluationSpec::default()
        };
        let input = SplitInput {
            split: "val",
            doc_ids: (0..60).map(|i| i.to_string()).collect(),
            gold: gold.clone(),
            preds: vec![("a".into(), a.clone()), ("b".into(), b.clone())],
            n_classes: 3,
            train_labels: Some(&train),
        };
        let analysis = analyse(input, &eval, 49).unwrap();
        let pair = &analysis.mcnemar[0];
        let mde = pair.mde.as_ref().unwrap();
        let want = power::minimum_detectable_effect(&gold, &a, &b, 0.05, 0.8).unwrap();
        assert_eq!(mde, &want);
        assert_eq!(pair.tier_deltas.len(), eval.tiers.len());
        let rank = &pair.tier_deltas[0];
        let assignment = tiers::assign(&[45, 30, 15], &[0, 1, 2], rank.scheme).unwrap();
        let cfg = tier_bootstrap::TierBootstrapConfig {
            resamples: 50,
            ..Default::default()
        };
        assert_eq!(
            rank.delta_accuracy,
            tier_bootstrap::tier_delta_accuracy_bootstrap(&gold, &a, &b, &assignment, rank.scheme, &cfg).unwrap()
        );
        // Old results.json files (without the new fields) still read.
        let mut json = serde_json::to_value(pair).unwrap();
        json.as_object_mut()
            .unwrap()
            .retain(|k, _| k != "mde" && k != "tier_deltas");
        let old: PairTest = serde_json::from_value(json).unwrap();
        assert!(old.mde.is_none() && old.tier_deltas.is_empty());
    }
}
