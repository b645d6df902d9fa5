//! What every plot shares: the bundled font, colours, text sizes, label spreading, and writing
//! one drawing as both PNG and SVG.

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;
use std::sync::OnceLock;

/// plotters is built with `ab_glyph`, which loads no system fonts: we register DejaVu Sans (its
/// licence is in harness/clsbench/assets/) as the family every plot uses.
pub const FONT: &str = "sans-serif";
static FONT_BYTES: &[u8] = include_bytes!("../../../assets/DejaVuSans.ttf");

pub const TITLE_PX: u32 = 26;
pub const AXIS_DESC_PX: u32 = 20;
pub const TICK_PX: u32 = 16;
pub const NOTE_PX: u32 = 15;

/// Register the font once per process.
pub fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::Model(
            "the bundled DejaVu Sans font could not be loaded by plotters".into(),
        ))
    }
}

/// Tableau 10: distinguishable, and readable by most colour-blind viewers in pairs.
const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

pub fn color(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

pub const GRID: RGBColor = RGBColor(222, 222, 222);
pub const GREY: RGBColor = RGBColor(120, 120, 120);
pub const RARE: RGBColor = RGBColor(214, 39, 40);
pub const COMMON: RGBColor = RGBColor(31, 119, 180);

pub fn text(px: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, px).into_font()).color(&BLACK)
}

pub fn text_at(px: u32, h: HPos, v: VPos) -> TextStyle<'static> {
    text(px).pos(Pos::new(h, v))
}

/// A drawing that renders on any plotters backend.
pub trait Plot {
    /// Width and height in pixels (PNG) or user units (SVG).
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> std::result::Result<(), String>;
}

/// Turn a plotters error into our message.
/// The legend box every plot uses: white, translucent, grey border, tick-sized text.
pub fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> std::result::Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font(text(TICK_PX))
        .background_style(WHITE.mix(0.9))
        .border_style(GREY)
        .draw()
        .map_err(err)
}

pub fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Write `plot` as `<dir>/<stem>.png` and `<dir>/<stem>.svg`, each atomically. The PNG is
/// drawn into memory and encoded there, so the only file operation is `write_atomic`'s (a
/// full disk is a write error with the temp file removed, not a half-drawn `.tmp` PNG).
pub fn save(dir: &Path, stem: &str, plot: &impl Plot) -> Result<()> {
    use image::ImageEncoder as _;
    ensure_font()?;
    let failed = |what: &str, e: String| Error::encode(format!("plot {stem}.{what}"), e);

    let (width, height) = plot.size();
    let mut rgb = vec![0u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, plot.size()).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed("png", err(e)))?;
        plot.draw(&root).map_err(|e| failed("png", e))?;
        root.present().map_err(|e| failed("png", err(e)))?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgb, width, height, image::ColorType::Rgb8)
        .map_err(|e| failed("png", err(e)))?;
    crate::fsutil::write_atomic(&dir.join(format!("{stem}.png")), &png)?;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, plot.size()).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed("svg", err(e)))?;
        plot.draw(&root).map_err(|e| failed("svg", e))?;
        root.present().map_err(|e| failed("svg", err(e)))?;
    }
    crate::fsutil::write_atomic(&dir.join(format!("{stem}.svg")), svg.as_bytes())
}

/// Move label centres apart so that neighbours are at least `gap` apart, staying within
/// [lo, hi] where possible; order is kept. Input and output are in the same units (pixels).
pub fn spread(wanted: &[f64], gap: f64, lo: f64, hi: f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..wanted.len()).collect();
    order.sort_by(|&a, &b| wanted[a].total_cmp(&wanted[b]));
    let mut placed: Vec<f64> = order.iter().map(|&i| wanted[i].clamp(lo, hi)).collect();
    for k in 1..placed.len() {
        placed[k] = placed[k].max(placed[k - 1] + gap);
    }
    // Pushed past the bottom edge: shift the run back up, keeping the gaps.
    if let Some(&last) = placed.last() {
        if last > hi {
            let n = placed.len();
            placed[n - 1] = hi;
            for k in (0..n - 1).rev() {
                placed[k] = placed[k].min(placed[k + 1] - gap);
            }
        }
    }
    let mut out = vec![0.0; wanted.len()];
    for (k, &i) in order.iter().enumerate() {
        out[i] = placed[k];
    }
    out
}

/// A pixel rectangle (x0 <= x1, y0 <= y1; y grows downwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

impl Rect {
    /// The rectangle spanned by two corners in any order, grown by `pad` on every side.
    pub fn around(a: (i32, i32), b: (i32, i32), pad: i32) -> Rect {
        Rect {
            x0: a.0.min(b.0) - pad,
            y0: a.1.min(b.1) - pad,
            x1: a.0.max(b.0) + pad,
            y1: a.1.max(b.1) + pad,
        }
    }

    fn overlap_area(&self, o: &Rect) -> i64 {
        let w = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0) as i64;
        let h = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0) as i64;
        w * h
    }

    fn inside(&self, b: &Rect) -> bool {
        self.x0 >= b.x0 && self.x1 <= b.x1 && self.y0 >= b.y0 && self.y1 <= b.y1
    }
}

/// Place one text box of `size` (w, h) per anchor point, greedily in input order: the first of
/// the candidate positions around the anchor (right-above, right-below, left-above, left-below,
/// then further up and down) that stays within `bounds` and overlaps no obstacle and no label
/// already placed; failing that, the candidate with the least overlap. Plotters has no label
/// placement of its own.
pub fn place_labels(anchors: &[(i32, i32)], sizes: &[(u32, u32)], obstacles: &[Rect], bounds: Rect) -> Vec<Rect> {
    const GAP: i32 = 10;
    let mut placed: Vec<Rect> = Vec::new();
    for (&(ax, ay), &(w, h)) in anchors.iter().zip(sizes) {
        let (w, h) = (w as i32, h as i32);
        let mut candidates = Vec::new();
        for k in 0..8 {
            let lift = k * (h + 4);
            for (right, above) in [(true, true), (true, false), (false, true), (false, false)] {
                let x0 = if right { ax + GAP } else { ax - GAP - w };
                let y0 = if above { ay - 4 - h - lift } else { ay + 4 + lift };
                candidates.push(Rect {
                    x0,
                    y0,
                    x1: x0 + w,
                    y1: y0 + h,
                });
            }
        }
        let cost = |r: &Rect| -> i64 {
            let outside = if r.inside(&bounds) { 0 } else { 1_000_000 };
            outside + obstacles.iter().chain(&placed).map(|o| r.overlap_area(o)).sum::<i64>()
        };
        let best = candidates
            .iter()
            .find(|r| cost(r) == 0)
            .or_else(|| candidates.iter().min_by_key(|r| cost(r)));
        placed.push(*best.expect("candidates are never empty"));
    }
    placed
}

/// Nice log-axis limits around positive data: a factor `pad` beyond the extremes.
pub fn log_range(values: &[f64], pad: f64) -> (f64, f64) {
    let pos: Vec<f64> = values.iter().copied().filter(|v| v.is_finite() && *v > 0.0).collect();
    let lo = pos.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = pos.iter().copied().fold(0.0, f64::max);
    if pos.is_empty() {
        return (0.1, 10.0);
    }
    if hi / lo < 10.0 {
        let mid = (lo * hi).sqrt();
        return (mid / 10.0, mid * 10.0);
    }
    (lo / pad, hi * pad)
}

/// A short number for axis ticks and labels: 3 significant digits, no exponent for common sizes.
pub fn short_number(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        let digits = (-a.log10()).floor() as usize + 2;
        format!("{v:.digits$}")
    }
}

/// A tick label on a log axis, only at 1, 2 and 5 x 10^k (empty elsewhere): plotters puts
/// many ticks on short log ranges, and their labels would collide.
pub fn log_tick(v: f64) -> String {
    if !(v.is_finite() && v > 0.0) {
        return String::new();
    }
    let mantissa = v / 10f64.powf(v.log10().floor());
    let nice = [1.0, 2.0, 5.0, 10.0].iter().any(|m| (mantissa - m).abs() < 1e-6 * m);
    if nice {
        tick_number(v)
    } else {
        String::new()
    }
}

/// A tick label on a log axis: whole numbers without decimals, small ones without trailing zeros.
pub fn tick_number(v: f64) -> String {
    let s = if (1e-6..1e-3).contains(&v.abs()) {
        format!("{v:.6}")
    } else {
        short_number(v)
    };
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_keeps_order_and_gap_and_bounds() {
        let out = spread(&[100.0, 101.0, 99.0, 300.0], 20.0, 0.0, 400.0);
        let mut sorted = out.clone();
        sorted.sort_by(f64::total_cmp);
        for w in sorted.windows(2) {
            assert!(w[1] - w[0] >= 20.0 - 1e-9, "{out:?}");
        }
        assert!(
            out[2] < out[0] && out[0] < out[1],
            "order by wanted position kept: {out:?}"
        );
        assert_eq!(out[3], 300.0, "a far label does not move");
        let crowded = spread(&[395.0, 398.0, 399.0], 20.0, 0.0, 400.0);
        assert!(crowded.iter().all(|&y| y <= 400.0), "{crowded:?}");
    }

    #[test]
    fn labels_avoid_obstacles_each_other_and_edges() {
        let bounds = Rect {
            x0: 0,
            y0: 0,
            x1: 400,
            y1: 300,
        };
        // Two points close together and a whisker right of the first.
        let anchors = [(100, 150), (110, 152), (390, 150)];
        let sizes = [(120, 16), (120, 16), (80, 16)];
        let whisker = Rect::around((140, 100), (140, 200), 4);
        let out = place_labels(&anchors, &sizes, &[whisker], bounds);
        for (i, r) in out.iter().enumerate() {
            assert!(r.inside(&bounds), "label {i} {r:?} leaves the plot");
            assert_eq!(r.overlap_area(&whisker), 0, "label {i} {r:?} covers the whisker");
            for (j, o) in out.iter().enumerate().skip(i + 1) {
                assert_eq!(r.overlap_area(o), 0, "labels {i} and {j} overlap: {r:?} {o:?}");
            }
        }
        assert!(out[2].x1 <= 390, "a point at the right edge gets its label on the left");
    }

    #[test]
    fn log_range_pads_and_handles_degenerate_input() {
        assert_eq!(log_range(&[], 2.0), (0.1, 10.0));
        let (lo, hi) = log_range(&[5.0], 2.0);
        assert!(lo < 5.0 && hi > 5.0 && hi / lo >= 99.0);
        assert_eq!(log_range(&[1.0, 1000.0, f64::NAN], 2.0), (0.5, 2000.0));
    }

    #[test]
    fn short_numbers_read_well() {
        assert_eq!(short_number(1234.5), "1234");
        assert_eq!(short_number(0.0421), "0.042");
        assert_eq!(short_number(2.5), "2.50");
        assert_eq!(short_number(3e-5), "3.0e-5");
        assert_eq!(
            (
                tick_number(10.0),
                tick_number(0.1),
                tick_number(1000.0),
                tick_number(2.5)
            ),
            ("10".into(), "0.1".into(), "1000".into(), "2.5".into())
        );
        assert_eq!(tick_number(1e-4), "0.0001");
        assert_eq!(
            (log_tick(20.0), log_tick(30.0), log_tick(0.5), log_tick(0.0)),
            ("20".into(), "".into(), "0.5".into(), "".into())
        );
    }
}
