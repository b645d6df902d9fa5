//! Quality against cost: macro F1 and accuracy with their confidence-interval whiskers against
//! US$ per million documents (log x), one labelled point per model, Pareto frontier drawn.
//! When some model has no price, every model is placed by hardware-hours per million documents
//! instead, so that priced and unpriced models are never mixed on one axis.

use super::data::{ModelPoint, PlotData};
use super::style::{self, err, Plot, AXIS_DESC_PX, NOTE_PX, TICK_PX, TITLE_PX};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

/// A metric and its interval, read from a model.
type MetricGetter = fn(&ModelPoint) -> (f64, Option<(f64, f64)>);
/// A metric's per-seed values and seed-aware interval, when the model has several seeds.
type SeedGetter = fn(&ModelPoint) -> Option<(&[f64], (f64, f64))>;
/// A model on the chart: the model, its colour index, x, y, and the whisker (lo, hi).
type Placed<'a> = (&'a ModelPoint, usize, f64, f64, (f64, f64));

pub struct QualityCost<'a> {
    pub data: &'a PlotData,
}

/// What the x axis measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostAxis {
    UsdPerMillionDocs,
    HoursPerMillionDocs,
}

impl CostAxis {
    pub fn choose(models: &[ModelPoint]) -> Option<CostAxis> {
        if !models.is_empty() && models.iter().all(|m| m.usd_per_million_docs.is_some()) {
            Some(CostAxis::UsdPerMillionDocs)
        } else if models.iter().any(|m| m.hours_per_million_docs.is_some()) {
            Some(CostAxis::HoursPerMillionDocs)
        } else {
            None
        }
    }

    fn value(self, m: &ModelPoint) -> Option<f64> {
        match self {
            CostAxis::UsdPerMillionDocs => m.usd_per_million_docs,
            CostAxis::HoursPerMillionDocs => m.hours_per_million_docs,
        }
    }

    fn desc(self, slug: &str) -> String {
        match self {
            CostAxis::UsdPerMillionDocs => format!("cost per 1M documents (US$, {slug}, log scale)"),
            CostAxis::HoursPerMillionDocs => {
                format!("{slug} hours per 1M documents (log scale; no price for every model)")
            }
        }
    }
}

/// Indices of the Pareto-optimal models: no other model is at most as costly and strictly
/// better, ordered by cost.
pub fn pareto_frontier(points: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    // Cheapest first; at equal cost the better model first, so the worse one is dominated.
    order.sort_by(|&a, &b| {
        points[a]
            .0
            .total_cmp(&points[b].0)
            .then(points[b].1.total_cmp(&points[a].1))
    });
    let mut best = f64::NEG_INFINITY;
    let mut front = Vec::new();
    for i in order {
        if points[i].1 > best {
            best = points[i].1;
            front.push(i);
        }
    }
    front
}

impl Plot for QualityCost<'_> {
    fn size(&self) -> (u32, u32) {
        (1500, 700)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let d = self.data;
        let axis = CostAxis::choose(&d.models).ok_or("no model has a measured throughput")?;
        let (title_area, rest) = root.split_vertically(50);
        let (body, foot) = rest.split_vertically(rest.dim_in_pixel().1 - 34);
        title_area
            .draw_text(
                &format!("Quality vs cost — {} / {} ({} documents)", d.suite, d.split, d.n_docs),
                &style::text_at(TITLE_PX, HPos::Center, VPos::Center),
                (title_area.dim_in_pixel().0 as i32 / 2, 28),
            )
            .map_err(err)?;
        let seed_note = if d.models.iter().any(|m| m.seeds.is_some()) {
            " (first seed); band: seed-aware CI over seeds, dots: seeds"
        } else {
            ""
        };
        let note = match (&d.price_note, axis) {
            (Some(p), CostAxis::UsdPerMillionDocs) => {
                format!(
                    "Whiskers: {:.0}% bootstrap CI{}; dashed: Pareto frontier. Cost at the priced batch size; price: {p}.",
                    d.confidence * 100.0,
                    seed_note
                )
            }
            _ => format!(
                "Whiskers: {:.0}% bootstrap CI{}; dashed: Pareto frontier. Hours at each model's priced batch size.",
                d.confidence * 100.0,
                seed_note
            ),
        };
        foot.draw_text(&note, &style::text_at(NOTE_PX, HPos::Left, VPos::Center), (20, 16))
            .map_err(err)?;

        let panels = body.split_evenly((1, 2));
        let metrics: [(&str, MetricGetter, SeedGetter); 2] = [
            (
                "macro F1",
                |m| (m.macro_f1, m.macro_f1_ci),
                |m| m.seeds.as_ref().map(|s| (s.macro_f1.as_slice(), s.macro_f1_ci)),
            ),
            (
                "accuracy",
                |m| (m.accuracy, m.accuracy_ci),
                |m| m.seeds.as_ref().map(|s| (s.accuracy.as_slice(), s.accuracy_ci)),
            ),
        ];
        for (panel, (name, get, seeds)) in panels.iter().zip(metrics) {
            draw_panel(root, panel, d, axis, name, get, seeds)?;
        }
        Ok(())
    }
}

fn draw_panel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    area: &DrawingArea<DB, Shift>,
    d: &PlotData,
    axis: CostAxis,
    metric: &str,
    get: MetricGetter,
    seeds: SeedGetter,
) -> Result<(), String> {
    let placed: Vec<Placed> = d
        .models
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let x = axis.value(m)?;
            let (y, ci) = get(m);
            Some((m, i, x, y, ci.unwrap_or((y, y))))
        })
        .collect();
    let xs: Vec<f64> = placed.iter().map(|p| p.2).collect();
    let (x0, x1) = style::log_range(&xs, 4.0);
    // The y range holds every whisker, seed band and per-seed value.
    let seed_values = placed
        .iter()
        .filter_map(|p| seeds(p.0))
        .flat_map(|(v, (l, h))| v.iter().copied().chain([l, h]));
    let lo = placed
        .iter()
        .map(|p| p.4 .0)
        .chain(seed_values.clone())
        .fold(f64::INFINITY, f64::min);
    let hi = placed
        .iter()
        .map(|p| p.4 .1)
        .chain(seed_values)
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.15).max(0.02);
    let (y0, y1) = ((lo - pad).max(0.0), (hi + pad).min(1.0));

    let mut chart = ChartBuilder::on(area)
        .margin(18)
        .margin_right(30)
        .x_label_area_size(56)
        .y_label_area_size(72)
        .caption(format!("{metric} vs cost"), style::text(AXIS_DESC_PX + 2))
        .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(axis.desc(&d.hardware_slug))
        .y_desc(format!("{metric} ({:.0}% CI)", d.confidence * 100.0))
        .axis_desc_style(style::text(AXIS_DESC_PX))
        .label_style(style::text(TICK_PX))
        .x_label_formatter(&|v| match axis {
            CostAxis::UsdPerMillionDocs => match style::log_tick(*v) {
                t if t.is_empty() => t,
                t => format!("${t}"),
            },
            CostAxis::HoursPerMillionDocs => style::log_tick(*v),
        })
        .y_label_formatter(&|v| format!("{v:.2}"))
        .bold_line_style(style::GRID)
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(err)?;

    // Pareto frontier as a staircase: cost rises only where quality does.
    let front = pareto_frontier(&placed.iter().map(|p| (p.2, p.3)).collect::<Vec<_>>());
    let mut frontier_path = Vec::new();
    for (k, &i) in front.iter().enumerate() {
        if k > 0 {
            frontier_path.push((placed[i].2, placed[front[k - 1]].3));
        }
        frontier_path.push((placed[i].2, placed[i].3));
    }
    if front.len() >= 2 {
        chart
            .draw_series(DashedLineSeries::new(
                frontier_path.clone(),
                8,
                5,
                style::GREY.stroke_width(2),
            ))
            .map_err(err)?;
    }

    for &(m, i, x, y, (l, h)) in &placed {
        let c = style::color(i);
        let whisker = vec![(x, l), (x, h)];
        chart
            .draw_series(std::iter::once(PathElement::new(whisker, c.stroke_width(2))))
            .map_err(err)?;
        for end in [l, h] {
            let (px, py) = chart.backend_coord(&(x, end));
            root.draw(&PathElement::new(vec![(px - 6, py), (px + 6, py)], c.stroke_width(2)))
                .map_err(err)?;
        }
        chart
            .draw_series(std::iter::once(Circle::new((x, y), 7, c.filled())))
            .map_err(err)?;
        // Seeds: a translucent band over the seed-aware interval just right of the whisker,
        // one hollow dot per seed on it.
        if let Some((values, (sl, sh))) = seeds(m) {
            let (px, top) = chart.backend_coord(&(x, sh));
            let (_, bottom) = chart.backend_coord(&(x, sl));
            root.draw(&Rectangle::new(
                [(px + 11, top), (px + 21, bottom)],
                c.mix(0.3).filled(),
            ))
            .map_err(err)?;
            for &v in values {
                let (_, py) = chart.backend_coord(&(x, v));
                root.draw(&Circle::new((px + 16, py), 3, c.stroke_width(1)))
                    .map_err(err)?;
            }
        }
    }

    // Labels: beside their point, clear of every point, whisker, frontier segment and other label.
    let plot_px = chart.plotting_area().get_pixel_range();
    let bounds = style::Rect {
        x0: plot_px.0.start,
        y0: plot_px.1.start,
        x1: plot_px.0.end,
        y1: plot_px.1.end,
    };
    let mut obstacles = Vec::new();
    for &(m, _, x, y, (l, h)) in &placed {
        obstacles.push(style::Rect::around(
            chart.backend_coord(&(x, l)),
            chart.backend_coord(&(x, h)),
            7,
        ));
        if let Some((_, (sl, sh))) = seeds(m) {
            let (px, top) = chart.backend_coord(&(x, sh));
            let (_, bottom) = chart.backend_coord(&(x, sl));
            obstacles.push(style::Rect::around((px + 11, top), (px + 21, bottom), 2));
        }
        obstacles.push(style::Rect::around(
            chart.backend_coord(&(x, y)),
            chart.backend_coord(&(x, y)),
            8,
        ));
    }
    for w in frontier_path.windows(2) {
        obstacles.push(style::Rect::around(
            chart.backend_coord(&w[0]),
            chart.backend_coord(&w[1]),
            3,
        ));
    }
    let labels: Vec<String> = placed
        .iter()
        .map(|p| match p.0.priced_batch {
            Some(b) => format!("{} (batch {b})", p.0.id),
            None => p.0.id.clone(),
        })
        .collect();
    let mut sizes = Vec::new();
    for label in &labels {
        let (w, _) = root.estimate_text_size(label, &style::text(TICK_PX)).map_err(err)?;
        sizes.push((w, TICK_PX + 4));
    }
    let anchors: Vec<(i32, i32)> = placed.iter().map(|p| chart.backend_coord(&(p.2, p.3))).collect();
    let boxes = style::place_labels(&anchors, &sizes, &obstacles, bounds);
    for ((label, b), &(ax, ay)) in labels.iter().zip(&boxes).zip(&anchors) {
        let (cx, cy) = (if b.x0 > ax { b.x0 } else { b.x1 }, (b.y0 + b.y1) / 2);
        if (cy - ay).abs() > TICK_PX as i32 + 8 {
            root.draw(&PathElement::new(vec![(ax, ay), (cx, cy)], style::GREY.stroke_width(1)))
                .map_err(err)?;
        }
        root.draw_text(label, &style::text_at(TICK_PX, HPos::Left, VPos::Center), (b.x0, cy))
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pareto_frontier_keeps_only_undominated_models() {
        // cost, F1: a cheap weak, a mid dominated (costlier than a and worse), a dear strong.
        let pts = [(1.0, 0.20), (5.0, 0.18), (50.0, 0.24), (0.5, 0.10), (50.0, 0.22)];
        assert_eq!(pareto_frontier(&pts), vec![3, 0, 2]);
        assert!(pareto_frontier(&[]).is_empty());
    }
}
