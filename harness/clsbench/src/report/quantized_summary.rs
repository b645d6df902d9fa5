//! The quantised-variants part of `summary.md`: each `<id>@<format>` row against the trained
//! model it was made from, on the primary split — what quantisation costs in quality (paired
//! bootstrap deltas, agreement) and buys in speed, memory and price.

use super::model_numbers;
use super::results::{ModelResult, Results};
use crate::analysis::SplitAnalysis;
use std::fmt::Write;

fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}")).unwrap_or_else(|| "-".into())
}

/// Share of documents on which two prediction vectors agree.
fn agreement(a: &[usize], b: &[usize]) -> Option<f64> {
    (!a.is_empty() && a.len() == b.len())
        .then(|| a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64)
}

fn peak_rss_mib(m: &ModelResult) -> Option<f64> {
    let p = m.perf.as_ref()?;
    p.memory.peak_rss_bytes.map(|b| b as f64 / (1024.0 * 1024.0))
}

/// Ratio `variant / base` of a number both have, as "x0.52".
fn ratio(base: Option<f64>, variant: Option<f64>) -> String {
    match (base, variant) {
        (Some(b), Some(v)) if b > 0.0 => format!(" (x{:.2})", v / b),
        _ => String::new(),
    }
}

pub fn render(s: &mut String, r: &Results) {
    let variants: Vec<&ModelResult> = r.models.iter().filter(|m| m.variant_of.is_some()).collect();
    if variants.is_empty() {
        return;
    }
    let primary = r.evaluation.primary_split.as_str();
    let Some(split) = r.split(primary).or_else(|| r.splits.first()) else {
        return;
    };
    let conf = r.evaluation.confidence * 100.0;
    let _ = writeln!(
        s,
        "\n## Quantised variants ({} split)\n\nEach row is the trained model beside it with its backbone linear layers \
         quantised (GGML blocks, candle's quantized matmul; the head stays full precision). Δ = variant − model, \
         paired bootstrap {conf:.0}% percentile CIs; per-tier deltas are in the split's per-tier table. Ratios in \
         parentheses are variant / model; peak RSS is the process's during timing.\n\n\
         | variant | of | Δ accuracy | CI | Δ macro F1 | CI | same prediction | single p50 ms | docs/s | peak RSS MiB | $ / 1M docs |\n\
         |---|---|---:|---|---:|---|---:|---:|---:|---:|---:|",
        split.split
    );
    for v in variants {
        let base_id = v.variant_of.as_deref().unwrap_or_default();
        let base = r.model(base_id);
        let row = quality_row(split, base_id, &v.id);
        let (lat_b, lat_v) = (base.and_then(model_numbers::latency_ms), model_numbers::latency_ms(v));
        let (tp_b, tp_v) = (
            base.and_then(model_numbers::throughput_docs_per_s),
            model_numbers::throughput_docs_per_s(v),
        );
        let (mem_b, mem_v) = (base.and_then(peak_rss_mib), peak_rss_mib(v));
        let (usd_b, usd_v) = (
            base.and_then(model_numbers::cost_per_1m_usd),
            model_numbers::cost_per_1m_usd(v),
        );
        let usd = usd_v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            s,
            "| {} | {base_id} | {row} | {}{} | {}{} | {}{} | {usd}{} |",
            v.id,
            num(lat_v, 1),
            ratio(lat_b, lat_v),
            num(tp_v, 1),
            ratio(tp_b, tp_v),
            num(mem_v, 0),
            ratio(mem_b, mem_v),
            ratio(usd_b, usd_v),
        );
    }
}

/// "Δacc | CI | ΔF1 | CI | agreement" of `variant − base` on `split`.
fn quality_row(split: &SplitAnalysis, base: &str, variant: &str) -> String {
    let ci = |i: &clsbench_stats::intervals::Interval| format!("[{:+.4}, {:+.4}]", i.lower, i.upper);
    let agree = match (split.model(base), split.model(variant)) {
        (Some((_, a)), Some((_, b))) => agreement(&a.pred, &b.pred),
        _ => None,
    };
    let agree = agree
        .map(|x| format!("{:.1}%", 100.0 * x))
        .unwrap_or_else(|| "-".into());
    match split.pair(base, variant) {
        Some(p) => format!(
            "{:+.4} | {} | {:+.4} | {} | {agree}",
            p.accuracy.delta.point,
            ci(&p.accuracy.delta.percentile),
            p.macro_f1.delta.point,
            ci(&p.macro_f1.delta.percentile)
        ),
        None => format!("- | - | - | - | {agree}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_counts_equal_predictions_and_refuses_mismatched_lengths() {
        assert_eq!(agreement(&[1, 2, 3, 4], &[1, 2, 0, 4]), Some(0.75));
        assert_eq!(agreement(&[1], &[1, 2]), None);
        assert_eq!(agreement(&[], &[]), None);
    }

    #[test]
    fn ratio_is_variant_over_base_and_empty_when_either_is_missing() {
        assert_eq!(ratio(Some(2.0), Some(1.0)), " (x0.50)");
        assert_eq!(ratio(None, Some(1.0)), "");
        assert_eq!(ratio(Some(0.0), Some(1.0)), "");
    }
}
