//! Quality against cost: macro F1 and accuracy with their confidence-interval whiskers against
//! US$ per million documents (log x), one labelled point per model, Pareto frontier drawn.
//! When some model has no price, every model is placed by hardware-hours per million documents
//! instead, so that priced and unpriced models are never mixed on one axis.

use super::data::{ModelPoint, PlotData};
use super::style::{self, err, Plot, AXIS_DESC_PX, NOTE_PX, TICK_PX, TITLE_PX};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

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
        let note = match (&d.price_note, axis) {
            (Some(p), CostAxis::UsdPerMillionDocs) => {
                format!(
                    "Whiskers: {:.0}% bootstrap CI. Cost at each model's priced batch size; price: {p}.",
                    d.confidence * 100.0
                )
            }
            _ => format!(
                "Whiskers: {:.0}% bootstrap CI. Hours at each model's priced batch size.",
                d.confidence * 100.0
            ),
        };
        foot.draw_text(&note, &style::text_at(NOTE_PX, HPos::Left, VPos::Center), (20, 16))
            .map_err(err)?;

        let panels = body.split_evenly((1, 2));
        let metrics: [(&str, fn(&ModelPoint) -> (f64, Option<(f64, f64)>)); 2] = [
            ("macro F1", |m| (m.macro_f1, m.macro_f1_ci)),
            ("accuracy", |m| (m.accuracy, m.accuracy_ci)),
        ];
        for (panel, (name, get)) in panels.iter().zip(metrics) {
            draw_panel(root, panel, d, axis, name, get)?;
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
    get: fn(&ModelPoint) -> (f64, Option<(f64, f64)>),
) -> Result<(), String> {
    let placed: Vec<(&ModelPoint, usize, f64, f64, (f64, f64))> = d
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
    let lo = placed.iter().map(|p| p.4 .0).fold(f64::INFINITY, f64::min);
    let hi = placed.iter().map(|p| p.4 .1).fold(f64::NEG_INFINITY, f64::max);
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
            CostAxis::UsdPerMillionDocs => format!("${}", style::tick_number(*v)),
            CostAxis::HoursPerMillionDocs => style::tick_number(*v),
        })
        .y_label_formatter(&|v| format!("{v:.2}"))
        .bold_line_style(style::GRID)
        .light_line_style(TRANSPARENT)
        .draw()
        .map_err(err)?;

    // Pareto frontier as a staircase: cost rises only where quality does.
    let front = pareto_frontier(&placed.iter().map(|p| (p.2, p.3)).collect::<Vec<_>>());
    if front.len() >= 2 {
        let mut path = Vec::new();
        for (k, &i) in front.iter().enumerate() {
            if k > 0 {
                path.push((placed[i].2, placed[front[k - 1]].3));
            }
            path.push((placed[i].2, placed[i].3));
        }
        chart
            .draw_series(DashedLineSeries::new(path, 8, 5, style::GREY.stroke_width(2)))
            .map_err(err)?
            .label("Pareto frontier")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style::GREY.stroke_width(2)));
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
            .map_err(err)?
            .label(m.id.clone())
            .legend(move |(lx, ly)| Circle::new((lx + 12, ly), 6, c.filled()));
    }

    // Labels to the right of each point (left when near the right edge), spread vertically.
    let plot_px = chart.plotting_area().get_pixel_range();
    let anchors: Vec<(i32, i32)> = placed.iter().map(|p| chart.backend_coord(&(p.2, p.3))).collect();
    // Labels sit above their point: the frontier leaves each point horizontally, at its height.
    let ys = style::spread(
        &anchors.iter().map(|a| a.1 as f64 - 16.0).collect::<Vec<_>>(),
        (TICK_PX + 4) as f64,
        plot_px.1.start as f64 + 10.0,
        plot_px.1.end as f64 - 10.0,
    );
    for ((p, &(ax, ay)), &ly) in placed.iter().zip(&anchors).zip(&ys) {
        let label = match p.0.priced_batch {
            Some(b) => format!("{} (batch {b})", p.0.id),
            None => p.0.id.clone(),
        };
        let (w, _) = root.estimate_text_size(&label, &style::text(TICK_PX)).map_err(err)?;
        let right = ax + 12 + w as i32 <= plot_px.0.end;
        let (lx, h) = if right {
            (ax + 12, HPos::Left)
        } else {
            (ax - 12, HPos::Right)
        };
        let ly = ly.round() as i32;
        if (ly - (ay - 16)).abs() > 6 {
            root.draw(&PathElement::new(vec![(ax, ay), (lx, ly)], style::GREY.stroke_width(1)))
                .map_err(err)?;
        }
        root.draw_text(&label, &style::text_at(TICK_PX, h, VPos::Center), (lx, ly))
            .map_err(err)?;
    }

    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(style::text(TICK_PX))
        .background_style(WHITE.mix(0.85))
        .border_style(style::GREY)
        .draw()
        .map_err(err)?;
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
