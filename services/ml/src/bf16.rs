//! Matrix products with bfloat16 inputs and float32 sums, on CPUs with AVX-512 BF16 (AMD Zen 4
//! and later, Intel Cooper Lake, Sapphire Rapids and later).
//!
//! What it is for: the CPU backend's mixed-precision training (see [`crate::model::Workspace`]).
//! The hidden layers' products of a training step — the bulk of its arithmetic — take their
//! inputs rounded to bfloat16 (8 bits of mantissa, float32's range) and sum in float32, which
//! `vdpbf16ps` does at twice the multiply-adds per cycle of float32 FMAs. Parameters, Adam's
//! moments, activations and every other sum stay float32, as in PyTorch's `autocast(bfloat16)`.
//!
//! Layout: an operand is packed once per product as pairs of consecutive inner-dimension
//! elements, each pair one `u32` (the element with the even index in the low half), because
//! `vdpbf16ps` multiplies such pairs and adds both products to a float32 lane. The left operand
//! ([`PackedA`]) keeps one pair per (row, pair index) at any strides; the right one
//! ([`PackedB`]) is cut into panels of [`NR`] columns, each panel's pairs for one pair index
//! adjacent (two 512-bit vectors), padded with zero columns.
//!
//! Determinism: a product's reduction runs in a fixed order on one thread; the same inputs give
//! the same bits on every CPU that has the instruction. The rounding is round-to-nearest-even,
//! the same in packing here and in the instruction's specification.
//!
//! Where the instruction is missing ([`available`] is false), nothing here runs: the caller
//! keeps float32 products.

use crate::cpu::Op;

/// Columns of one panel of a packed right operand: two 512-bit vectors of float32 sums.
pub const NR: usize = 32;
/// Rows of the output that one call of the microkernel computes (24 of the 32 vector
/// registers hold its sums).
const MR: usize = 12;
/// Pairs of the inner dimension per pass over a panel (the panel's pairs then fill 16 KiB, half
/// a Zen 4 core's L1 data cache).
const KC: usize = 128;

/// Whether this CPU runs the bfloat16 products.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x` rounded to the nearest bfloat16 (ties to even) as `vcvtneps2bf16` rounds: NaNs stay
/// (quiet) NaNs, and subnormal inputs count as zero (keeping their sign).
#[allow(clippy::cast_possible_truncation)] // the top 16 bits of a u32 fit a u16
#[inline]
pub fn round(x: f32) -> u16 {
    let bits = x.to_bits();
    if bits & 0x7fff_ffff > 0x7f80_0000 {
        return ((bits >> 16) | 0x40) as u16;
    }
    if bits & 0x7f80_0000 == 0 {
        return ((bits >> 16) & 0x8000) as u16;
    }
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// The float32 value of a bfloat16.
pub fn widen(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

#[inline]
fn pair(lo: f32, hi: f32) -> u32 {
    u32::from(round(lo)) | (u32::from(round(hi)) << 16)
}

/// A left operand (`m × k`) packed as bfloat16 pairs along `k`.
#[derive(Clone, Debug, Default)]
pub struct PackedA {
    m: usize,
    /// Pairs per row: `k` halved, rounded up (an odd `k`'s last pair has a zero high half).
    kp: usize,
    /// Where pair `p` of row `i` is: `data[i * rs + p * ps]`.
    rs: usize,
    ps: usize,
    data: Vec<u32>,
}

impl PackedA {
    /// Packs `op(a)`, `m × k`: `a` is stored `m×k` (`Op::N`) or `k×m` (`Op::T`), row-major.
    ///
    /// # Panics
    /// If `a` is shorter than `m·k` (a caller's bug).
    pub fn pack(&mut self, m: usize, k: usize, a: &[f32], op: Op) {
        assert!(a.len() >= m * k, "lhs holds {} < {m}×{k}", a.len());
        let kp = k.div_ceil(2);
        self.m = m;
        self.kp = kp;
        // Every element is written below: no need to clear it first.
        self.data.resize(m * kp, 0);
        if kp == 0 {
            return;
        }
        let vector = Vector::detect();
        match op {
            Op::N => {
                (self.rs, self.ps) = (kp, 1);
                for (dst, row) in self.data.chunks_exact_mut(kp).zip(a.chunks_exact(k)) {
                    pack_contiguous(vector, dst, row);
                }
            }
            Op::T => {
                // Pair p of every row comes from stored rows 2p and 2p + 1.
                (self.rs, self.ps) = (1, m);
                for (p, dst) in self.data.chunks_exact_mut(m.max(1)).enumerate() {
                    let lo = &a[2 * p * m..(2 * p + 1) * m];
                    if 2 * p + 1 < k {
                        let hi = &a[(2 * p + 1) * m..(2 * p + 2) * m];
                        pack_interleaved(vector, dst, lo, hi);
                    } else {
                        for (d, &x) in dst.iter_mut().zip(lo) {
                            *d = u32::from(round(x));
                        }
                    }
                }
            }
        }
    }
}

/// A right operand (`k × n`) packed as bfloat16 pairs along `k`, in panels of [`NR`] columns.
#[derive(Clone, Debug, Default)]
pub struct PackedB {
    n: usize,
    kp: usize,
    /// Panel `j`'s pair `p` of column `j·NR + c` is `data[(j · kp + p) · NR + c]`.
    data: Vec<u32>,
    /// One panel's columns packed as rows, before their transposition (`Op::T`).
    rows: Vec<u32>,
}

impl PackedB {
    /// Packs `op(b)`, `k × n`: `b` is stored `k×n` (`Op::N`) or `n×k` (`Op::T`), row-major.
    ///
    /// # Panics
    /// If `b` is shorter than `k·n` (a caller's bug).
    pub fn pack(&mut self, k: usize, n: usize, b: &[f32], op: Op) {
        assert!(b.len() >= k * n, "rhs holds {} < {k}×{n}", b.len());
        let kp = k.div_ceil(2);
        let panels = n.div_ceil(NR);
        // Padding columns are never written: they are zero from the last packing of the same
        // shape, or cleared here.
        if (self.n, self.kp) != (n, kp) {
            self.data.clear();
        }
        self.n = n;
        self.kp = kp;
        self.data.resize(panels * kp * NR, 0);
        if kp == 0 {
            return;
        }
        let vector = Vector::detect();
        match op {
            Op::N => {
                for p in 0..kp {
                    let lo = &b[2 * p * n..(2 * p + 1) * n];
                    let hi = (2 * p + 1 < k).then(|| &b[(2 * p + 1) * n..(2 * p + 2) * n]);
                    for j in 0..panels {
                        let cols = j * NR..((j + 1) * NR).min(n);
                        let w = cols.len();
                        let dst = &mut self.data[(j * kp + p) * NR..][..w];
                        match hi {
                            Some(hi) => pack_interleaved(vector, dst, &lo[cols.clone()], &hi[cols]),
                            None => {
                                for (d, &x) in dst.iter_mut().zip(&lo[cols]) {
                                    *d = u32::from(round(x));
                                }
                            }
                        }
                    }
                }
            }
            Op::T => {
                // Column c of op(b) is stored row c: its pairs are adjacent there. Each panel's
                // rows are packed as rows, then transposed (in L1) into the panel.
                let rows = &mut self.rows;
                rows.resize(NR * kp, 0);
                for (j, src) in b[..n * k].chunks(NR * k).enumerate() {
                    let width = src.len() / k;
                    for (dst, row) in rows.chunks_exact_mut(kp).zip(src.chunks_exact(k)) {
                        pack_contiguous(vector, dst, row);
                    }
                    let panel = &mut self.data[j * kp * NR..(j + 1) * kp * NR];
                    for (p, out) in panel.chunks_exact_mut(NR).enumerate() {
                        for (lane, o) in out[..width].iter_mut().enumerate() {
                            *o = rows[lane * kp + p];
                        }
                    }
                }
            }
        }
    }
}

/// Whether packing may use the vector instructions: [`available`], asked once per packed
/// operand rather than for each of its rows.
#[derive(Clone, Copy, Debug)]
struct Vector(bool);

impl Vector {
    fn detect() -> Vector {
        Vector(available())
    }
}

/// `dst[p]` = the pair (`src[2p]`, `src[2p + 1]`), zero past `src`'s end.
fn pack_contiguous(vector: Vector, dst: &mut [u32], src: &[f32]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if vector.0 {
        // SAFETY: `Vector::detect` found the CPU features.
        done = unsafe { x86::pack_contiguous(dst, src) };
    }
    let (dst, src) = (&mut dst[done / 2..], &src[done..]);
    let pairs = src.chunks_exact(2);
    let tail = pairs.remainder().first().copied();
    let full = pairs.len();
    for (d, p) in dst.iter_mut().zip(pairs) {
        *d = pair(p[0], p[1]);
    }
    if let (Some(x), Some(d)) = (tail, dst.get_mut(full)) {
        *d = u32::from(round(x));
    }
}

/// `dst[i]` = the pair (`lo[i]`, `hi[i]`).
fn pack_interleaved(vector: Vector, dst: &mut [u32], lo: &[f32], hi: &[f32]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if vector.0 {
        // SAFETY: `Vector::detect` found the CPU features.
        done = unsafe { x86::pack_interleaved(dst, lo, hi) };
    }
    let (dst, lo, hi) = (&mut dst[done..], &lo[done..], &hi[done..]);
    for ((d, &l), &h) in dst.iter_mut().zip(lo).zip(hi) {
        *d = pair(l, h);
    }
}

/// `c (m×n) = [c +] a · b`, row-major `c`, sums in float32.
///
/// # Panics
/// If the shapes disagree or `c` is too short (a caller's bug), or if [`available`] is false.
pub fn matmul(a: &PackedA, b: &PackedB, c: &mut [f32], accumulate: bool) {
    assert_eq!(a.kp, b.kp, "inner dimensions differ");
    let (m, n) = (a.m, b.n);
    assert!(c.len() >= m * n, "dst holds {} < {m}×{n}", c.len());
    assert!(available(), "bfloat16 products need AVX-512 BF16");
    if m == 0 || n == 0 {
        return;
    }
    if a.kp == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `available()` checked the CPU features the function is compiled for; the asserts
    // above bound every index it forms (see its comments).
    unsafe {
        x86::matmul(a, b, c, accumulate);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m256bh, __m256i, __m512, __m512bh, __m512i, _mm512_add_ps, _mm512_cvtepu16_epi32,
        _mm512_cvtne2ps_pbh, _mm512_cvtneps_pbh, _mm512_dpbf16_ps, _mm512_loadu_ps,
        _mm512_loadu_si512, _mm512_mask_loadu_ps, _mm512_mask_storeu_ps, _mm512_or_si512,
        _mm512_set1_epi32, _mm512_setzero_ps, _mm512_slli_epi32, _mm512_storeu_si512,
    };

    use super::{KC, MR, NR, PackedA, PackedB};

    /// `pack_contiguous` for the first multiple of 32 elements of `src` (as many as `dst`
    /// holds pairs for); returns how many elements it packed.
    ///
    /// # Safety
    /// AVX-512 F and BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn pack_contiguous(dst: &mut [u32], src: &[f32]) -> usize {
        let blocks = src.len().min(2 * dst.len()) / 32;
        for (d, x) in dst
            .chunks_exact_mut(16)
            .zip(src.chunks_exact(32))
            .take(blocks)
        {
            // SAFETY: 32 floats read from `x`, 16 u32 (the same 64 bytes) written to `d`.
            unsafe {
                let lo = _mm512_loadu_ps(x.as_ptr());
                let hi = _mm512_loadu_ps(x.as_ptr().add(16));
                let v = _mm512_cvtne2ps_pbh(hi, lo);
                _mm512_storeu_si512(
                    d.as_mut_ptr().cast(),
                    std::mem::transmute::<__m512bh, __m512i>(v),
                );
            }
        }
        blocks * 32
    }

    /// `pack_interleaved` for the first multiple of 16 elements; returns how many it packed.
    ///
    /// # Safety
    /// AVX-512 F and BF16.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn pack_interleaved(dst: &mut [u32], lo: &[f32], hi: &[f32]) -> usize {
        let blocks = dst.len().min(lo.len()).min(hi.len()) / 16;
        let parts = dst
            .chunks_exact_mut(16)
            .zip(lo.chunks_exact(16).zip(hi.chunks_exact(16)));
        for (d, (l, h)) in parts.take(blocks) {
            // SAFETY: 16 floats read from each of `l` and `h`, 16 u32 written to `d`.
            unsafe {
                let l = _mm512_cvtneps_pbh(_mm512_loadu_ps(l.as_ptr()));
                let h = _mm512_cvtneps_pbh(_mm512_loadu_ps(h.as_ptr()));
                let l = _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(l));
                let h = _mm512_cvtepu16_epi32(std::mem::transmute::<__m256bh, __m256i>(h));
                let v = _mm512_or_si512(l, _mm512_slli_epi32::<16>(h));
                _mm512_storeu_si512(d.as_mut_ptr().cast(), v);
            }
        }
        blocks * 16
    }

    /// # Safety
    /// The CPU has AVX-512 F and BF16; `a.kp == b.kp > 0`; `c` holds `a.m · b.n` elements.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn matmul(a: &PackedA, b: &PackedB, c: &mut [f32], accumulate: bool) {
        let (m, n, kp) = (a.m, b.n, a.kp);
        let cp = c.as_mut_ptr();
        for k0 in (0..kp).step_by(KC) {
            let kc = KC.min(kp - k0);
            let add = accumulate || k0 > 0;
            for j in 0..n.div_ceil(NR) {
                let cols = NR.min(n - j * NR);
                // Pair k0 of panel j: inside `b.data`, whose length is panels · kp · NR.
                let panel = b.data[(j * kp + k0) * NR..].as_ptr();
                let mut i = 0;
                while i < m {
                    let rows = MR.min(m - i);
                    // Row i's pair k0: i · rs + k0 · ps < m · kp = a.data.len().
                    let ap = a.data[i * a.rs + k0 * a.ps..].as_ptr();
                    let tile = Tile {
                        kc,
                        a: ap,
                        rs: a.rs,
                        ps: a.ps,
                        b: panel,
                        // SAFETY: row i, column j·NR of c (i < m, j·NR < n).
                        c: unsafe { cp.add(i * n + j * NR) },
                        ldc: n,
                        cols,
                        add,
                    };
                    // SAFETY: the tile's rows, pairs and columns lie inside a, b and c (above).
                    unsafe {
                        match rows {
                            12 => kernel::<12>(&tile),
                            11 => kernel::<11>(&tile),
                            10 => kernel::<10>(&tile),
                            9 => kernel::<9>(&tile),
                            8 => kernel::<8>(&tile),
                            7 => kernel::<7>(&tile),
                            6 => kernel::<6>(&tile),
                            5 => kernel::<5>(&tile),
                            4 => kernel::<4>(&tile),
                            3 => kernel::<3>(&tile),
                            2 => kernel::<2>(&tile),
                            _ => kernel::<1>(&tile),
                        }
                    }
                    i += rows;
                }
            }
        }
    }

    /// One microkernel call: `ROWS × cols` outputs over `kc` pairs.
    struct Tile {
        kc: usize,
        a: *const u32,
        rs: usize,
        ps: usize,
        b: *const u32,
        c: *mut f32,
        ldc: usize,
        cols: usize,
        add: bool,
    }

    /// # Safety
    /// AVX-512 F and BF16; `t.a` reaches `ROWS` rows × `t.kc` pairs at its strides, `t.b`
    /// `t.kc · NR` values, `t.c` `ROWS` rows of `t.cols` at stride `t.ldc`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    #[inline]
    unsafe fn kernel<const ROWS: usize>(t: &Tile) {
        let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
        for p in 0..t.kc {
            // SAFETY: pair p of the panel: two vectors of 16 u32 at (p · NR) and (p · NR + 16).
            let (b0, b1) = unsafe {
                let bp = t.b.add(p * NR);
                (
                    bh(_mm512_loadu_si512(bp.cast())),
                    bh(_mm512_loadu_si512(bp.add(16).cast())),
                )
            };
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: row r < ROWS, pair p < kc: inside the operand (the contract).
                let x = unsafe { *t.a.add(r * t.rs + p * t.ps) };
                #[allow(clippy::cast_possible_wrap)] // a bit pattern, not a number
                let x = bh(_mm512_set1_epi32(x as i32));
                acc[0] = _mm512_dpbf16_ps(acc[0], x, b0);
                acc[1] = _mm512_dpbf16_ps(acc[1], x, b1);
            }
        }
        let lanes = |from: usize| -> u16 {
            let w = t.cols.saturating_sub(from).min(16);
            if w == 16 { u16::MAX } else { (1u16 << w) - 1 }
        };
        let (m0, m1) = (lanes(0), lanes(16));
        for (r, acc) in acc.iter().enumerate() {
            // SAFETY: row r of the tile; the masks keep to its `cols` columns (the second half's
            // address may lie past c when its mask is empty, hence wrapping_add: never read).
            unsafe {
                let row = t.c.add(r * t.ldc);
                store(row, m0, acc[0], t.add);
                store(row.wrapping_add(16), m1, acc[1], t.add);
            }
        }
    }

    /// # Safety
    /// AVX-512 F; the lanes set in `mask` are writable floats from `p` on.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn store(p: *mut f32, mask: u16, v: __m512, add: bool) {
        if mask == 0 {
            return;
        }
        // SAFETY: masked lanes are neither read nor written (the contract covers the others).
        unsafe {
            let v = if add {
                _mm512_add_ps(_mm512_mask_loadu_ps(_mm512_setzero_ps(), mask, p), v)
            } else {
                v
            };
            _mm512_mask_storeu_ps(p, mask, v);
        }
    }

    #[inline]
    fn bh(v: __m512i) -> __m512bh {
        // SAFETY: both are 512 bits of plain data; every bit pattern is valid for either.
        unsafe { std::mem::transmute::<__m512i, __m512bh>(v) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn random(n: usize, rng: &mut Rng) -> Vec<f32> {
        (0..n)
            .map(|_| crate::cpu::f32_of(rng.f64() * 2.0 - 1.0))
            .collect()
    }

    /// op(a)·op(b) in f64 over the inputs rounded to bfloat16.
    fn reference(m: usize, n: usize, k: usize, a: &[f32], oa: Op, b: &[f32], ob: Op) -> Vec<f64> {
        let r = |x: f32| f64::from(widen(round(x)));
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| {
                        let x = if oa == Op::N {
                            a[i * k + p]
                        } else {
                            a[p * m + i]
                        };
                        let y = if ob == Op::N {
                            b[p * n + j]
                        } else {
                            b[j * k + p]
                        };
                        r(x) * r(y)
                    })
                    .sum();
            }
        }
        c
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(round(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
        assert_eq!(round(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up.
        assert_eq!(round(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(round(1.0 + 1.0 / 200.0), 0x3f81);
        assert_eq!(widen(round(-2.5)), -2.5);
        assert_eq!(widen(round(f32::INFINITY)), f32::INFINITY);
        assert!(widen(round(f32::NAN)).is_nan());
        assert!(widen(round(f32::from_bits(0x7f80_0001))).is_nan());
        // The largest float rounds to infinity, as in the instruction.
        assert_eq!(widen(round(f32::MAX)), f32::INFINITY);
    }

    /// The vector packing rounds every float32 — ties, subnormals, infinities, NaNs, random bit
    /// patterns — as the scalar code does.
    #[test]
    fn vector_packing_rounds_as_the_scalar_code() {
        let mut rng = Rng::new(3);
        let mut xs: Vec<f32> = [
            0.0,
            -0.0,
            1.0 + 1.0 / 256.0,
            1.0 + 3.0 / 256.0,
            f32::from_bits(1),
            -f32::from_bits(0x007f_ffff),
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::from_bits(0xff80_0001),
        ]
        .to_vec();
        #[allow(clippy::cast_possible_truncation)] // 32 random bits
        xs.extend((0..200).map(|_| f32::from_bits((rng.f64() * 4_294_967_296.0) as u32)));
        let scalar: Vec<u32> = xs
            .chunks(2)
            .map(|p| u32::from(round(p[0])) | (u32::from(round(p[1])) << 16))
            .collect();
        let mut packed = vec![0; xs.len() / 2];
        pack_contiguous(Vector::detect(), &mut packed, &xs);
        assert_eq!(packed, scalar);
        let (lo, hi): (Vec<f32>, Vec<f32>) = xs.chunks(2).map(|p| (p[0], p[1])).unzip();
        let mut packed = vec![0; lo.len()];
        pack_interleaved(Vector::detect(), &mut packed, &lo, &hi);
        assert_eq!(packed, scalar);
    }

    #[test]
    fn products_match_a_reference_in_every_layout_and_shape() {
        if !available() {
            // Training keeps float32 on such a CPU (tested in `model`); a call here is refused.
            let (pa, pb) = (PackedA::default(), PackedB::default());
            let refused = std::panic::catch_unwind(|| matmul(&pa, &pb, &mut [], false));
            assert!(refused.is_err(), "a product ran without AVX-512 BF16");
            return;
        }
        let mut rng = Rng::new(11);
        // One pair of packed operands for every case: repacking reuses their buffers.
        let (mut pa, mut pb) = (PackedA::default(), PackedB::default());
        // Odd and even inner dimensions, tails of rows (not a multiple of 12) and of columns
        // (not a multiple of 32), more than one pass over k (k > 2·KC), and the training shapes.
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 5, 7),
            (12, 32, 2),
            (13, 33, 9),
            (25, 70, 300),
            (37, 64, 513),
            (256, 256, 256),
            (256, 256, 33),
        ] {
            let a = random(m * k, &mut rng);
            let b = random(k * n, &mut rng);
            for oa in [Op::N, Op::T] {
                for ob in [Op::N, Op::T] {
                    let want = reference(m, n, k, &a, oa, &b, ob);
                    pa.pack(m, k, &a, oa);
                    pb.pack(k, n, &b, ob);
                    let mut c = vec![f32::NAN; m * n + 3];
                    matmul(&pa, &pb, &mut c, false);
                    let bound = 1e-6 * k as f64;
                    for (i, (&g, &w)) in c.iter().zip(&want).enumerate() {
                        assert!(
                            (f64::from(g) - w).abs() <= bound,
                            "{m}x{n}x{k} {oa:?}{ob:?} [{i}]: {g} vs {w}"
                        );
                    }
                    assert!(
                        c[m * n..].iter().all(|x| x.is_nan()),
                        "wrote past the output"
                    );
                    // Accumulating adds the same product again.
                    matmul(&pa, &pb, &mut c, true);
                    for (i, (&g, &w)) in c.iter().zip(&want).enumerate() {
                        assert!(
                            (f64::from(g) - 2.0 * w).abs() <= 2.0 * bound,
                            "{m}x{n}x{k} {oa:?}{ob:?} accumulated [{i}]: {g} vs {}",
                            2.0 * w
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn products_round_their_inputs_and_sum_in_float32() {
        if !available() {
            return; // checked in the test above
        }
        // 1 + 2^-10 is not a bfloat16: it rounds to 1, so the product is k, not k·(1 + 2^-10).
        let k = 64;
        let a = vec![1.0 + 1.0 / 1024.0; k];
        let b = vec![1.0f32; k];
        let (mut pa, mut pb) = (PackedA::default(), PackedB::default());
        pa.pack(1, k, &a, Op::N);
        pb.pack(k, 1, &b, Op::N);
        let mut c = [0.0f32];
        matmul(&pa, &pb, &mut c, false);
        assert_eq!(c[0], 64.0);
        // Sums keep float32's precision: 2^-7 steps add up exactly past bfloat16's.
        let a: Vec<f32> = (0..k)
            .map(|i| if i == 0 { 256.0 } else { 1.0 / 128.0 })
            .collect();
        pa.pack(1, k, &a, Op::N);
        matmul(&pa, &pb, &mut c, false);
        assert_eq!(c[0], 256.0 + 63.0 / 128.0);
    }
}
