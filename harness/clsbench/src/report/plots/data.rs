//! The plain numbers the plots draw, taken out of a run's results once so that each plot is a
//! function of simple data (and testable without a run).

use crate::report::results::Results;

/// One model on the primary split.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPoint {
    pub id: String,
    /// `tfidf-logreg`, `encoder` or `decoder`.
    pub kind: String,
    pub macro_f1: f64,
    pub macro_f1_ci: Option<(f64, f64)>,
    pub accuracy: f64,
    pub accuracy_ci: Option<(f64, f64)>,
    /// F1 per class id; `None` where the class has no documents in the split.
    pub per_class_f1: Vec<Option<f64>>,
    pub usd_per_million_docs: Option<f64>,
    /// GPU-hours (or CPU instance-hours) per million documents.
    pub hours_per_million_docs: Option<f64>,
    /// The batch size whose throughput was priced.
    pub priced_batch: Option<usize>,
    /// With several training seeds: macro F1 and accuracy per seed and the seed-aware interval.
    pub seeds: Option<SeedBand>,
}

/// A model's spread over training seeds, drawn as a band beside the bootstrap whisker.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedBand {
    pub macro_f1: Vec<f64>,
    pub macro_f1_ci: (f64, f64),
    pub accuracy: Vec<f64>,
    pub accuracy_ci: (f64, f64),
}

/// The paired bootstrap distribution of macro F1 (b - a).
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaSamples {
    pub a: String,
    pub b: String,
    pub point: f64,
    pub ci: (f64, f64),
    pub samples: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlotData {
    pub suite: String,
    /// The split the plots show (the suite's primary split).
    pub split: String,
    pub n_docs: usize,
    pub confidence: f64,
    pub labels: Vec<String>,
    pub train_counts: Vec<usize>,
    /// Classes in the rare quartile (train count <= the count at sorted position n/4).
    pub rare: Vec<bool>,
    pub rare_threshold: usize,
    pub models: Vec<ModelPoint>,
    /// Indices into `models` of the per-class scatter's x and y (encoder, decoder when both exist).
    pub scatter_pair: Option<(usize, usize)>,
    pub delta: Option<DeltaSamples>,
    /// Hardware the costs are for, and the price applied (slug, $/h, source), for captions.
    pub hardware_slug: String,
    pub price_note: Option<String>,
}

/// The rare-quartile rule of the seed (protocol §6, `clsbench_stats::tiers`): rare = train count <= the
/// count at position n/4 of the ascending counts.
pub fn rare_quartile(train_counts: &[usize]) -> (Vec<bool>, usize) {
    match clsbench_stats::tiers::rare_quartile_threshold(train_counts) {
        None => (Vec::new(), 0),
        Some(threshold) => (train_counts.iter().map(|&c| c <= threshold).collect(), threshold),
    }
}

impl PlotData {
    /// The plots' numbers from a run's results, on the suite's primary split (else the first
    /// analysed split). `None` when no split was analysed.
    pub fn from_results(r: &Results) -> Option<PlotData> {
        let primary = r.evaluation.primary_split.as_str();
        let a = r.split(primary).or_else(|| r.splits.first())?;
        let interval = |i: &clsbench_stats::intervals::Interval| (i.lower, i.upper);
        let models: Vec<ModelPoint> = a
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let boot = a
                    .bootstrap
                    .as_ref()
                    .and_then(|b| b.models.iter().find(|x| x.model == i));
                let result = r.model(&m.model);
                let perf = result.and_then(|x| x.perf.as_ref());
                let cost = perf.map(|p| &p.cost);
                ModelPoint {
                    id: m.model.clone(),
                    kind: result.map(|x| x.kind.clone()).unwrap_or_default(),
                    macro_f1: m.metrics.macro_f1,
                    macro_f1_ci: boot.map(|b| interval(&b.macro_f1.percentile)),
                    accuracy: m.metrics.accuracy,
                    accuracy_ci: boot.map(|b| interval(&b.accuracy.percentile)),
                    per_class_f1: m
                        .metrics
                        .per_class
                        .iter()
                        .map(|c| (c.support > 0).then_some(c.f1))
                        .collect(),
                    usd_per_million_docs: cost.and_then(|c| c.usd_per_million_docs),
                    hours_per_million_docs: cost.and_then(|c| c.device_hours_per_million_docs),
                    priced_batch: cost.and_then(|c| c.batch_size),
                    seeds: a
                        .seeds
                        .as_ref()
                        .and_then(|s| s.models.iter().find(|x| x.model == m.model))
                        .filter(|x| x.seeds.len() > 1)
                        .map(|x| SeedBand {
                            macro_f1: x.macro_f1.clone(),
                            macro_f1_ci: interval(&x.macro_f1_mean.percentile),
                            accuracy: x.accuracy.clone(),
                            accuracy_ci: interval(&x.accuracy_mean.percentile),
                        }),
                }
            })
            .collect();
        let scatter_pair = pick_pair(&models);
        let delta = scatter_pair.and_then(|(x, y)| {
            let boot = a.bootstrap.as_ref()?;
            let p = boot.pairs.iter().find(|p| p.a == x && p.b == y)?;
            Some(DeltaSamples {
                a: models[x].id.clone(),
                b: models[y].id.clone(),
                point: p.macro_f1.delta.point,
                ci: interval(&p.macro_f1.delta.percentile),
                samples: p.macro_f1_samples.clone(),
            })
        });
        let (rare, rare_threshold) = rare_quartile(&r.dataset.train_counts);
        let price_note = r
            .models
            .iter()
            .filter_map(|m| m.perf.as_ref()?.cost.price.clone())
            .next()
            .map(|p| format!("${}/h, {} ({})", p.entry.usd_per_hour, p.entry.source, p.entry.date));
        let hardware_slug = r
            .models
            .iter()
            .find_map(|m| m.perf.as_ref().map(|p| p.cost.hardware_slug.clone()))
            .unwrap_or_else(|| r.hardware.slug.clone());
        Some(PlotData {
            suite: r.suite.name.clone(),
            split: a.split.clone(),
            n_docs: a.n,
            confidence: r.evaluation.confidence,
            labels: r.dataset.labels.clone(),
            train_counts: r.dataset.train_counts.clone(),
            rare,
            rare_threshold,
            models,
            scatter_pair,
            delta,
            hardware_slug,
            price_note,
        })
    }
}

/// The scatter's pair: the first encoder (x) and first decoder (y) when both exist, else the
/// first two models.
pub fn pick_pair(models: &[ModelPoint]) -> Option<(usize, usize)> {
    let first = |kind: &str| models.iter().position(|m| m.kind == kind);
    match (first("encoder"), first("decoder")) {
        (Some(e), Some(d)) => Some((e, d)),
        _ => (models.len() >= 2).then_some((0, 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rare_quartile_follows_the_sorted_position_rule() {
        // Ascending: 1 2 3 5 8 13 21 40; n/4 = 2 -> threshold 3; ties at 3 are rare too.
        let (rare, t) = rare_quartile(&[40, 3, 1, 21, 3, 8, 2, 13]);
        assert_eq!(t, 3);
        assert_eq!(rare, vec![false, true, true, false, true, false, true, false]);
    }

    #[test]
    fn pair_prefers_encoder_vs_decoder() {
        let m = |id: &str, kind: &str| ModelPoint {
            id: id.into(),
            kind: kind.into(),
            macro_f1: 0.0,
            macro_f1_ci: None,
            accuracy: 0.0,
            accuracy_ci: None,
            per_class_f1: vec![],
            usd_per_million_docs: None,
            hours_per_million_docs: None,
            priced_batch: None,
            seeds: None,
        };
        assert_eq!(
            pick_pair(&[m("t", "tfidf-logreg"), m("d", "decoder"), m("e", "encoder")]),
            Some((2, 1))
        );
        assert_eq!(pick_pair(&[m("t", "tfidf-logreg"), m("d", "decoder")]), Some((0, 1)));
        assert_eq!(pick_pair(&[m("t", "tfidf-logreg")]), None);
    }
}
