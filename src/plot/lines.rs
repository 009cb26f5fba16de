//! Line figures: labelled curves with a legend (loss curves, radial profiles, errors and moments
//! against time), alone or as small multiples.

use super::{check_size, draw_msg, render, text_font, tick_formatter, titled, Area, PlotError, TITLE_BAND};
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use std::path::Path;

/// Line pattern of a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Stroke {
    #[default]
    Solid,
    Dashed,
}

/// One labelled curve.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub stroke: Stroke,
    /// Mark every point with a dot.
    pub markers: bool,
    /// Fixed colour; `None` picks the next colour of the palette.
    pub color: Option<(u8, u8, u8)>,
}

impl Series {
    pub fn new(label: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Self { label: label.into(), x, y, stroke: Stroke::Solid, markers: false, color: None }
    }
    pub fn dashed(mut self) -> Self {
        self.stroke = Stroke::Dashed;
        self
    }
    pub fn markers(mut self) -> Self {
        self.markers = true;
        self
    }
    pub fn color(mut self, rgb: (u8, u8, u8)) -> Self {
        self.color = Some(rgb);
        self
    }
}

/// One chart of [`grid_of_lines`].
#[derive(Clone, Debug)]
pub struct LinePlot<'a> {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: &'a [Series],
    pub log_y: bool,
}

/// Colour-blind-friendly palette (Okabe–Ito, then a few more).
const PALETTE: [(u8, u8, u8); 10] = [
    (0, 114, 178),
    (213, 94, 0),
    (0, 158, 115),
    (204, 121, 167),
    (230, 159, 0),
    (86, 180, 233),
    (0, 0, 0),
    (240, 228, 66),
    (127, 127, 127),
    (148, 103, 189),
];

/// Size of a single-chart figure, pixels.
const SIZE: (u32, u32) = (900, 600);

/// Draw `series` into one PNG chart at `path` (900×600 pixels).
///
/// Points with a non-finite coordinate (or y ≤ 0 when `log_y`) are masked: the curve is broken
/// there. It is an error if no series has a drawable point or a series' x and y lengths differ.
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> Result<(), PlotError> {
    let plot = LinePlot { title: String::new(), x_label: x_label.into(), y_label: y_label.into(), series, log_y };
    let bounds = bounds(path, &plot)?;
    render(path, SIZE, |root| {
        let body = titled(root, title)?;
        draw_plot(&body, &plot, bounds)
    })
}

/// Draw several charts as small multiples, `cols` per row, each `panel_size` pixels, under a
/// common `title`. Masking and errors as in [`lines`], per chart.
pub fn grid_of_lines(
    path: &Path,
    title: &str,
    plots: &[LinePlot],
    cols: usize,
    panel_size: (u32, u32),
) -> Result<(), PlotError> {
    if plots.is_empty() {
        return Err(PlotError::data(path, "no charts to draw"));
    }
    let all_bounds = plots.iter().map(|p| bounds(path, p)).collect::<Result<Vec<_>, _>>()?;
    let cols = cols.clamp(1, plots.len());
    let rows = plots.len().div_ceil(cols);
    check_size(path, panel_size, rows, cols)?;
    let band = if title.is_empty() { 0 } else { TITLE_BAND };
    let size = (cols as u32 * panel_size.0, rows as u32 * panel_size.1 + band);
    render(path, size, |root| {
        let body = titled(root, title)?;
        for ((plot, b), area) in plots.iter().zip(all_bounds).zip(body.split_evenly((rows, cols)).iter()) {
            draw_plot(area, plot, b)?;
        }
        Ok(())
    })
}

/// Whether a point can be drawn.
fn drawable(x: f64, y: f64, log_y: bool) -> bool {
    x.is_finite() && y.is_finite() && (!log_y || y > 0.0)
}

/// Axis ranges `(x0, x1, y0, y1)` covering every drawable point.
fn bounds(path: &Path, plot: &LinePlot) -> Result<(f64, f64, f64, f64), PlotError> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for s in plot.series {
        if s.x.len() != s.y.len() {
            return Err(PlotError::data(
                path,
                format!("series '{}' has {} x values but {} y values", s.label, s.x.len(), s.y.len()),
            ));
        }
        for (&x, &y) in s.x.iter().zip(&s.y).filter(|(&x, &y)| drawable(x, y, plot.log_y)) {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    if x0 > x1 {
        let what = if plot.log_y { "no finite positive values for a log axis" } else { "no finite values" };
        let chart = if plot.title.is_empty() { String::new() } else { format!("chart '{}': ", plot.title) };
        return Err(PlotError::data(path, format!("{chart}{what}")));
    }
    if x0 == x1 {
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    }
    if plot.log_y {
        // Whole decades, widened by a hair so the end decades get their tick labels.
        let (e0, e1) = (y0.log10().floor(), y1.log10().ceil());
        let e1 = if e1 > e0 { e1 } else { e0 + 1.0 };
        y0 = 10f64.powf(e0) * (1.0 - 1e-9);
        y1 = 10f64.powf(e1) * (1.0 + 1e-9);
    } else if y0 == y1 {
        let pad = if y0 == 0.0 { 1.0 } else { 0.1 * y0.abs() };
        (y0, y1) = (y0 - pad, y1 + pad);
    } else {
        let pad = 0.05 * (y1 - y0);
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    Ok((x0, x1, y0, y1))
}

fn draw_plot(area: &Area, plot: &LinePlot, (x0, x1, y0, y1): (f64, f64, f64, f64)) -> Result<(), String> {
    let mut builder = ChartBuilder::on(area);
    builder.margin(12).margin_right(24).x_label_area_size(48).y_label_area_size(78);
    if !plot.title.is_empty() {
        builder.caption(&plot.title, super::title_font(17));
    }
    let spans = (x1 - x0, if plot.log_y { 0.0 } else { y1 - y0 });
    if plot.log_y {
        let chart = builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale()).map_err(draw_msg)?;
        draw_series(chart, plot, spans)
    } else {
        let chart = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(draw_msg)?;
        draw_series(chart, plot, spans)
    }
}

fn draw_series<'a, DB, Y>(
    mut chart: ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    plot: &LinePlot,
    (x_span, y_span): (f64, f64),
) -> Result<(), String>
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let (x_ticks, y_ticks) = (tick_formatter(x_span), tick_formatter(y_span));
    chart
        .configure_mesh()
        .x_labels(8)
        .y_labels(8)
        .x_label_formatter(&x_ticks)
        .y_label_formatter(&y_ticks)
        .x_desc(plot.x_label.as_str())
        .y_desc(plot.y_label.as_str())
        .label_style(text_font(14))
        .axis_desc_style(text_font(16))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()
        .map_err(draw_msg)?;
    for (n, s) in plot.series.iter().enumerate() {
        let (r, g, b) = s.color.unwrap_or(PALETTE[n % PALETTE.len()]);
        let color = RGBColor(r, g, b);
        let style = color.stroke_width(2);
        // Drawable runs of consecutive points.
        let points: Vec<Option<(f64, f64)>> =
            s.x.iter().zip(&s.y).map(|(&x, &y)| drawable(x, y, plot.log_y).then_some((x, y))).collect();
        for run in points.split(|p| p.is_none()).filter(|r| !r.is_empty()) {
            let run = run.iter().map(|p| p.expect("drawable"));
            match s.stroke {
                Stroke::Solid => {
                    chart.draw_series(LineSeries::new(run.clone(), style)).map_err(draw_msg)?;
                }
                Stroke::Dashed => {
                    chart.draw_series(DashedLineSeries::new(run.clone(), 8, 5, style)).map_err(draw_msg)?;
                }
            }
            if s.markers {
                chart.draw_series(run.map(|p| Circle::new(p, 3, color.filled()))).map_err(draw_msg)?;
            }
        }
        // Legend entry (an empty series carrying the label).
        let dashed = s.stroke == Stroke::Dashed;
        let markers = s.markers;
        chart
            .draw_series(LineSeries::new(std::iter::empty::<(f64, f64)>(), style))
            .map_err(draw_msg)?
            .label(s.label.as_str())
            .legend(move |(x, y)| {
                // A 22-pixel line, with a gap when dashed and a dot when marked.
                let (end, start) = if dashed { (8, 14) } else { (11, 11) };
                let dot =
                    ShapeStyle { color: color.mix(if markers { 1.0 } else { 0.0 }), filled: true, stroke_width: 0 };
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (end, 0)], style)
                    + PathElement::new(vec![(start, 0), (22, 0)], style)
                    + Circle::new((11, 0), 3, dot)
            });
    }
    if plot.series.iter().any(|s| !s.label.is_empty()) {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font(text_font(14))
            .draw()
            .map_err(draw_msg)?;
    }
    Ok(())
}
