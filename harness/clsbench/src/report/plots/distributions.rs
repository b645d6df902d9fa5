//! Distributions: the label distribution (classes sorted by train count, log y, the seed's
//! bands at 50 and 20 examples) and the paired bootstrap distribution of the macro-F1 delta.

use super::data::PlotData;
use super::style::{self, err, Plot, AXIS_DESC_PX, NOTE_PX, TICK_PX, TITLE_PX};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

pub struct LabelDistribution<'a> {
    pub data: &'a PlotData,
}

/// The seed's bands (blog 08): classes under 50 and under 20 training examples.
const BANDS: [usize; 2] = [50, 20];

impl Plot for LabelDistribution<'_> {
    fn size(&self) -> (u32, u32) {
        (1300, 750)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let d = self.data;
        let mut counts = d.train_counts.clone();
        if counts.is_empty() {
            return Err("no classes".into());
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let k = counts.len();
        // Room above the largest class, and for the bands even when every class is below them.
        let y_top = (counts[0].max(2) as f64 * 2.0).max(BANDS[0] as f64 * 1.6);
        let mut chart = ChartBuilder::on(root)
            .margin(24)
            .margin_right(40)
            .x_label_area_size(60)
            .y_label_area_size(80)
            .caption(
                format!(
                    "Label distribution: {k} classes, {} training documents",
                    counts.iter().sum::<usize>()
                ),
                style::text(TITLE_PX),
            )
            .build_cartesian_2d(0f64..k as f64 + 1.0, (0.8f64..y_top).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("classes sorted by training examples (rank)")
            .y_desc("training examples (log scale)")
            .axis_desc_style(style::text(AXIS_DESC_PX))
            .label_style(style::text(TICK_PX))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| style::log_tick(*v))
            .disable_x_mesh()
            .bold_line_style(style::GRID)
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(err)?;
        let bar = style::color(0);
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &c)| {
                let x = i as f64 + 1.0;
                Rectangle::new([(x - 0.4, 0.8), (x + 0.4, c.max(1) as f64)], bar.filled())
            }))
            .map_err(err)?
            .label("training examples per class")
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], bar.filled()));
        for (b, band) in BANDS.iter().enumerate() {
            let below = counts.iter().filter(|&&c| c < *band).count();
            let c = if b == 0 { style::color(1) } else { style::RARE };
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(0.0, *band as f64), (k as f64 + 1.0, *band as f64)],
                    10,
                    6,
                    c.stroke_width(2),
                ))
                .map_err(err)?
                .label(format!("{band} examples: {below} classes below"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(2)));
        }
        style::draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}

pub struct BootstrapDelta<'a> {
    pub data: &'a PlotData,
}

/// Equal-width histogram: (bin left edges, counts, bin width).
pub fn histogram(samples: &[f64], bins: usize) -> (Vec<f64>, Vec<usize>, f64) {
    let lo = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if samples.is_empty() || bins == 0 {
        return (Vec::new(), Vec::new(), 0.0);
    }
    let width = if hi > lo { (hi - lo) / bins as f64 } else { 1e-3 };
    let mut counts = vec![0usize; bins];
    for &s in samples {
        let b = (((s - lo) / width) as usize).min(bins - 1);
        counts[b] += 1;
    }
    ((0..bins).map(|b| lo + b as f64 * width).collect(), counts, width)
}

impl Plot for BootstrapDelta<'_> {
    fn size(&self) -> (u32, u32) {
        (1200, 750)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let d = self.data;
        let delta = d.delta.as_ref().ok_or("needs two models with bootstrap samples")?;
        let (edges, counts, width) = histogram(&delta.samples, 40);
        if counts.is_empty() {
            return Err("no bootstrap samples".into());
        }
        let x_lo = edges[0].min(0.0).min(delta.ci.0) - width;
        let x_hi = (edges[edges.len() - 1] + width).max(0.0).max(delta.ci.1) + width;
        // Headroom above the tallest bar for the legend and the note.
        let y_hi = *counts.iter().max().unwrap_or(&1) as f64 * 1.4;
        let mut chart = ChartBuilder::on(root)
            .margin(24)
            .margin_right(36)
            .x_label_area_size(60)
            .y_label_area_size(76)
            .caption(
                format!(
                    "Paired bootstrap on {}: macro F1 of {} − {} ({} resamples)",
                    d.split,
                    delta.b,
                    delta.a,
                    delta.samples.len()
                ),
                style::text(TITLE_PX),
            )
            .build_cartesian_2d(x_lo..x_hi, 0f64..y_hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(format!("Δ macro F1 ({} − {})", delta.b, delta.a))
            .y_desc("resamples")
            .axis_desc_style(style::text(AXIS_DESC_PX))
            .label_style(style::text(TICK_PX))
            .x_label_formatter(&|v| {
                if v.abs() < 5e-4 {
                    "0".to_string()
                } else {
                    format!("{v:+.3}")
                }
            })
            .y_label_formatter(&|v| format!("{v:.0}"))
            .bold_line_style(style::GRID)
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(err)?;
        let bar = style::color(0);
        chart
            .draw_series(
                edges
                    .iter()
                    .zip(&counts)
                    .map(|(&x, &n)| Rectangle::new([(x, 0.0), (x + width * 0.92, n as f64)], bar.mix(0.7).filled())),
            )
            .map_err(err)?
            .label("resampled Δ")
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], bar.mix(0.7).filled()));
        let conf = d.confidence * 100.0;
        let ci_color = style::RARE;
        chart
            .draw_series(
                [delta.ci.0, delta.ci.1]
                    .map(|x| PathElement::new(vec![(x, 0.0), (x, y_hi * 0.92)], ci_color.stroke_width(2))),
            )
            .map_err(err)?
            .label(format!("{conf:.0}% CI [{:+.4}, {:+.4}]", delta.ci.0, delta.ci.1))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], ci_color.stroke_width(2)));
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(delta.point, 0.0), (delta.point, y_hi * 0.92)],
                BLACK.stroke_width(3),
            )))
            .map_err(err)?
            .label(format!("observed Δ = {:+.4}", delta.point))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLACK.stroke_width(3)));
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, 0.0), (0.0, y_hi)],
                6,
                6,
                style::GREY.stroke_width(2),
            ))
            .map_err(err)?
            .label("no difference")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style::GREY.stroke_width(2)));
        style::draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        let share_pos = delta.samples.iter().filter(|&&s| s > 0.0).count() as f64 / delta.samples.len() as f64;
        let (px, py) = chart.backend_coord(&(x_hi, y_hi));
        root.draw_text(
            &format!("share of resamples with Δ > 0: {share_pos:.3}"),
            &style::text_at(NOTE_PX + 1, HPos::Right, VPos::Top),
            (px - 12, py + 12),
        )
        .map_err(err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_every_sample_once() {
        let samples: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
        let (edges, counts, width) = histogram(&samples, 10);
        assert_eq!(counts.iter().sum::<usize>(), 100);
        assert_eq!(edges.len(), 10);
        assert!((width - 0.099).abs() < 1e-12);
        let (_, flat, _) = histogram(&[0.5; 7], 4);
        assert_eq!(flat.iter().sum::<usize>(), 7, "constant samples still land in a bin");
    }
}
