//! Test-only copy of the original `ExactSum` (commit a2567d9, before the slot-major rewrite),
//! kept as the reference that the property tests in `exact.rs` compare the fast implementation
//! with, bit for bit. Its bookkeeping (element-major ring, per-value carries) is the original
//! code; its rounding is the original 256-bit rounding, which the fast implementation still has
//! as [`super::exact_value`] and which is called here rather than copied. Do not optimise this
//! file.
#![allow(dead_code)]

/// Bits per bin.
pub const BIN_BITS: u32 = 32;
/// Bins kept per element (a power of two: bins live in a ring indexed by `bin % BINS`).
pub const BINS: usize = 4;
const MASK: usize = BINS - 1;
/// Top of an element that has only seen zeros.
const EMPTY: i32 = i32::MIN;

const FLAG_NAN: u8 = 1;
const FLAG_POS_INF: u8 = 2;
const FLAG_NEG_INF: u8 = 4;

/// Accumulates f64 vectors so that the total does not depend on the order or grouping of the
/// additions, nor on how they are split over ranks. See the module documentation for the
/// precision guarantee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExactSum {
    /// `BINS` bins per element; bin `b` of element `i` lives at `bins[i * BINS + b % BINS]`.
    bins: Vec<i64>,
    /// Highest bin index per element ([`EMPTY`] while only zeros were added).
    tops: Vec<i32>,
    /// Non-finite flags per element; empty until the first non-finite addend.
    flags: Vec<u8>,
    /// Number of `add` calls folded in (merged accumulators add up).
    adds: u64,
}

/// Sign, lowest bit position (in units of 2⁻¹⁰⁷⁴) and 53-bit integer mantissa of a finite,
/// non-zero f64.
#[inline(always)]
fn decompose(bits: u64) -> (bool, u32, u64) {
    let exponent = ((bits >> 52) & 0x7ff) as u32;
    let fraction = bits & ((1u64 << 52) - 1);
    let negative = bits >> 63 != 0;
    if exponent == 0 {
        (negative, 0, fraction)
    } else {
        (negative, exponent - 1, fraction | (1u64 << 52))
    }
}

impl ExactSum {
    /// Largest number of additions (summed over every merged accumulator) for which the bins
    /// cannot overflow.
    pub const MAX_ADDS: u64 = (1u64 << 31) - 1;

    pub fn new(len: usize) -> Self {
        Self { bins: vec![0; len * BINS], tops: vec![EMPTY; len], flags: Vec::new(), adds: 0 }
    }

    pub fn len(&self) -> usize {
        self.tops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tops.is_empty()
    }

    /// Number of additions folded in so far (over merges; after an MPI reduction an upper bound,
    /// ranks × the largest local count). Only used to guard against bin overflow.
    pub fn adds(&self) -> u64 {
        self.adds
    }

    fn count_add(&mut self, n: u64) {
        self.adds += n;
        assert!(
            self.adds <= Self::MAX_ADDS,
            "ExactSum: more than {} additions would overflow its bins",
            Self::MAX_ADDS
        );
    }

    /// Add `x` (same length) exactly.
    pub fn add(&mut self, x: &[f64]) {
        assert_eq!(x.len(), self.len(), "ExactSum::add: length mismatch");
        self.count_add(1);
        for (i, &v) in x.iter().enumerate() {
            self.add_value(i, v);
        }
    }

    /// Add `value` to element `index` exactly (counts as one addition).
    pub fn add_at(&mut self, index: usize, value: f64) {
        self.count_add(1);
        self.add_value(index, value);
    }

    /// Add `x` exactly to elements `offset..offset + x.len()` (counts as one addition).
    pub fn add_slice_at(&mut self, offset: usize, x: &[f64]) {
        assert!(offset + x.len() <= self.len(), "ExactSum::add_slice_at: out of range");
        self.count_add(1);
        for (i, &v) in x.iter().enumerate() {
            self.add_value(offset + i, v);
        }
    }

    #[inline(always)]
    fn add_value(&mut self, i: usize, v: f64) {
        let bits = v.to_bits();
        if bits << 1 == 0 {
            return; // ±0
        }
        if (bits >> 52) & 0x7ff == 0x7ff {
            self.add_special(i, v);
            return;
        }
        let (negative, low, mantissa) = decompose(bits);
        let high_bin = ((low + 52) / BIN_BITS) as i32;
        if high_bin > self.tops[i] {
            self.raise_top(i, high_bin);
        }
        let top = self.tops[i];
        let first_bin = (low / BIN_BITS) as i32;
        let wide = (mantissa as u128) << (low % BIN_BITS);
        let sign = -(negative as i64); // 0 or −1: (v ^ sign) − sign negates when −1
        let bins = &mut self.bins[i * BINS..(i + 1) * BINS];
        // Three 32-bit slices cover the ≤ 85-bit shifted mantissa. Slices above `high_bin` are
        // zero (harmless wherever they land); slices below the window are dropped.
        for k in 0..3 {
            let bin = first_bin + k;
            let keep = (bin + BINS as i32 > top) as i64;
            let slice = ((wide >> (32 * k)) & 0xffff_ffff) as i64 * keep;
            bins[bin as usize & MASK] += (slice ^ sign) - sign;
        }
    }

    #[cold]
    fn add_special(&mut self, i: usize, v: f64) {
        if self.flags.is_empty() {
            self.flags = vec![0; self.len()];
        }
        self.flags[i] |= if v.is_nan() {
            FLAG_NAN
        } else if v > 0.0 {
            FLAG_POS_INF
        } else {
            FLAG_NEG_INF
        };
    }

    /// Move element `i`'s window up so that its top bin is `new_top`, dropping the bins that
    /// fall out of it.
    #[inline]
    fn raise_top(&mut self, i: usize, new_top: i32) {
        let old_top = self.tops[i];
        if new_top <= old_top {
            return;
        }
        let bins = &mut self.bins[i * BINS..(i + 1) * BINS];
        if old_top == EMPTY || (new_top as i64 - old_top as i64) >= BINS as i64 {
            bins.fill(0);
        } else {
            // Bins old_top-BINS+1 ..= new_top-BINS leave; their ring slots become the new bins.
            for bin in (old_top + 1)..=new_top {
                bins[bin as usize & MASK] = 0;
            }
        }
        self.tops[i] = new_top;
    }

    /// Fold `other` (same length) into `self`; the result is as if every addition made to
    /// `other` had been made to `self`.
    pub fn merge(&mut self, other: &ExactSum) {
        assert_eq!(other.len(), self.len(), "ExactSum::merge: length mismatch");
        self.count_add(other.adds);
        for i in 0..self.len() {
            let other_top = other.tops[i];
            if other_top == EMPTY {
                continue;
            }
            self.raise_top(i, other_top);
            let top = self.tops[i];
            let src = &other.bins[i * BINS..(i + 1) * BINS];
            let dst = &mut self.bins[i * BINS..(i + 1) * BINS];
            for bin in (other_top - BINS as i32 + 1)..=other_top {
                if bin + BINS as i32 > top {
                    let slot = bin as usize & MASK;
                    dst[slot] += src[slot];
                }
            }
        }
        if !other.flags.is_empty() {
            if self.flags.is_empty() {
                self.flags = vec![0; self.len()];
            }
            for (a, b) in self.flags.iter_mut().zip(&other.flags) {
                *a |= b;
            }
        }
    }

    /// Reset to zero, keeping the length.
    pub fn clear(&mut self) {
        self.bins.fill(0);
        self.tops.fill(EMPTY);
        self.flags.clear();
        self.adds = 0;
    }

    /// The sum, correctly rounded to f64 (nearest, ties to even).
    pub fn to_f64(&self) -> Vec<f64> {
        (0..self.len()).map(|i| self.element_to_f64(i)).collect()
    }

    fn element_to_f64(&self, i: usize) -> f64 {
        if let Some(&flag) = self.flags.get(i) {
            if flag & FLAG_NAN != 0 || flag & (FLAG_POS_INF | FLAG_NEG_INF) == FLAG_POS_INF | FLAG_NEG_INF {
                return f64::NAN;
            } else if flag & FLAG_POS_INF != 0 {
                return f64::INFINITY;
            } else if flag & FLAG_NEG_INF != 0 {
                return f64::NEG_INFINITY;
            }
        }
        let top = self.tops[i];
        if top == EMPTY {
            return 0.0;
        }
        let bottom = top - BINS as i32 + 1;
        let bins = &self.bins[i * BINS..(i + 1) * BINS];
        super::exact_value(bottom, std::array::from_fn(|k| bins[(bottom + k as i32) as usize & MASK]))
    }

    /// Bytes sent by one rank in [`crate::dist::Comm::allreduce_exact`] (bins + tops).
    pub fn reduction_bytes(&self) -> usize {
        self.bins.len() * 8 + self.tops.len() * 4
    }
}

/// The raw state an allreduce over ranks needs (used by the MPI communicator).
impl ExactSum {
    /// Per-element top bins (reduced by MAX over ranks before the bins are summed).
    pub(crate) fn tops(&self) -> &[i32] {
        &self.tops
    }

    /// Raise every element to at least `tops` (a MAX over ranks), so that all ranks' bins line up
    /// slot for slot and can be summed as integers.
    pub(crate) fn align_to(&mut self, tops: &[i32]) {
        assert_eq!(tops.len(), self.len());
        for (i, &t) in tops.iter().enumerate() {
            self.raise_top(i, t);
        }
    }

    pub(crate) fn bins_mut(&mut self) -> &mut [i64] {
        &mut self.bins
    }

    pub(crate) fn flags_or_zeros(&self) -> Vec<u8> {
        if self.flags.is_empty() {
            vec![0; self.len()]
        } else {
            self.flags.clone()
        }
    }

    pub(crate) fn has_flags(&self) -> bool {
        !self.flags.is_empty()
    }

    pub(crate) fn set_flags(&mut self, flags: Vec<u8>) {
        self.flags = flags;
    }

    pub(crate) fn set_adds(&mut self, adds: u64) {
        self.adds = 0;
        self.count_add(adds);
    }
}

impl ExactSum {
    /// Per element: the top and the window's bins from the lowest to the top (zeros for an
    /// element that has only seen zeros), and the flags (zeros if none).
    pub(crate) fn logical_state(&self) -> (Vec<i32>, Vec<[i64; BINS]>, Vec<u8>) {
        let digits = (0..self.len())
            .map(|i| {
                let top = self.tops[i];
                std::array::from_fn(|k| {
                    if top == EMPTY {
                        0
                    } else {
                        self.bins[i * BINS + (top - BINS as i32 + 1 + k as i32) as usize % BINS]
                    }
                })
            })
            .collect();
        (self.tops.clone(), digits, self.flags_or_zeros())
    }
}

impl ExactSum {
    /// An accumulator in the given logical state (see [`ExactSum::logical_state`]).
    pub(crate) fn from_logical(tops: &[i32], digits: &[[i64; BINS]], flags: Option<Vec<u8>>) -> Self {
        let mut acc = ExactSum::new(tops.len());
        for (i, (&top, d)) in tops.iter().zip(digits).enumerate() {
            acc.tops[i] = top;
            if top != EMPTY {
                for (k, &v) in d.iter().enumerate() {
                    acc.bins[i * BINS + (top - BINS as i32 + 1 + k as i32) as usize % BINS] = v;
                }
            }
        }
        acc.flags = flags.unwrap_or_default();
        acc
    }
}
