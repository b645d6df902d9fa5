//! Per-class F1 of two models against each other (the seed's week-3 encoder-vs-decoder
//! scatter): y = x line, rare-quartile classes in red, common in blue, win counts annotated;
//! and the long tail: per-class F1 against train count for every model.

use super::data::PlotData;
use super::style::{self, err, Plot, AXIS_DESC_PX, NOTE_PX, TICK_PX, TITLE_PX};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// Wins of y over x, of x over y, and ties, over the classes `keep` selects that are scored for
/// both models.
pub fn win_counts(x: &[Option<f64>], y: &[Option<f64>], keep: impl Fn(usize) -> bool) -> (usize, usize, usize) {
    let (mut y_wins, mut x_wins, mut ties) = (0, 0, 0);
    for (c, (a, b)) in x.iter().zip(y).enumerate() {
        if let (true, Some(a), Some(b)) = (keep(c), a, b) {
            match b.total_cmp(a) {
                std::cmp::Ordering::Greater => y_wins += 1,
                std::cmp::Ordering::Less => x_wins += 1,
                std::cmp::Ordering::Equal => ties += 1,
            }
        }
    }
    (y_wins, x_wins, ties)
}

/// Classes at F1 = 0 for both models: they all sit on one point at the origin.
pub fn both_zero(x: &[Option<f64>], y: &[Option<f64>]) -> usize {
    x.iter()
        .zip(y)
        .filter(|(a, b)| **a == Some(0.0) && **b == Some(0.0))
        .count()
}

pub struct PerClassScatter<'a> {
    pub data: &'a PlotData,
}

impl Plot for PerClassScatter<'_> {
    fn size(&self) -> (u32, u32) {
        (950, 950)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let d = self.data;
        let (xi, yi) = d.scatter_pair.ok_or("needs two models")?;
        let (mx, my) = (&d.models[xi], &d.models[yi]);
        let is_rare = |c: usize| d.rare.get(c).copied().unwrap_or(false);
        let (y_wins, x_wins, ties) = win_counts(&mx.per_class_f1, &my.per_class_f1, |_| true);
        let (y_rare, x_rare, _) = win_counts(&mx.per_class_f1, &my.per_class_f1, is_rare);
        let mut chart = ChartBuilder::on(root)
            .margin(24)
            .x_label_area_size(60)
            .y_label_area_size(76)
            .caption(
                format!("Per-class F1 on {}: {} vs {}", d.split, my.id, mx.id),
                style::text(TITLE_PX),
            )
            .build_cartesian_2d(-0.02f64..1.02, -0.02f64..1.02)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(format!("{} per-class F1", mx.id))
            .y_desc(format!("{} per-class F1", my.id))
            .axis_desc_style(style::text(AXIS_DESC_PX))
            .label_style(style::text(TICK_PX))
            .x_label_formatter(&|v| format!("{v:.1}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .bold_line_style(style::GRID)
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                style::GREY.stroke_width(2),
            )))
            .map_err(err)?
            .label("y = x")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style::GREY.stroke_width(2)));
        for (rare, color, name) in [
            (
                false,
                style::COMMON,
                format!("common (train count > {})", d.rare_threshold),
            ),
            (
                true,
                style::RARE,
                format!("rare quartile (train count ≤ {})", d.rare_threshold),
            ),
        ] {
            let points: Vec<(f64, f64)> = (0..d.labels.len())
                .filter(|&c| d.rare.get(c).copied().unwrap_or(false) == rare)
                .filter_map(|c| Some((mx.per_class_f1.get(c).copied()??, my.per_class_f1.get(c).copied()??)))
                .collect();
            let n = points.len();
            chart
                .draw_series(points.into_iter().map(|p| Circle::new(p, 5, color.mix(0.75).filled())))
                .map_err(err)?
                .label(format!("{name}: {n} classes"))
                .legend(move |(x, y)| Circle::new((x + 12, y), 5, color.filled()));
        }
        style::draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        let (px, py) = chart.backend_coord(&(0.0, 1.0));
        let classes = |n: usize| {
            if n == 1 {
                "1 class".to_string()
            } else {
                format!("{n} classes")
            }
        };
        let lines = [
            format!("{} better: {} ({y_rare} rare)", my.id, classes(y_wins)),
            format!("{} better: {} ({x_rare} rare)", mx.id, classes(x_wins)),
            format!(
                "ties: {} ({} both at 0, drawn as one point)",
                classes(ties),
                both_zero(&mx.per_class_f1, &my.per_class_f1)
            ),
        ];
        for (k, line) in lines.iter().enumerate() {
            root.draw_text(
                line,
                &style::text_at(NOTE_PX + 2, HPos::Left, VPos::Top),
                (px + 12, py + 10 + k as i32 * 22),
            )
            .map_err(err)?;
        }
        Ok(())
    }
}

pub struct LongTail<'a> {
    pub data: &'a PlotData,
}

/// Mean F1 per log2 bin of train count, for a trend line: (geometric mean of the bin's train
/// counts, so a point sits among its classes, and their mean F1).
pub fn binned_means(counts: &[usize], f1: &[Option<f64>]) -> Vec<(f64, f64)> {
    let mut bins: std::collections::BTreeMap<u32, (f64, f64, usize)> = Default::default();
    for (&c, f) in counts.iter().zip(f1) {
        if let (true, Some(f)) = (c > 0, f) {
            let e = bins.entry(c.ilog2()).or_insert((0.0, 0.0, 0));
            e.0 += (c as f64).ln();
            e.1 += f;
            e.2 += 1;
        }
    }
    bins.into_values()
        .map(|(log_sum, f1_sum, n)| ((log_sum / n as f64).exp(), f1_sum / n as f64))
        .collect()
}

impl Plot for LongTail<'_> {
    fn size(&self) -> (u32, u32) {
        (1300, 800)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let d = self.data;
        if d.models.is_empty() {
            return Err("no model finished".into());
        }
        let max_count = d.train_counts.iter().copied().max().unwrap_or(1).max(2) as f64;
        let mut chart = ChartBuilder::on(root)
            .margin(24)
            .x_label_area_size(60)
            .y_label_area_size(76)
            .caption(
                format!(
                    "Long tail on {}: per-class F1 vs training examples ({} classes)",
                    d.split,
                    d.labels.len()
                ),
                style::text(TITLE_PX),
            )
            .build_cartesian_2d((0.8f64..max_count * 1.5).log_scale(), -0.02f64..1.02)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("training examples of the class (log scale)")
            .y_desc(format!("per-class F1 on {}", d.split))
            .axis_desc_style(style::text(AXIS_DESC_PX))
            .label_style(style::text(TICK_PX))
            .x_label_formatter(&|v| style::log_tick(*v))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .bold_line_style(style::GRID)
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(err)?;
        for (i, m) in d.models.iter().enumerate() {
            let c = style::color(i);
            let points: Vec<(f64, f64)> = d
                .train_counts
                .iter()
                .zip(&m.per_class_f1)
                .filter_map(|(&n, f)| Some((n.max(1) as f64, (*f)?)))
                .collect();
            chart
                .draw_series(points.into_iter().map(|p| Circle::new(p, 4, c.mix(0.55).filled())))
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(
                    binned_means(&d.train_counts, &m.per_class_f1),
                    c.stroke_width(3),
                ))
                .map_err(err)?
                .label(format!("{} (line: mean per doubling of train count)", m.id))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
        }
        style::draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wins_skip_classes_missing_from_either_model() {
        let x = [Some(0.5), Some(0.2), None, Some(0.3), Some(0.0)];
        let y = [Some(0.6), Some(0.1), Some(0.9), Some(0.3), None];
        assert_eq!(win_counts(&x, &y, |_| true), (1, 1, 1));
        assert_eq!(win_counts(&x, &y, |c| c == 0), (1, 0, 0));
        let z = [Some(0.0), Some(0.0), None, Some(0.3), Some(0.0)];
        assert_eq!(
            both_zero(&z, &[Some(0.0), Some(0.1), Some(0.0), Some(0.0), Some(0.0)]),
            2
        );
    }

    #[test]
    fn binned_means_group_by_doubling() {
        // counts 1 | 2,3 | 4..7 ; class with no F1 skipped.
        let means = binned_means(&[1, 2, 3, 5, 6], &[Some(0.0), Some(0.2), Some(0.4), Some(1.0), None]);
        assert_eq!(means.len(), 3);
        assert!((means[1].0 - 6f64.sqrt()).abs() < 1e-12 && (means[1].1 - 0.3).abs() < 1e-12);
        assert!((means[2].0 - 5.0).abs() < 1e-12 && means[2].1 == 1.0);
    }
}
