//! Colour scales of heatmaps: sequential (viridis) and diverging (blue–white–red), with the
//! value range each one uses.

use plotters::style::RGBColor;

/// How values map to colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scale {
    /// Viridis, from the smallest to the largest value.
    #[default]
    Sequential,
    /// Blue–white–red, symmetric about zero (white at 0).
    Diverging,
}

/// Colour of masked (non-finite) cells.
pub(super) const MASKED: RGBColor = RGBColor(160, 160, 160);

/// Viridis (matplotlib) at ten equally spaced points.
const VIRIDIS: [(u8, u8, u8); 10] = [
    (0x44, 0x01, 0x54),
    (0x48, 0x28, 0x78),
    (0x3e, 0x49, 0x89),
    (0x31, 0x68, 0x8e),
    (0x26, 0x82, 0x8e),
    (0x1f, 0x9e, 0x89),
    (0x35, 0xb7, 0x79),
    (0x6e, 0xce, 0x58),
    (0xb5, 0xde, 0x2b),
    (0xfd, 0xe7, 0x25),
];

/// ColorBrewer RdBu (11 classes), blue for negative values.
const BLUE_WHITE_RED: [(u8, u8, u8); 11] = [
    (0x05, 0x30, 0x61),
    (0x21, 0x66, 0xac),
    (0x43, 0x93, 0xc3),
    (0x92, 0xc5, 0xde),
    (0xd1, 0xe5, 0xf0),
    (0xf7, 0xf7, 0xf7),
    (0xfd, 0xdb, 0xc7),
    (0xf4, 0xa5, 0x82),
    (0xd6, 0x60, 0x4d),
    (0xb2, 0x18, 0x2b),
    (0x67, 0x00, 0x1f),
];

impl Scale {
    /// Colour at position `t ∈ [0, 1]` of the scale (clamped), linearly interpolated.
    pub(super) fn color(self, t: f64) -> RGBColor {
        let table: &[(u8, u8, u8)] = match self {
            Scale::Sequential => &VIRIDIS,
            Scale::Diverging => &BLUE_WHITE_RED,
        };
        let t = if t.is_nan() { 0.5 } else { t.clamp(0.0, 1.0) };
        let x = t * (table.len() - 1) as f64;
        let i = (x.floor() as usize).min(table.len() - 2);
        let w = x - i as f64;
        let mix = |a: u8, b: u8| (a as f64 + w * (b as f64 - a as f64)).round() as u8;
        let (a, b) = (table[i], table[i + 1]);
        RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }

    /// Colour range for finite `values`: min–max (sequential) or ±max|v| (diverging); widened
    /// when degenerate. `None` when there is no finite value.
    pub(super) fn range(self, values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if lo > hi {
            return None;
        }
        Some(match self {
            Scale::Sequential if lo == hi => {
                let pad = if lo == 0.0 { 1.0 } else { 0.05 * lo.abs() };
                (lo - pad, hi + pad)
            }
            Scale::Sequential => (lo, hi),
            Scale::Diverging => {
                let m = lo.abs().max(hi.abs());
                let m = if m > 0.0 { m } else { 1.0 };
                (-m, m)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_middle_and_ranges() {
        assert_eq!(Scale::Sequential.color(0.0), RGBColor(0x44, 0x01, 0x54));
        assert_eq!(Scale::Sequential.color(2.0), RGBColor(0xfd, 0xe7, 0x25));
        assert_eq!(Scale::Diverging.color(0.5), RGBColor(0xf7, 0xf7, 0xf7));
        assert_eq!(Scale::Diverging.range([-1.0, 3.0, f64::NAN].into_iter()), Some((-3.0, 3.0)));
        assert_eq!(Scale::Sequential.range([2.0, 5.0, f64::INFINITY].into_iter()), Some((2.0, 5.0)));
        assert_eq!(Scale::Sequential.range([f64::NAN].into_iter()), None);
        assert_eq!(Scale::Sequential.range([0.0, 0.0].into_iter()), Some((-1.0, 1.0)));
    }
}
