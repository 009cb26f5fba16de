//! The clamp `f ← max(f, 0)` of the explicit schemes and its adjoint: the forward pass records
//! where `f ≥ 0` held as a bit mask (bit `c % 64` of word `c / 64`), the adjoint passes λ through
//! those cells only (as PyTorch's clamp does).
//!
//! These run once per solver step over every state, so they are vectorised: with AVX2 the
//! forward packs four comparison bits at a time (`vcmppd` + `vmovmskpd`, which compilers do not
//! find on their own) and the adjoint expands them with a variable shift. Values are clamped by
//! `f64::max` on every path (an unconditional `vmaxpd` and store: written as a select, the
//! compiler turns it into masked stores of the zeros, which are microcoded and slow on AMD).

/// `f ← max(f, 0)`.
pub(crate) fn clamp_nonnegative(f: &mut [f64]) {
    crate::simd_dispatch!(nonnegative_k(f));
}

/// `f ← max(f, 0)`, recording in `mask` where `f ≥ 0` held: where the clamp passes its adjoint.
pub(crate) fn clamp_recording(f: &mut [f64], mask: &mut [u64]) {
    assert!(mask.len() >= f.len().div_ceil(64), "clamp: mask too short");
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { recording_avx2(f, mask) };
    }
    recording_plain(f, mask)
}

/// `lam_masked = lam` where the recorded bit is set, else 0 (see [`clamp_recording`]).
pub(crate) fn apply_mask(mask: &[u64], lam: &[f64], lam_masked: &mut [f64]) {
    crate::simd_dispatch!(apply_mask_k(mask, lam, lam_masked));
}

/// `lam_masked = lam` where `pre ≥ 0` (the clamp passes), else 0.
pub(crate) fn clamp_mask(pre: &[f64], lam: &[f64], lam_masked: &mut [f64]) {
    crate::simd_dispatch!(clamp_mask_k(pre, lam, lam_masked));
}

#[inline(always)]
fn nonnegative(f: &mut [f64]) {
    for v in f.iter_mut() {
        *v = v.max(0.0);
    }
}

/// The bits of up to 64 values, `f` clamped in place.
#[inline(always)]
fn record_chunk(chunk: &mut [f64]) -> u64 {
    let mut bits = 0u64;
    for (i, v) in chunk.iter().enumerate() {
        bits |= u64::from(*v >= 0.0) << i;
    }
    nonnegative(chunk);
    bits
}

fn recording_plain(f: &mut [f64], mask: &mut [u64]) {
    for (chunk, word) in f.chunks_mut(64).zip(mask.iter_mut()) {
        *word = record_chunk(chunk);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn recording_avx2(f: &mut [f64], mask: &mut [u64]) {
    use std::arch::x86_64::*;
    let zero = _mm256_setzero_pd();
    let mut chunks = f.chunks_exact_mut(64);
    let mut words = mask.iter_mut();
    for (chunk, word) in (&mut chunks).zip(&mut words) {
        let mut bits = 0u64;
        for (q, quad) in chunk.chunks_exact(4).enumerate() {
            // SAFETY: `quad` is 4 contiguous f64 (an unaligned load).
            unsafe {
                let kept = _mm256_cmp_pd::<_CMP_GE_OQ>(_mm256_loadu_pd(quad.as_ptr()), zero);
                bits |= (_mm256_movemask_pd(kept) as u64) << (4 * q);
            }
        }
        *word = bits;
        nonnegative(chunk);
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        *words.next().expect("mask covers f") = record_chunk(rest);
    }
}

#[inline(always)]
fn apply_mask_lines(mask: &[u64], lam: &[f64], lam_masked: &mut [f64]) {
    for ((out, l), &word) in lam_masked.chunks_mut(64).zip(lam.chunks(64)).zip(mask) {
        let l = &l[..out.len()];
        for i in 0..out.len() {
            // All ones where the bit is set: λ passes bit for bit, else +0.
            let m = 0u64.wrapping_sub((word >> i) & 1);
            out[i] = f64::from_bits(l[i].to_bits() & m);
        }
    }
}

#[inline(always)]
fn clamp_mask_lines(pre: &[f64], lam: &[f64], lam_masked: &mut [f64]) {
    for ((m, &l), &p) in lam_masked.iter_mut().zip(lam).zip(pre) {
        *m = if p >= 0.0 { l } else { 0.0 };
    }
}

crate::simd_kernel!(nonnegative_k, nonnegative, (f: &mut [f64]));
crate::simd_kernel!(apply_mask_k, apply_mask_lines, (mask: &[u64], lam: &[f64], lam_masked: &mut [f64]));
crate::simd_kernel!(clamp_mask_k, clamp_mask_lines, (pre: &[f64], lam: &[f64], lam_masked: &mut [f64]));

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize) -> Vec<f64> {
        let special = [0.0, -0.0, f64::NAN, -1e-300, 1e-300, f64::INFINITY, f64::NEG_INFINITY];
        (0..n).map(|i| if i % 11 == 3 { special[(i / 11) % special.len()] } else { ((i as f64) * 0.37).sin() }).collect()
    }

    #[test]
    fn vector_and_plain_clamps_agree_bit_for_bit() {
        for n in [0, 1, 63, 64, 65, 130, 2601] {
            let f0 = values(n);
            let (mut a, mut b) = (f0.clone(), f0.clone());
            let (mut ma, mut mb) = (vec![0u64; n.div_ceil(64)], vec![0u64; n.div_ceil(64)]);
            clamp_recording(&mut a, &mut ma);
            recording_plain(&mut b, &mut mb);
            assert_eq!(ma, mb, "n = {n}");
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "n = {n}");
            for (c, (&x, &y)) in f0.iter().zip(&a).enumerate() {
                let kept = (ma[c / 64] >> (c % 64)) & 1 == 1;
                assert_eq!(kept, x >= 0.0, "cell {c}");
                assert_eq!(y.to_bits(), x.max(0.0).to_bits(), "cell {c}: {x} → {y}");
                assert!(if kept { y == x } else { y.to_bits() == 0 }, "cell {c}: {x} → {y}");
            }
            let mut c = f0.clone();
            clamp_nonnegative(&mut c);
            assert_eq!(bits(&c), bits(&a));
            // The adjoint: the recorded mask and the recomputed comparison pass the same λ.
            let lam: Vec<f64> = (0..n).map(|i| i as f64 - 7.5).collect();
            let (mut la, mut lb, mut lc) = (vec![9.0; n], vec![9.0; n], vec![9.0; n]);
            apply_mask(&ma, &lam, &mut la);
            apply_mask_k::plain(&ma, &lam, &mut lb);
            clamp_mask(&f0, &lam, &mut lc);
            assert_eq!(bits(&la), bits(&lb));
            assert_eq!(bits(&la), bits(&lc));
            for (i, (&l, &o)) in lam.iter().zip(&la).enumerate() {
                assert_eq!(o.to_bits(), if f0[i] >= 0.0 { l.to_bits() } else { 0 });
            }
        }
    }
}
