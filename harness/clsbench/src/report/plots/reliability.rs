//! Reliability diagrams, one panel per model: accuracy against mean confidence per bin (the
//! seed's week-4 `np.digitize` bins), the diagonal of perfect calibration, the share of
//! documents in each bin with its count, and the same after temperature scaling (evaluation
//! half).

use super::style::{self, err, Plot, AXIS_DESC_PX, NOTE_PX, TICK_PX, TITLE_PX};
use crate::analysis::SplitAnalysis;
use clsbench_stats::calibration::{BinnedCalibration, N_BINS};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// One model's panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub model: String,
    /// Week-4 bins over the whole split.
    pub bins: BinnedCalibration,
    /// The weeks 5-6 ECE beside it.
    pub ece_upper_closed: f64,
    /// T, and the week-4 bins and weeks 5-6 ECE of the evaluation half after scaling.
    pub after: Option<(f64, BinnedCalibration, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reliability {
    pub title: String,
    pub panels: Vec<Panel>,
}

impl Reliability {
    /// The panels of every calibrated model of `a`; `None` when none is calibrated.
    pub fn from_split(title: &str, a: &SplitAnalysis) -> Option<Reliability> {
        let panels: Vec<Panel> = a
            .models
            .iter()
            .filter_map(|m| {
                let c = m.calibration.as_ref()?;
                Some(Panel {
                    model: m.model.clone(),
                    bins: c.full.digitize.clone(),
                    ece_upper_closed: c.full.upper_closed.ece,
                    after: c
                        .temperature
                        .as_ref()
                        .map(|t| (t.temperature, t.after.digitize.clone(), t.after.upper_closed.ece)),
                })
            })
            .collect();
        (!panels.is_empty()).then(|| Reliability {
            title: format!("Reliability: {title}"),
            panels,
        })
    }

    fn grid(&self) -> (usize, usize) {
        let cols = self.panels.len().clamp(1, 3);
        (self.panels.len().div_ceil(cols), cols)
    }
}

const PANEL_PX: (u32, u32) = (600, 560);
const TITLE_AREA_PX: u32 = 50;

impl Plot for Reliability {
    fn size(&self) -> (u32, u32) {
        let (rows, cols) = self.grid();
        (PANEL_PX.0 * cols as u32, PANEL_PX.1 * rows as u32 + TITLE_AREA_PX)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (rows, cols) = self.grid();
        let (title, body) = root.split_vertically(TITLE_AREA_PX);
        title
            .draw_text(
                &self.title,
                &style::text_at(TITLE_PX, HPos::Center, VPos::Center),
                (self.size().0 as i32 / 2, TITLE_AREA_PX as i32 / 2),
            )
            .map_err(err)?;
        for (panel, area) in self.panels.iter().zip(body.split_evenly((rows, cols))) {
            draw_panel(&area, panel)?;
        }
        Ok(())
    }
}

/// (mean confidence, accuracy) of the non-empty bins.
fn points(b: &BinnedCalibration) -> Vec<(f64, f64)> {
    b.bins
        .iter()
        .filter_map(|bin| Some((bin.mean_confidence?, bin.accuracy?)))
        .collect()
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Panel) -> Result<(), String> {
    let mut chart = ChartBuilder::on(area)
        .margin(14)
        .margin_right(24)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .caption(&p.model, style::text(AXIS_DESC_PX + 2))
        // Headroom above accuracy 1 keeps the legend off the points.
        .build_cartesian_2d(0f64..1f64, 0f64..1.38f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("mean confidence in the bin")
        .y_desc("accuracy in the bin")
        .axis_desc_style(style::text(TICK_PX))
        .label_style(style::text(TICK_PX))
        .x_labels(6)
        .y_labels(8)
        .x_label_formatter(&|v| format!("{v:.1}"))
        .y_label_formatter(&|v| {
            if *v <= 1.0 + 1e-9 {
                format!("{v:.1}")
            } else {
                String::new()
            }
        })
        .bold_line_style(style::GRID)
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(err)?;
    // The share of documents per bin, drawn under everything with its count on top.
    let n: usize = p.bins.bins.iter().map(|b| b.count).sum::<usize>() + p.bins.unbinned;
    let share = |count: usize| count as f64 / n.max(1) as f64;
    chart
        .draw_series(p.bins.bins.iter().filter(|b| b.count > 0).map(|b| {
            Rectangle::new(
                [(b.lower + 0.004, 0.0), (b.upper - 0.004, share(b.count))],
                style::GREY.mix(0.3).filled(),
            )
        }))
        .map_err(err)?
        .label(format!("share of the {n} documents per bin ({N_BINS} bins)"))
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], style::GREY.mix(0.3).filled()));
    chart
        .draw_series(p.bins.bins.iter().filter(|b| b.count > 0).map(|b| {
            Text::new(
                b.count.to_string(),
                ((b.lower + b.upper) / 2.0, share(b.count) + 0.012),
                style::text_at(NOTE_PX - 3, HPos::Center, VPos::Bottom),
            )
        }))
        .map_err(err)?;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.0, 0.0), (1.0, 1.0)],
            8,
            5,
            style::GREY.stroke_width(2),
        ))
        .map_err(err)?
        .label("perfect calibration")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style::GREY.stroke_width(2)));
    let before = style::color(0);
    let pts = points(&p.bins);
    chart
        .draw_series(LineSeries::new(pts.clone(), before.stroke_width(2)))
        .map_err(err)?
        .label(format!(
            "ECE {:.3} [lo, hi) / {:.3} (lo, hi]",
            p.bins.ece, p.ece_upper_closed
        ))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], before.stroke_width(2)));
    chart
        .draw_series(pts.iter().map(|&xy| Circle::new(xy, 5, before.filled())))
        .map_err(err)?;
    if let Some((t, after, ece_upper)) = &p.after {
        let c = style::color(1);
        let pts = points(after);
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(err)?
            .label(format!("T = {t:.2}, eval half: ECE {:.3} / {ece_upper:.3}", after.ece))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&(x, y)| TriangleMarker::new((x, y), 6, c.filled())))
            .map_err(err)?;
    }
    style::draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clsbench_stats::calibration::{binned, BinConvention};

    fn panel(model: &str, shift: f64) -> Panel {
        let conf: Vec<f64> = (0..400).map(|i| 0.2 + 0.8 * (i as f64 / 400.0)).collect();
        let correct: Vec<bool> = conf
            .iter()
            .enumerate()
            .map(|(i, &c)| ((i * 37) % 100) as f64 / 100.0 < c - shift)
            .collect();
        let bins = binned(&conf, &correct, BinConvention::Digitize).unwrap();
        let after = binned(&conf, &correct, BinConvention::Digitize).unwrap();
        Panel {
            model: model.into(),
            ece_upper_closed: bins.ece,
            bins,
            after: Some((1.4, after, 0.02)),
        }
    }

    #[test]
    fn one_panel_per_model_as_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let plot = Reliability {
            title: "val (255 documents)".into(),
            panels: vec![
                panel("tfidf-lr", -0.1),
                panel("minilm", 0.1),
                panel("smollm2", 0.2),
                panel("q", 0.0),
            ],
        };
        assert_eq!(plot.grid(), (2, 3));
        style::save(dir.path(), "reliability", &plot).unwrap();
        let png = std::fs::read(dir.path().join("reliability.png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = std::fs::read_to_string(dir.path().join("reliability.svg")).unwrap();
        for label in [
            "tfidf-lr",
            "smollm2",
            "perfect calibration",
            "T = 1.40",
            "mean confidence in the bin",
        ] {
            assert!(svg.contains(label), "{label} is drawn");
        }
        if let Ok(keep) = std::env::var("CLSBENCH_KEEP_PLOTS") {
            std::fs::create_dir_all(&keep).unwrap();
            std::fs::copy(
                dir.path().join("reliability.png"),
                std::path::Path::new(&keep).join("reliability.png"),
            )
            .unwrap();
        }
    }
}
