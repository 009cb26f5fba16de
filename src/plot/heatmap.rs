//! Heatmap figures: panels of fields on the velocity grid (v_x horizontal, v_y vertical, or the
//! two axes of any other plane, see [`Panel::axes`]), each with its own colour bar.

use super::colormap::{Scale, MASKED};
use super::{check_size, draw_msg, render, text_font, tick_formatter, title_font, titled, Area, PlotError, TITLE_BAND};
use crate::grid::VelocityGrid;
use ndarray::ArrayView2;
use plotters::prelude::*;
use std::path::Path;

/// One field `[nx, ny]` on a two-dimensional velocity grid (for a plane of a 3D grid, the plane's
/// own grid: [`super::planes::Plane::grid`]).
#[derive(Clone, Debug)]
pub struct Panel<'a> {
    pub title: String,
    pub data: ArrayView2<'a, f64>,
    pub grid: &'a VelocityGrid,
    /// Names of the horizontal and vertical axes (default `v_x`, `v_y`); the grid's units follow.
    pub axes: [String; 2],
    pub scale: Scale,
    /// Unit of the values, shown in the panel title (e.g. `v_th² ω_p`); empty for none.
    pub units: String,
    /// Fixed colour range (e.g. shared between panels); `None` takes it from the data.
    pub range: Option<(f64, f64)>,
}

impl<'a> Panel<'a> {
    pub fn new(title: impl Into<String>, data: ArrayView2<'a, f64>, grid: &'a VelocityGrid, scale: Scale) -> Self {
        Self { title: title.into(), data, grid, scale, axes: ["v_x".into(), "v_y".into()], units: String::new(), range: None }
    }
    /// Names of the horizontal and vertical axes (e.g. `v_x`, `v_z` for the plane v_y = 0).
    pub fn axes(mut self, horizontal: impl Into<String>, vertical: impl Into<String>) -> Self {
        self.axes = [horizontal.into(), vertical.into()];
        self
    }
    /// Unit of the values.
    pub fn units(mut self, units: impl Into<String>) -> Self {
        self.units = units.into();
        self
    }
    /// Fixed colour range `lo < hi`.
    pub fn range(mut self, lo: f64, hi: f64) -> Self {
        self.range = Some((lo, hi));
        self
    }
}

/// Arrangement of panels: `cols` per row (0: up to three), each `panel_size` pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub cols: usize,
    pub panel_size: (u32, u32),
}

impl Default for Layout {
    fn default() -> Self {
        Self { cols: 0, panel_size: (440, 380) }
    }
}

impl Layout {
    /// `cols` panels per row at the default panel size.
    pub fn columns(cols: usize) -> Self {
        Self { cols, ..Self::default() }
    }
    fn grid_for(&self, n: usize) -> (usize, usize) {
        let cols = if self.cols == 0 { n.clamp(1, 3) } else { self.cols.min(n.max(1)) };
        (n.div_ceil(cols).max(1), cols)
    }
}

/// Width of a colour bar with its tick labels, pixels.
const BAR_WIDTH: u32 = 96;
/// Height of the axis-label band below each map, pixels.
const X_LABELS: u32 = 44;
const MARGIN: u32 = 8;

/// Draw `panels` into one PNG at `path` with a figure `title`.
///
/// The figure is `cols·w × rows·h` pixels (plus a title band when `title` is not empty).
/// Non-finite cells are masked in grey; a panel whose data has the wrong shape, no finite value,
/// or an invalid fixed range is an error.
pub fn heatmaps(path: &Path, title: &str, panels: &[Panel], layout: Layout) -> Result<(), PlotError> {
    if panels.is_empty() {
        return Err(PlotError::data(path, "no panels to draw"));
    }
    let mut ranges = Vec::with_capacity(panels.len());
    for p in panels {
        let (nx, ny) = p.data.dim();
        if (nx, ny) != p.grid.shape() {
            return Err(PlotError::data(
                path,
                format!("panel '{}' has shape {nx}×{ny}, its grid is {}×{}", p.title, p.grid.nx, p.grid.ny),
            ));
        }
        let range = match p.range {
            Some((lo, hi)) if lo.is_finite() && hi.is_finite() && lo < hi => (lo, hi),
            Some((lo, hi)) => {
                return Err(PlotError::data(
                    path,
                    format!("panel '{}': colour range [{lo}, {hi}] is not finite and increasing", p.title),
                ))
            }
            None => p
                .scale
                .range(p.data.iter().copied())
                .ok_or_else(|| PlotError::data(path, format!("panel '{}' has no finite values", p.title)))?,
        };
        ranges.push(range);
    }
    let (rows, cols) = layout.grid_for(panels.len());
    check_size(path, layout.panel_size, rows, cols)?;
    let (w, h) = layout.panel_size;
    let band = if title.is_empty() { 0 } else { TITLE_BAND };
    let size = (cols as u32 * w, rows as u32 * h + band);
    render(path, size, |root| {
        let body = titled(root, title)?;
        let cells = body.split_evenly((rows, cols));
        for ((panel, range), area) in panels.iter().zip(&ranges).zip(&cells) {
            draw_panel(area, panel, *range)?;
        }
        Ok(())
    })
}

fn draw_panel(area: &Area, panel: &Panel, (lo, hi): (f64, f64)) -> Result<(), String> {
    let title = if panel.units.is_empty() { panel.title.clone() } else { format!("{} [{}]", panel.title, panel.units) };
    let area = area.titled(&title, title_font(17)).map_err(draw_msg)?;
    let (w, _) = area.dim_in_pixel();
    let (map_area, bar_area) = area.split_horizontally(w.saturating_sub(BAR_WIDTH));
    let g = panel.grid;
    let [x0, x1, y0, y1] = g.v_range;
    let (x_ticks, y_ticks, bar_ticks) = (tick_formatter(x1 - x0), tick_formatter(y1 - y0), tick_formatter(hi - lo));
    let mut chart = ChartBuilder::on(&map_area)
        .margin(MARGIN)
        .x_label_area_size(X_LABELS)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(draw_msg)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(7)
        .y_labels(7)
        .x_label_formatter(&x_ticks)
        .y_label_formatter(&y_ticks)
        .x_desc(format!("{} [{}]", panel.axes[0], g.units))
        .y_desc(format!("{} [{}]", panel.axes[1], g.units))
        .label_style(text_font(13))
        .axis_desc_style(text_font(15))
        .draw()
        .map_err(draw_msg)?;
    let (dx, dy) = (g.dvx(), g.dvy());
    let color = |v: f64| if v.is_finite() { panel.scale.color((v - lo) / (hi - lo)) } else { MASKED };
    chart
        .draw_series(panel.data.indexed_iter().map(|((i, j), &v)| {
            let (cx, cy) = (x0 + i as f64 * dx, y0 + j as f64 * dy);
            Rectangle::new([(cx, cy), (cx + dx, cy + dy)], color(v).filled())
        }))
        .map_err(draw_msg)?;
    // Frame the map.
    chart.plotting_area().draw(&Rectangle::new([(x0, y0), (x1, y1)], BLACK.stroke_width(1))).map_err(draw_msg)?;

    // Colour bar aligned with the map's plotting area.
    let mut bar = ChartBuilder::on(&bar_area)
        .margin_top(MARGIN)
        .margin_bottom(MARGIN + X_LABELS)
        .margin_left(4)
        .margin_right(4)
        .set_label_area_size(LabelAreaPosition::Right, 70)
        .build_cartesian_2d(0.0..1.0, lo..hi)
        .map_err(draw_msg)?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(7)
        .y_label_formatter(&bar_ticks)
        .label_style(text_font(12))
        .draw()
        .map_err(draw_msg)?;
    const STRIPS: usize = 256;
    bar.draw_series((0..STRIPS).map(|k| {
        let v0 = lo + (hi - lo) * k as f64 / STRIPS as f64;
        let v1 = lo + (hi - lo) * (k + 1) as f64 / STRIPS as f64;
        Rectangle::new([(0.0, v0), (1.0, v1)], panel.scale.color((k as f64 + 0.5) / STRIPS as f64).filled())
    }))
    .map_err(draw_msg)?;
    bar.plotting_area().draw(&Rectangle::new([(0.0, lo), (1.0, hi)], BLACK.stroke_width(1))).map_err(draw_msg)?;
    Ok(())
}
