//! What every plot shares: the bundled font, colours, text sizes, label spreading, and writing
//! one drawing as both PNG and SVG.

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;
use std::sync::OnceLock;

/// plotters is built with `ab_glyph`, which loads no system fonts: we register DejaVu Sans (its
/// licence is in harness/assets/) as the family every plot uses.
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
pub fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Write `plot` as `<dir>/<stem>.png` and `<dir>/<stem>.svg`, each atomically (temp + rename).
pub fn save(dir: &Path, stem: &str, plot: &impl Plot) -> Result<()> {
    ensure_font()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let failed = |what: &str, e: String| Error::Model(format!("plot {stem}.{what}: {e}"));

    let png = dir.join(format!("{stem}.png"));
    // The bitmap backend picks its encoder from the extension, so the temp name ends in .png.
    let tmp = dir.join(format!(".{stem}.tmp-{}.png", std::process::id()));
    {
        let root = BitMapBackend::new(&tmp, plot.size()).into_drawing_area();
        root.fill(&WHITE).map_err(|e| failed("png", err(e)))?;
        plot.draw(&root).map_err(|e| failed("png", e))?;
        root.present().map_err(|e| failed("png", err(e)))?;
    }
    std::fs::rename(&tmp, &png).map_err(|e| Error::io(&png, e))?;

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

/// A tick label on a log axis: whole numbers without decimals, small ones without trailing zeros.
pub fn tick_number(v: f64) -> String {
    let s = short_number(v);
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
    }
}
