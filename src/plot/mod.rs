//! PNG figures drawn by colop itself: coefficient maps, profiles, loss curves, rollouts.
//!
//! Generic building blocks: [`heatmaps`] (fields on the velocity grid with colour bars),
//! [`planes`] (central slices and marginals of fields on 3D grids, as 2D fields) and
//! [`lines`] / [`grid_of_lines`] (labelled curves with legends). Text is set in DejaVu Sans, read
//! at run time from [`FONT_PATH`] (Debian package `fonts-dejavu-core`); without it plotting
//! fails with a clear error rather than drawing figures without text. Figures are rendered into
//! an RGB buffer, encoded as PNG and written atomically.
//!
//! Non-finite values are *masked*, never drawn as numbers: heatmap cells show in grey, curves are
//! broken at the point (and, on a log axis, at values ≤ 0). A panel or figure with no drawable
//! value at all is a [`PlotError::Data`].

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::OnceLock;

mod colormap;
mod heatmap;
mod lines;
pub mod figures;
pub mod planes;
pub mod sets;

pub use colormap::Scale;
pub use heatmap::{heatmaps, Layout, Panel};
pub use lines::{grid_of_lines, lines, LinePlot, Series, Stroke};

/// The TrueType font every figure is set in.
pub const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// Bold face for titles; optional (the regular face is used without it).
const BOLD_FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf";
/// Family name the font is registered under.
const FAMILY: &str = "sans-serif";

/// Why a figure could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("font {path}: {msg} (install the fonts-dejavu-core package)")]
    Font { path: String, msg: String },
    #[error("{path}: {msg}")]
    Data { path: String, msg: String },
    #[error("{path}: drawing failed: {msg}")]
    Draw { path: String, msg: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl PlotError {
    pub(crate) fn data(path: &Path, msg: impl Into<String>) -> Self {
        PlotError::Data { path: path.display().to_string(), msg: msg.into() }
    }
}

/// Read a font file into memory that lives as long as the process (plotters keeps `'static`
/// references to registered fonts).
fn load_font(path: &Path) -> Result<&'static [u8], PlotError> {
    let bytes = std::fs::read(path)
        .map_err(|e| PlotError::Font { path: path.display().to_string(), msg: format!("cannot read: {e}") })?;
    Ok(Box::leak(bytes.into_boxed_slice()))
}

/// Register the figure font once per process.
pub fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<Result<(), (String, String)>> = OnceLock::new();
    let result = REGISTERED.get_or_init(|| {
        let as_parts = |e: PlotError| match e {
            PlotError::Font { path, msg } => (path, msg),
            other => (FONT_PATH.to_string(), other.to_string()),
        };
        let regular = load_font(Path::new(FONT_PATH)).map_err(as_parts)?;
        plotters::style::register_font(FAMILY, FontStyle::Normal, regular)
            .map_err(|_| (FONT_PATH.to_string(), "not a usable TrueType font".to_string()))?;
        if let Ok(bold) = load_font(Path::new(BOLD_FONT_PATH)) {
            let _ = plotters::style::register_font(FAMILY, FontStyle::Bold, bold);
        }
        Ok(())
    });
    result.clone().map_err(|(path, msg)| PlotError::Font { path, msg })
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Render a `width × height` figure with `draw` and write it to `path` as PNG, atomically.
fn render(
    path: &Path,
    (width, height): (u32, u32),
    draw: impl FnOnce(&Area) -> Result<(), String>,
) -> Result<(), PlotError> {
    ensure_font()?;
    let draw_err = |msg: String| PlotError::Draw { path: path.display().to_string(), msg };
    let mut rgb = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(e.to_string()))?;
        draw(&root).map_err(draw_err)?;
        root.present().map_err(|e| draw_err(e.to_string()))?;
    }
    let png = encode_png(&rgb, width, height).map_err(|e| draw_err(format!("PNG encoding: {e}")))?;
    crate::io::write_bytes_atomic(path, &png)
        .map_err(|source| PlotError::Io { path: path.display().to_string(), source })
}

fn encode_png(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

/// A plotters error as text.
fn draw_msg<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Tick labels of an axis spanning `span`: values within 1e-9·span of zero (round-off of the
/// tick arithmetic) read `0`.
fn tick_formatter(span: f64) -> impl Fn(&f64) -> String {
    move |v: &f64| if v.abs() <= 1e-9 * span.abs() { "0".to_string() } else { fmt_tick(v) }
}

/// Compact tick label: up to four significant digits, scientific outside [1e-3, 1e4).
fn fmt_tick(v: &f64) -> String {
    let v = *v;
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if (1e-3..1e4).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let s = format!("{v:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let s = format!("{v:.2e}");
        // 1.50e-4 → 1.5e-4, 1.00e5 → 1e5
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mantissa =
            if mantissa.contains('.') { mantissa.trim_end_matches('0').trim_end_matches('.') } else { mantissa };
        format!("{mantissa}e{exp}")
    }
}

/// Title, label and tick text styles.
fn title_font(size: u32) -> TextStyle<'static> {
    FontDesc::new(FontFamily::Name(FAMILY), size as f64, FontStyle::Bold).color(&BLACK)
}
fn text_font(size: u32) -> TextStyle<'static> {
    FontDesc::new(FontFamily::Name(FAMILY), size as f64, FontStyle::Normal).color(&BLACK)
}

/// Smallest panel that leaves room for axes, labels and a colour bar, pixels.
const MIN_PANEL: (u32, u32) = (240, 180);
/// Largest figure side, pixels (keeps the RGB buffer bounded).
const MAX_SIDE: u32 = 16384;

/// Reject panel sizes too small to draw into and figures too large to allocate.
fn check_size(path: &Path, panel: (u32, u32), rows: usize, cols: usize) -> Result<(), PlotError> {
    if panel.0 < MIN_PANEL.0 || panel.1 < MIN_PANEL.1 {
        return Err(PlotError::data(
            path,
            format!("panel size {}×{} is below the minimum {}×{} pixels", panel.0, panel.1, MIN_PANEL.0, MIN_PANEL.1),
        ));
    }
    let (w, h) = (panel.0 as u64 * cols as u64, panel.1 as u64 * rows as u64 + TITLE_BAND as u64);
    if w > MAX_SIDE as u64 || h > MAX_SIDE as u64 {
        return Err(PlotError::data(path, format!("figure of {w}×{h} pixels exceeds {MAX_SIDE} pixels per side")));
    }
    Ok(())
}

/// Height of the figure title band, pixels.
const TITLE_BAND: u32 = 44;

/// The part of `root` below a figure title.
fn titled<'a>(root: &Area<'a>, title: &str) -> Result<Area<'a>, String> {
    if title.is_empty() {
        return Ok(root.clone());
    }
    let (top, rest) = root.split_vertically(TITLE_BAND);
    let (w, _) = top.dim_in_pixel();
    let style = title_font(24).pos(plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Center,
    ));
    top.draw_text(title, &style, (w as i32 / 2, TITLE_BAND as i32 / 2)).map_err(draw_msg)?;
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::VelocityGrid;
    use ndarray::Array2;

    fn png_size(path: &Path) -> (u32, u32) {
        let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        (info.width, info.height)
    }

    fn field(grid: &VelocityGrid, f: impl Fn(f64, f64) -> f64) -> Array2<f64> {
        Array2::from_shape_fn((grid.nx, grid.ny), |(i, j)| f(grid.vx(i), grid.vy(j)))
    }

    #[test]
    fn tick_labels_are_compact() {
        assert_eq!(fmt_tick(&0.0), "0");
        assert_eq!(fmt_tick(&0.25), "0.25");
        assert_eq!(fmt_tick(&-1.5), "-1.5");
        assert_eq!(fmt_tick(&1234.0), "1234");
        assert_eq!(fmt_tick(&1.5e-4), "1.5e-4");
        assert_eq!(fmt_tick(&1e5), "1e5");
        assert_eq!(tick_formatter(0.03)(&3.47e-18), "0");
        assert_eq!(tick_formatter(0.03)(&-0.005), "-0.005");
    }

    #[test]
    fn missing_font_is_a_clear_error() {
        let err = load_font(Path::new("/nonexistent/font.ttf")).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/font.ttf") && err.contains("fonts-dejavu-core"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn heatmaps_have_layout_size_and_mask_non_finite_cells() {
        let dir = tempfile::tempdir().unwrap();
        let grid = VelocityGrid::square(31, 5.0).unwrap();
        let a = field(&grid, |x, y| x * (-(x * x + y * y) / 4.0).exp());
        let mut d = field(&grid, |x, y| 1.0 + 0.1 * (x * x + y * y));
        d[[3, 4]] = f64::NAN;
        d[[10, 10]] = f64::INFINITY;
        let panels = [
            Panel::new("A_x", a.view(), &grid, Scale::Diverging).units("v_th ω_p"),
            Panel::new("D_xx (masked cells)", d.view(), &grid, Scale::Sequential).units("v_th² ω_p"),
            Panel::new("D_xx fixed range", d.view(), &grid, Scale::Sequential).range(0.0, 10.0),
        ];
        let path = dir.path().join("maps.png");
        let layout = Layout { cols: 2, panel_size: (400, 340) };
        heatmaps(&path, "Coefficients", &panels, layout).unwrap();
        assert_eq!(png_size(&path), (800, 2 * 340 + TITLE_BAND));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");

        let nan = Array2::from_elem((31, 31), f64::NAN);
        let err =
            heatmaps(&path, "t", &[Panel::new("all NaN", nan.view(), &grid, Scale::Sequential)], layout).unwrap_err();
        assert!(matches!(err, PlotError::Data { .. }) && err.to_string().contains("maps.png"), "{err}");
        let wrong = Array2::zeros((30, 31));
        let err = heatmaps(&path, "t", &[Panel::new("p", wrong.view(), &grid, Scale::Sequential)], layout).unwrap_err();
        assert!(err.to_string().contains("30×31"), "{err}");
        let err = heatmaps(&path, "t", &[Panel::new("p", a.view(), &grid, Scale::Sequential).range(1.0, 1.0)], layout);
        assert!(err.is_err());
        let tiny = Layout { cols: 1, panel_size: (0, 0) };
        let err = heatmaps(&path, "t", &[Panel::new("p", a.view(), &grid, Scale::Sequential)], tiny).unwrap_err();
        assert!(err.to_string().contains("minimum"), "{err}");
    }

    #[test]
    fn lines_mask_non_finite_points_and_reject_empty_data() {
        let dir = tempfile::tempdir().unwrap();
        let x: Vec<f64> = (0..50).map(|i| i as f64).collect();
        let y1: Vec<f64> = x.iter().map(|&x| (-x / 10.0).exp()).collect();
        let mut y2: Vec<f64> = x.iter().map(|&x| 0.5 * (-x / 20.0).exp()).collect();
        y2[10] = f64::NAN;
        y2[20] = -1.0; // not drawable on a log axis
        let series = [Series::new("stage 1", x.clone(), y1), Series::new("stage 2", x.clone(), y2).dashed().markers()];
        let path = dir.path().join("loss.png");
        lines(&path, "Loss", "epoch", "loss", &series, true).unwrap();
        assert_eq!(png_size(&path), (900, 600));
        lines(&path, "Loss", "epoch", "loss", &series, false).unwrap();

        let bad = [Series::new("nan", x.clone(), vec![f64::NAN; 50])];
        let err = lines(&path, "t", "x", "y", &bad, false).unwrap_err();
        assert!(matches!(err, PlotError::Data { .. }), "{err}");
        let err = lines(&path, "t", "x", "y", &[Series::new("short", x.clone(), vec![1.0; 3])], false).unwrap_err();
        assert!(err.to_string().contains("short"), "{err}");

        let plots = [
            LinePlot {
                title: "a".into(),
                x_label: "t [1/ω_p]".into(),
                y_label: "n".into(),
                series: &series,
                log_y: false,
            },
            LinePlot {
                title: "b".into(),
                x_label: "t [1/ω_p]".into(),
                y_label: "n".into(),
                series: &series,
                log_y: true,
            },
            LinePlot {
                title: "c".into(),
                x_label: "t [1/ω_p]".into(),
                y_label: "n".into(),
                series: &series[..1],
                log_y: false,
            },
        ];
        let path = dir.path().join("grid.png");
        grid_of_lines(&path, "Small multiples", &plots, 2, (420, 300)).unwrap();
        assert!(grid_of_lines(&path, "t", &plots, 2, (10, 10)).is_err());
        assert!(grid_of_lines(&path, "t", &plots, 2, (100_000, 300)).is_err());
        assert_eq!(png_size(&path), (840, 600 + TITLE_BAND));
    }

    /// Example figures for eyeballing: `cargo test --release --lib plot::tests::examples -- --ignored`
    /// writes them to `$TMPDIR/colop-plot-examples`.
    #[test]
    #[ignore]
    fn examples() {
        let dir = std::env::temp_dir().join("colop-plot-examples");
        let grid = VelocityGrid::square(51, 5.0).unwrap();
        let r2 = |x: f64, y: f64| x * x + y * y;
        let ax = field(&grid, |x, y| -x * (1.0 - (-r2(x, y) / 2.0).exp()) / r2(x, y).max(1e-9) * 0.02);
        let ay = field(&grid, |x, y| -y * (1.0 - (-r2(x, y) / 2.0).exp()) / r2(x, y).max(1e-9) * 0.02);
        let dxx = field(&grid, |x, y| 0.01 * (1.0 + x * x) / (1.0 + r2(x, y)).powf(1.5));
        let dyy = field(&grid, |x, y| 0.01 * (1.0 + y * y) / (1.0 + r2(x, y)).powf(1.5));
        let dxy = field(&grid, |x, y| 0.01 * x * y / (1.0 + r2(x, y)).powf(1.5));
        let mut f = field(&grid, |x, y| (-r2(x - 1.0, y) / 2.0).exp() / (2.0 * std::f64::consts::PI));
        f[[0, 0]] = f64::NAN;
        let panels = [
            Panel::new("A_x", ax.view(), &grid, Scale::Diverging).units("v_th ω_p"),
            Panel::new("A_y", ay.view(), &grid, Scale::Diverging).units("v_th ω_p"),
            Panel::new("f (one masked cell)", f.view(), &grid, Scale::Sequential),
            Panel::new("D_xx", dxx.view(), &grid, Scale::Sequential).units("v_th² ω_p"),
            Panel::new("D_yy", dyy.view(), &grid, Scale::Sequential).units("v_th² ω_p"),
            Panel::new("D_xy", dxy.view(), &grid, Scale::Diverging).units("v_th² ω_p"),
        ];
        heatmaps(&dir.join("coefficients.png"), "Learned operator — par-perp, 51×51", &panels, Layout::default())
            .unwrap();

        let epochs: Vec<f64> = (0..300).map(|i| i as f64).collect();
        let stage = |scale: f64, rate: f64, floor: f64| {
            epochs.iter().map(|&e| floor + scale * (-e / rate).exp()).collect::<Vec<_>>()
        };
        let mut noisy = stage(0.05, 60.0, 2e-5);
        noisy[150] = f64::NAN;
        let series = [
            Series::new("stage 1 (unroll 1)", epochs.clone(), stage(1.0, 30.0, 1e-3)),
            Series::new("stage 2 (unroll 10)", epochs.clone(), stage(0.2, 40.0, 1e-4)),
            Series::new("stage 3 (unroll all)", epochs.clone(), noisy),
            Series::new(
                "validation",
                epochs.iter().step_by(20).copied().collect(),
                stage(0.2, 40.0, 3e-4).into_iter().step_by(20).collect(),
            )
            .dashed()
            .markers(),
        ];
        lines(&dir.join("loss.png"), "Training loss", "epoch", "loss (mean squared error)", &series, true).unwrap();

        let v: Vec<f64> = (0..26).map(|i| i as f64 * 0.2).collect();
        let profiles = [
            Series::new("learned A_∥", v.clone(), v.iter().map(|&v| -0.02 * v * (-v * v / 8.0).exp()).collect())
                .markers(),
            Series::new("theory A_∥", v.clone(), v.iter().map(|&v| -0.021 * v * (-v * v / 8.5).exp()).collect())
                .dashed(),
            Series::new("learned D_∥", v.clone(), v.iter().map(|&v| 0.01 / (1.0 + v * v)).collect()).markers(),
            Series::new("theory D_∥", v.clone(), v.iter().map(|&v| 0.0105 / (1.0 + v * v)).collect()).dashed(),
        ];
        lines(
            &dir.join("profiles.png"),
            "Radial profiles",
            "|v| [v_th]",
            "coefficient [v_th ω_p, v_th² ω_p]",
            &profiles,
            false,
        )
        .unwrap();
        let plots = [
            LinePlot {
                title: "loss".into(),
                x_label: "epoch".into(),
                y_label: "loss".into(),
                series: &series,
                log_y: true,
            },
            LinePlot {
                title: "profiles".into(),
                x_label: "|v| [v_th]".into(),
                y_label: "value".into(),
                series: &profiles,
                log_y: false,
            },
        ];
        grid_of_lines(&dir.join("multiples.png"), "Small multiples", &plots, 2, (560, 400)).unwrap();
    }
}
