//! Property tests of the slot-major, vectorised [`ExactSum`] against the original
//! implementation ([`super::reference`]), bit for bit, on every instruction-set path this CPU
//! offers: random operation sequences (vector, slice and single-element additions, merges of
//! accumulators with different tops, `align_to`, `clear`, simulated MPI reductions) on values
//! spanning the whole f64 range (±0, subnormals, ±∞, NaN, repeated top raises), lengths that
//! are not multiples of any vector width; and `to_f64` of random windows (cancellation, ties,
//! subnormal and overflowing results, non-canonical digits).

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::reference::ExactSum as Reference;
use super::{ExactSum, SimdLevel, BINS, EMPTY, FORCED_LEVEL};

/// Every path this CPU can run.
fn levels() -> Vec<SimdLevel> {
    #[allow(unused_mut)]
    let mut levels = vec![SimdLevel::Portable];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            levels.push(SimdLevel::Avx2);
        }
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
        {
            levels.push(SimdLevel::Avx512);
        }
    }
    levels
}

/// Run `f` with the element loops forced to `level` on this thread.
fn at_level<R>(level: SimdLevel, f: impl FnOnce() -> R) -> R {
    FORCED_LEVEL.with(|c| c.set(Some(level)));
    let result = f();
    FORCED_LEVEL.with(|c| c.set(None));
    result
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The new and the reference accumulator, driven in lockstep.
#[derive(Clone)]
struct Pair {
    new: ExactSum,
    old: Reference,
}

impl Pair {
    fn new(n: usize) -> Self {
        Pair { new: ExactSum::new(n), old: Reference::new(n) }
    }

    fn check(&self, context: &str) {
        let (tops, digits, flags) = self.new.logical_state();
        let (ref_tops, ref_digits, ref_flags) = self.old.logical_state();
        assert_eq!(tops, ref_tops, "{context}: tops");
        for (i, (d, r)) in digits.iter().zip(&ref_digits).enumerate() {
            assert_eq!(d, r, "{context}: bins of element {i} (top {})", tops[i]);
        }
        assert_eq!(flags, ref_flags, "{context}: flags");
        assert_eq!(self.new.has_flags(), self.old.has_flags(), "{context}: has_flags");
        assert_eq!(self.new.adds(), self.old.adds(), "{context}: adds");
        assert_eq!(self.new.len(), self.old.len());
        assert_eq!(self.new.reduction_bytes(), self.old.reduction_bytes());
        // An element that has only seen zeros keeps zero bins (the conversion relies on it).
        let n = self.new.len();
        for (i, &top) in self.new.tops.iter().enumerate() {
            if top == EMPTY {
                assert!((0..BINS).all(|s| self.new.bins[s * n + i] == 0), "{context}: EMPTY element {i} has bins");
            }
        }
        let (got, want) = (self.new.to_f64(), self.old.to_f64());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{context}: to_f64 of element {i}: {g:e} vs {w:e} (top {})", tops[i]);
        }
    }

    fn add(&mut self, x: &[f64]) {
        self.new.add(x);
        self.old.add(x);
    }

    fn add_slice_at(&mut self, offset: usize, x: &[f64]) {
        self.new.add_slice_at(offset, x);
        self.old.add_slice_at(offset, x);
    }

    fn add_at(&mut self, i: usize, v: f64) {
        self.new.add_at(i, v);
        self.old.add_at(i, v);
    }

    fn merge(&mut self, other: &Pair) {
        self.new.merge(&other.new);
        self.old.merge(&other.old);
    }

    fn align_to(&mut self, tops: &[i32]) {
        self.new.align_to(tops);
        self.old.align_to(tops);
    }

    fn clear(&mut self) {
        self.new.clear();
        self.old.clear();
    }
}

/// What `MpiComm::allreduce_exact` does, over simulated ranks, for both implementations.
fn allreduce(ranks: &mut [Pair]) {
    let n = ranks[0].new.len();
    let size = ranks.len() as u64;
    // New implementation.
    let tops: Vec<i32> = (0..n).map(|i| ranks.iter().map(|r| r.new.tops()[i]).max().unwrap()).collect();
    let max_adds = ranks.iter().map(|r| r.new.adds()).max().unwrap();
    let any_flags = ranks.iter().any(|r| r.new.has_flags());
    let mut sum = vec![0i64; ranks[0].new.bins_mut().len()];
    for r in ranks.iter_mut() {
        r.new.align_to(&tops);
        for (s, b) in sum.iter_mut().zip(r.new.bins_mut().iter()) {
            *s += b;
        }
    }
    let flags: Vec<u8> =
        (0..n).map(|i| ranks.iter().map(|r| r.new.flags_or_zeros()[i]).fold(0, |a, b| a | b)).collect();
    for r in ranks.iter_mut() {
        r.new.bins_mut().copy_from_slice(&sum);
        r.new.set_adds(max_adds * size);
        if any_flags {
            r.new.set_flags(flags.clone());
        }
    }
    // Reference.
    let tops: Vec<i32> = (0..n).map(|i| ranks.iter().map(|r| r.old.tops()[i]).max().unwrap()).collect();
    let mut sum = vec![0i64; ranks[0].old.bins_mut().len()];
    for r in ranks.iter_mut() {
        r.old.align_to(&tops);
        for (s, b) in sum.iter_mut().zip(r.old.bins_mut().iter()) {
            *s += b;
        }
    }
    let flags: Vec<u8> =
        (0..n).map(|i| ranks.iter().map(|r| r.old.flags_or_zeros()[i]).fold(0, |a, b| a | b)).collect();
    for r in ranks.iter_mut() {
        r.old.bins_mut().copy_from_slice(&sum);
        r.old.set_adds(max_adds * size);
        if any_flags {
            r.old.set_flags(flags.clone());
        }
    }
}

/// How the values of one element are drawn.
#[derive(Clone, Copy)]
struct Profile {
    /// Biased exponent around which the element's values lie.
    exponent: i32,
    /// Spread of the exponent (bits).
    spread: i32,
    /// Exponent added per addition (repeated top raises when positive).
    drift: i32,
}

struct Gen {
    rng: ChaCha8Rng,
    /// Share of ±∞/NaN addends.
    specials: f64,
}

impl Gen {
    fn profile(&mut self) -> Profile {
        let rng = &mut self.rng;
        let exponent = match rng.gen_range(0..10) {
            0 => rng.gen_range(0..64),      // subnormals and the smallest normals
            1 => rng.gen_range(1980..2047), // near the largest
            _ => rng.gen_range(0..2047),
        };
        let spread = *[0, 1, 20, 43, 64, 100, 300, 2100].choose(rng).unwrap();
        let drift = if rng.gen_bool(0.2) { rng.gen_range(0..70) } else { 0 };
        Profile { exponent, spread, drift }
    }

    /// One addend of an element with `profile`, at addition number `step`.
    fn value(&mut self, profile: Profile, step: i32) -> f64 {
        let rng = &mut self.rng;
        let sign = (rng.gen_bool(0.5) as u64) << 63;
        let r: f64 = rng.gen();
        if r < self.specials {
            return *[f64::INFINITY, f64::NEG_INFINITY, f64::NAN].choose(rng).unwrap();
        }
        if r < 0.06 {
            return f64::from_bits(sign); // ±0
        }
        if r < 0.09 {
            return f64::from_bits(sign | rng.gen_range(1..1u64 << 52)); // subnormal
        }
        if r < 0.11 {
            // Integers near 2^53 (ties in the final rounding).
            let v = (9007199254740992.0 + rng.gen_range(-4..8) as f64) * 0.5f64.powi(rng.gen_range(0..3));
            return if sign != 0 { -v } else { v };
        }
        let exponent = if r < 0.2 {
            rng.gen_range(0..2047)
        } else {
            let e = profile.exponent + profile.drift * step + rng.gen_range(-profile.spread..=profile.spread);
            e.clamp(0, 2046)
        };
        let fraction: u64 = match rng.gen_range(0..4) {
            0 => 0,
            1 => (1 << 52) - 1,
            _ => rng.gen_range(0..1 << 52),
        };
        f64::from_bits(sign | (exponent as u64) << 52 | fraction)
    }

    fn vector(&mut self, profiles: &[Profile], step: i32) -> Vec<f64> {
        profiles.iter().map(|&p| self.value(p, step)).collect()
    }

    /// A length that is often not a multiple of any vector width or chunk.
    fn len(&mut self) -> usize {
        *[1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 63, 64, 65, 100, 127, 129, 200, 333].choose(&mut self.rng).unwrap()
    }

    /// Targets for `align_to`: unchanged, a little or far higher, lower, EMPTY.
    fn align_targets(&mut self, tops: &[i32]) -> Vec<i32> {
        tops.iter()
            .map(|&t| match self.rng.gen_range(0..6) {
                0 => t,
                1 if t != EMPTY => (t + self.rng.gen_range(1..6)).min(65),
                2 => self.rng.gen_range(1..=65),
                3 => EMPTY,
                4 if t != EMPTY => t - self.rng.gen_range(0..3),
                _ => t,
            })
            .collect()
    }

    /// A pair after a few random additions of its own (other tops than the accumulator it is
    /// merged into).
    fn side_pair(&mut self, n: usize, profiles: &[Profile]) -> Pair {
        let mut pair = Pair::new(n);
        let own: Vec<Profile> =
            profiles.iter().map(|&p| if self.rng.gen_bool(0.5) { p } else { self.profile() }).collect();
        for step in 0..self.rng.gen_range(0..6) {
            let x = self.vector(&own, step);
            if self.rng.gen_bool(0.7) {
                pair.add(&x);
            } else {
                let offset = self.rng.gen_range(0..n);
                let len = self.rng.gen_range(0..=n - offset);
                pair.add_slice_at(offset, &x[offset..offset + len]);
            }
        }
        pair
    }
}

/// One random sequence of operations, checked after every step.
fn random_sequence(seed: u64, level: SimdLevel) {
    let mut g = Gen { rng: ChaCha8Rng::seed_from_u64(seed), specials: 0.0 };
    g.specials = if g.rng.gen_bool(0.3) { 0.01 } else { 0.0 };
    let n = g.len();
    let mut profiles: Vec<Profile> = (0..n).map(|_| g.profile()).collect();
    let mut acc = Pair::new(n);
    at_level(level, || {
        for step in 0..g.rng.gen_range(1..40) {
            let context = format!("seed {seed}, {level:?}, n {n}, step {step}");
            match g.rng.gen_range(0..100) {
                0..=39 => {
                    let x = g.vector(&profiles, step);
                    acc.add(&x);
                }
                40..=59 => {
                    let offset = g.rng.gen_range(0..n);
                    let len = g.rng.gen_range(0..=n - offset);
                    let x = g.vector(&profiles[offset..offset + len], step);
                    acc.add_slice_at(offset, &x);
                }
                60..=69 => {
                    let i = g.rng.gen_range(0..n);
                    let v = g.value(profiles[i], step);
                    acc.add_at(i, v);
                }
                70..=79 => {
                    let other = g.side_pair(n, &profiles);
                    other.check(&format!("{context}, side"));
                    if g.rng.gen_bool(0.5) {
                        acc.merge(&other);
                    } else {
                        let mut other = other;
                        other.merge(&acc);
                        acc = other;
                    }
                }
                80..=84 => {
                    acc.clear();
                    if g.rng.gen_bool(0.5) {
                        profiles = (0..n).map(|_| g.profile()).collect();
                    }
                }
                85..=92 => {
                    let targets = g.align_targets(acc.new.tops());
                    acc.align_to(&targets);
                }
                _ => {
                    let size = g.rng.gen_range(1..=4);
                    let mut ranks: Vec<Pair> = (1..size).map(|_| g.side_pair(n, &profiles)).collect();
                    ranks.insert(g.rng.gen_range(0..size), acc.clone());
                    allreduce(&mut ranks);
                    for (r, rank) in ranks.iter().enumerate() {
                        rank.check(&format!("{context}, rank {r} of {size}"));
                    }
                    acc = ranks.swap_remove(g.rng.gen_range(0..size));
                }
            }
            acc.check(&context);
        }
    });
}

#[test]
fn random_operations_match_the_reference_on_every_path() {
    for level in levels() {
        for seed in 0..600 {
            random_sequence(seed, level);
        }
    }
}

#[test]
fn every_path_gives_the_same_state() {
    // A long vector (many chunks, some raising, some not) through every path: identical
    // internal state, including the raw bins.
    let mut g = Gen { rng: ChaCha8Rng::seed_from_u64(99), specials: 0.001 };
    let n = 5 * 51 * 51;
    let profiles: Vec<Profile> = (0..n).map(|_| g.profile()).collect();
    let vectors: Vec<Vec<f64>> = (0..12).map(|step| g.vector(&profiles, step)).collect();
    let states: Vec<ExactSum> = levels()
        .into_iter()
        .map(|level| {
            at_level(level, || {
                let mut acc = ExactSum::new(n);
                let mut other = ExactSum::new(n);
                for (k, v) in vectors.iter().enumerate() {
                    if k % 3 == 0 {
                        other.add(v)
                    } else {
                        acc.add(v)
                    }
                }
                acc.merge(&other);
                acc
            })
        })
        .collect();
    let mut reference = Reference::new(n);
    for v in &vectors {
        reference.add(v);
    }
    for s in &states {
        assert_eq!(s, &states[0]);
        assert_eq!(s.logical_state(), reference.logical_state());
        assert_eq!(bits(&s.to_f64()), bits(&reference.to_f64()));
    }
}

/// A window whose value is a random 53-bit significand at a random place, with a random round
/// bit and sticky bits (ties when the round bit is set and the sticky bits are zero), written as
/// non-negative 32-bit digits, then optionally negated and de-normalised (carries moved between
/// digits, leaving the value unchanged).
fn crafted_digits(rng: &mut impl Rng) -> [i64; BINS] {
    let shift = rng.gen_range(0..=73u32);
    let mantissa = (1u128 << 52) | rng.gen_range(0..1u128 << 52);
    let mut value = mantissa << (shift + 2);
    if rng.gen_bool(0.5) {
        value |= 1 << (shift + 1); // round bit
    }
    if shift > 0 && rng.gen_bool(0.5) {
        value |= rng.gen_range(0..1u128 << shift); // sticky bits
    }
    let mut digits: [i64; BINS] = std::array::from_fn(|k| ((value >> (32 * k)) & 0xffff_ffff) as i64);
    if rng.gen_bool(0.5) {
        digits = digits.map(|d| -d);
    }
    for _ in 0..rng.gen_range(0..4) {
        let k = rng.gen_range(0..BINS - 1);
        let c = rng.gen_range(-1000..1000);
        digits[k] += c << 32;
        digits[k + 1] -= c;
    }
    digits
}

fn random_digit(rng: &mut impl Rng) -> i64 {
    // The largest |bin| allowed: MAX_ADDS slices of at most 2^32 − 1.
    let max = (ExactSum::MAX_ADDS as i64) * 0xffff_ffff;
    match rng.gen_range(0..8) {
        0 => 0,
        1 => rng.gen_range(-(1 << 32)..1 << 32),
        2 => rng.gen_range(-(1 << 40)..1 << 40),
        3 => rng.gen_range(-(1 << 62)..1 << 62),
        4 => *[max, -max, max - 1, -max + 1].choose(rng).unwrap(),
        5 => *[-1, 1, 0xffff_ffff, -0xffff_ffff, 1 << 32, -(1 << 32)].choose(rng).unwrap(),
        _ => rng.gen_range(-max..=max),
    }
}

#[test]
fn to_f64_of_random_windows_matches_the_reference() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let levels = levels();
    for trial in 0..4000 {
        let n = rng.gen_range(1..70);
        let mut tops = Vec::with_capacity(n);
        let mut digits = Vec::with_capacity(n);
        for _ in 0..n {
            let top = match rng.gen_range(0..10) {
                0 => EMPTY,
                1 | 2 => rng.gen_range(1..=5), // subnormal and smallest normal results
                3 => rng.gen_range(60..=65),   // overflow to ±∞
                _ => rng.gen_range(1..=65),
            };
            tops.push(top);
            let mut d = if top == EMPTY {
                [0; BINS]
            } else if rng.gen_bool(0.4) {
                crafted_digits(&mut rng)
            } else {
                let mut d: [i64; BINS] = std::array::from_fn(|_| random_digit(&mut rng));
                if rng.gen_bool(0.2) {
                    d[3] = *[0, -1, 1].choose(&mut rng).unwrap(); // cancellation below the top
                }
                d
            };
            // Bins below 0 (bits below 2^-1074) never receive anything.
            for (k, digit) in d.iter_mut().enumerate() {
                if top != EMPTY && top - BINS as i32 + 1 + (k as i32) < 0 {
                    *digit = 0;
                }
            }
            digits.push(d);
        }
        let flags = rng.gen_bool(0.1).then(|| (0..n).map(|_| *[0u8, 0, 0, 1, 2, 4, 6, 3].choose(&mut rng).unwrap()).collect::<Vec<u8>>());
        let want = bits(&Reference::from_logical(&tops, &digits, flags.clone()).to_f64());
        for &level in &levels {
            let acc = ExactSum::from_logical(&tops, &digits, flags.clone());
            let got = at_level(level, || bits(&acc.to_f64()));
            for i in 0..n {
                assert_eq!(
                    got[i], want[i],
                    "trial {trial}, {level:?}, element {i}: top {}, digits {:?}: {:e} vs {:e}",
                    tops[i], digits[i], f64::from_bits(got[i]), f64::from_bits(want[i])
                );
            }
        }
    }
}

#[test]
fn top_raises_by_every_distance() {
    // One element raised by 0..=6 bins at a time, with values left in every slot.
    for level in levels() {
        at_level(level, || {
            for distance in 0..=6 {
                for start in [0, 1, 31, 32, 33, 500, 1900] {
                    let mut pair = Pair::new(3);
                    let mut exponent = start;
                    while exponent <= 2046 {
                        let v = f64::from_bits((exponent as u64) << 52 | 0x000f_0f0f_0f0f_0f0f);
                        pair.add(&[v, -v * 0.75, f64::from_bits(1)]);
                        pair.add(&[v * 0.5, 0.0, -0.0]);
                        pair.check(&format!("{level:?}, distance {distance}, start {start}, exponent {exponent}"));
                        exponent += 32 * distance + 1;
                    }
                }
            }
        });
    }
}
