//! Analysis of one evaluated split: metrics and tier metrics per model, the paired bootstrap
//! over all models, McNemar for every pair. Shared by `run` (from predictions files) and
//! `score` (from any CSV of predictions).

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::{bootstrap, mcnemar, metrics, power, tier_bootstrap, tiers};
use crate::report::predictions;
use crate::report::results::{ModelResult, ModelStatus};
use crate::suite::{EvaluationSpec, SplitName, Suite};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

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
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        models.push(ModelAnalysis {
            model: id.clone(),
            metrics: metrics::compute(&gold, pred, n_classes)?,
            tiers,
            pred: pred.clone(),
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

/// Analyse every evaluated split of a run from the models' predictions files.
pub fn analyse_run(
    suite: &Suite,
    dataset: &Dataset,
    models: &[ModelResult],
    run_dir: &Path,
) -> Result<Vec<SplitAnalysis>> {
    let label_id: HashMap<&str, usize> = dataset
        .labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    let train_labels: Vec<usize> = dataset.train.iter().map(|e| e.label).collect();
    let mut loaded = Vec::new();
    for m in models.iter().filter(|m| m.status == ModelStatus::Ok) {
        let path = run_dir
            .join("models")
            .join(&m.id)
            .join(m.predictions.as_deref().unwrap_or("predictions.csv"));
        loaded.push((m.id.clone(), path.clone(), predictions::read(&path)?));
    }
    let mut out = Vec::new();
    for &split in &suite.evaluation.splits {
        let examples = match split {
            SplitName::Val => &dataset.val,
            SplitName::Test => &dataset.test,
            SplitName::Train => &dataset.train,
        };
        if examples.is_empty() {
            continue;
        }
        let mut preds = Vec::new();
        for (id, path, rows) in &loaded {
            let by_id: HashMap<&str, &predictions::PredictionRow> = rows
                .iter()
                .filter(|r| r.split == split.as_str())
                .map(|r| (r.id.as_str(), r))
                .collect();
            let mut pred = Vec::with_capacity(examples.len());
            for e in examples {
                let row = by_id.get(e.id.as_str()).ok_or_else(|| {
                    Error::bad_input(format!(
                        "{}: no {} prediction for id {:?}; re-run with --force",
                        path.display(),
                        split.as_str(),
                        e.id
                    ))
                })?;
                if row.gold != dataset.labels[e.label] {
                    return Err(Error::bad_input(format!(
                        "{}: id {:?} has gold {:?} but the dataset says {:?}; the data changed: re-run with --force",
                        path.display(),
                        e.id,
                        row.gold,
                        dataset.labels[e.label]
                    )));
                }
                let p = label_id.get(row.pred.as_str()).copied().ok_or_else(|| {
                    Error::bad_input(format!(
                        "{}: id {:?}: predicted label {:?} is not a class",
                        path.display(),
                        e.id,
                        row.pred
                    ))
                })?;
                pred.push(p);
            }
            preds.push((id.clone(), pred));
        }
        let input = SplitInput {
            split: split.as_str(),
            doc_ids: examples.iter().map(|e| e.id.clone()).collect(),
            gold: examples.iter().map(|e| e.label).collect(),
            preds,
            n_classes: dataset.labels.len(),
            train_labels: Some(&train_labels),
        };
        out.push(analyse(
            input,
            &suite.evaluation,
            suite.evaluation.bootstrap_seed(suite.seed),
        )?);
    }
    Ok(out)
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
