//! Float32 matrix products for training steps, in Hearth's own microkernels (AVX-512 F, or AVX2
//! with FMA), with no allocation per call.
//!
//! What it is for: the products of a float32 training step (see
//! [`crate::model::Workspace`]): `precision = "f32"`, and every CPU without AVX-512 BF16. The
//! `gemm` crate, which `cpu::matmul` uses, takes its packing buffers from the heap on every
//! call (about 32 allocations per step of a two-hidden-layer MLP); these read both operands
//! where they lie, so a step allocates nothing. (The workspace keeps each step's Wᵀ, so training
//! never passes a transposed right operand; other callers' transposed right operands are packed
//! into a buffer that each thread keeps, allocated once.) Serving and evaluation keep
//! `cpu::matmul`.
//!
//! Layout: the microkernel keeps an `MR × NR` block of sums in registers (12 × 32 with AVX-512,
//! 6 × 16 with AVX2) over `KC` inner indices at a time, reading `NR` consecutive columns of one
//! row of the right operand (two vectors, masked at the right edge) and broadcasting one element
//! of the left operand per row. Both are read where they lie (the left one at any strides, the
//! right one as stored, `k × n`), except a transposed right operand, which is first packed into
//! panels of `NR` columns, each panel's row `p` adjacent, in a buffer that the thread keeps.
//! (Packing the left operand too, into blocks of `MR` rows, measured slower here: its scattered
//! writes cost more than the broadcasts' address arithmetic saves.)
//!
//! Determinism: each output's sum runs in one fixed order (inner index ascending), whatever the
//! thread; the same inputs give the same bits on every CPU with the same instruction set. The
//! bits differ from `gemm`'s, which sums in another order.

use std::cell::RefCell;

use crate::cpu::Op;

/// The vector instructions a product runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512 F: 12 × 32 tiles.
    Avx512,
    /// AVX2 and FMA: 6 × 16 tiles.
    Avx2,
}

impl Isa {
    /// The best this CPU has, or `None` (then callers use `cpu::matmul`). With the variable
    /// `SGEMM_AVX2` set, AVX2 comes first where the CPU has it (for measuring that kernel on
    /// an AVX-512 machine).
    pub fn detect() -> Option<Isa> {
        let order = if std::env::var_os("SGEMM_AVX2").is_some() {
            [Isa::Avx2, Isa::Avx512]
        } else {
            [Isa::Avx512, Isa::Avx2]
        };
        order.into_iter().find(|isa| isa.available())
    }

    /// Whether this CPU has these instructions.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Isa::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = self;
            false
        }
    }

    /// Columns of a packed panel.
    fn nr(self) -> usize {
        match self {
            Isa::Avx512 => 32,
            Isa::Avx2 => 16,
        }
    }
}

/// Inner indices per pass over a panel (an AVX-512 panel's rows then fill 32 KiB, a Zen 4
/// core's whole L1 data cache).
const KC: usize = 256;

thread_local! {
    /// This thread's packed right operand, grown to the largest it has packed.
    static PACKED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `c (m×n) = [c +] op(a) · op(b)`, all row-major (as `cpu::matmul`: `a` is stored `m×k` or
/// `k×m`, `b` `k×n` or `n×k`), with `isa`'s microkernel, on the calling thread.
///
/// # Panics
/// If a slice is shorter than its shape needs (a caller's bug), or if the CPU lacks `isa`.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    isa: Isa,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    op_a: Op,
    b: &[f32],
    op_b: Op,
    c: &mut [f32],
    accumulate: bool,
) {
    crate::cpu::check_shapes((m, n, k), a, b, c);
    assert!(isa.available(), "{isa:?} products on a CPU without {isa:?}");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(0.0);
        }
        return;
    }
    PACKED.with_borrow_mut(|packed| {
        let (rs, ps) = match op_a {
            Op::N => (k, 1),
            Op::T => (1, m),
        };
        let b_packed = op_b == Op::T;
        if b_packed {
            pack_b(packed, isa.nr(), k, n, b);
        }
        let operands = Operands {
            m,
            n,
            k,
            a,
            rs,
            ps,
            b: if b_packed { packed } else { b },
            b_packed,
        };
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa.available()` was asserted; the asserts above and `pack` bound every
        // index the kernels form (see their comments).
        unsafe {
            match isa {
                Isa::Avx512 => x86::matmul512(&operands, c, accumulate),
                Isa::Avx2 => x86::matmul256(&operands, c, accumulate),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (operands, accumulate);
    });
}

/// The operands of one product: `a` at strides (`rs` per row, `ps` per inner index); `b` as
/// stored (`k × n`), or packed by [`pack_b`].
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Operands<'a> {
    m: usize,
    n: usize,
    k: usize,
    a: &'a [f32],
    rs: usize,
    ps: usize,
    b: &'a [f32],
    b_packed: bool,
}

/// Packs `op(b)` (`k × n`) from `b` stored `n × k` into `dst`: panel `j`'s row `p`, column `c`
/// at `dst[(j · k + p) · nr + c]`, columns past `n` zero.
fn pack_b(dst: &mut Vec<f32>, nr: usize, k: usize, n: usize, b: &[f32]) {
    let panels = n.div_ceil(nr);
    // The padding columns of the last panel must be zero; the rest is overwritten.
    dst.resize(panels * k * nr, 0.0);
    if !n.is_multiple_of(nr) {
        dst[(panels - 1) * k * nr..].fill(0.0);
    }
    // Column c of op(b) is stored row c.
    for (c, col) in b[..n * k].chunks_exact(k).enumerate() {
        let (j, lane) = (c / nr, c % nr);
        let panel = &mut dst[j * k * nr..(j + 1) * k * nr];
        for (p, &x) in col.iter().enumerate() {
            panel[p * nr + lane] = x;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        _mm256_add_ps, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_loadu_si256, _mm256_maskload_ps,
        _mm256_set1_ps, _mm256_setzero_ps, _mm256_storeu_ps, _mm512_add_ps, _mm512_fmadd_ps,
        _mm512_loadu_ps, _mm512_mask_loadu_ps, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps,
        _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
    };

    use super::{KC, Operands};

    /// One microkernel call: `ROWS × cols` outputs over `kc` inner indices.
    struct Tile {
        kc: usize,
        a: *const f32,
        rs: usize,
        ps: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
        cols: usize,
        add: bool,
    }

    /// Walks the product in `KC` slices, panels of `NR` columns and blocks of `MR` rows, and
    /// calls `kernel(rows, tile)` for each block.
    ///
    /// # Safety
    /// `o.b` holds `k · n` values (`ceil(n / NR) · k · NR` packed ones), `o.a` reaches `m` rows
    /// × `k` at its strides, `c` holds `m · n`; `kernel` accepts any `rows` in `1..=MR`.
    unsafe fn blocks<const MR: usize, const NR: usize>(
        o: &Operands<'_>,
        c: &mut [f32],
        accumulate: bool,
        kernel: impl Fn(usize, &Tile),
    ) {
        let (m, n, k) = (o.m, o.n, o.k);
        let cp = c.as_mut_ptr();
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            let add = accumulate || k0 > 0;
            for j in 0..n.div_ceil(NR) {
                // Row k0 of panel j, or row k0, column j · NR of b as stored: inside `o.b`.
                let (panel, ldb) = if o.b_packed {
                    (o.b[(j * k + k0) * NR..].as_ptr(), NR)
                } else {
                    (o.b[k0 * n + j * NR..].as_ptr(), n)
                };
                let mut i = 0;
                while i < m {
                    let rows = MR.min(m - i);
                    let tile = Tile {
                        kc,
                        // Row i, inner index k0: i · rs + k0 · ps < the operand's extent.
                        a: o.a[i * o.rs + k0 * o.ps..].as_ptr(),
                        rs: o.rs,
                        ps: o.ps,
                        b: panel,
                        ldb,
                        // SAFETY: row i, column j·NR of c (i < m, j·NR < n).
                        c: unsafe { cp.add(i * n + j * NR) },
                        ldc: n,
                        cols: NR.min(n - j * NR),
                        add,
                    };
                    kernel(rows, &tile);
                    i += rows;
                }
            }
        }
    }

    /// # Safety
    /// AVX-512 F; the operands as [`blocks`] needs them for `MR = 12`, `NR = 32`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn matmul512(o: &Operands<'_>, c: &mut [f32], accumulate: bool) {
        // SAFETY: the caller's contract; every `rows` below is in 1..=12.
        unsafe {
            blocks::<12, 32>(o, c, accumulate, |rows, t| match (rows, t.cols == 32) {
                (12, true) => kernel512::<12, true>(t),
                (11, true) => kernel512::<11, true>(t),
                (10, true) => kernel512::<10, true>(t),
                (9, true) => kernel512::<9, true>(t),
                (8, true) => kernel512::<8, true>(t),
                (7, true) => kernel512::<7, true>(t),
                (6, true) => kernel512::<6, true>(t),
                (5, true) => kernel512::<5, true>(t),
                (4, true) => kernel512::<4, true>(t),
                (3, true) => kernel512::<3, true>(t),
                (2, true) => kernel512::<2, true>(t),
                (_, true) => kernel512::<1, true>(t),
                (12, false) => kernel512::<12, false>(t),
                (11, false) => kernel512::<11, false>(t),
                (10, false) => kernel512::<10, false>(t),
                (9, false) => kernel512::<9, false>(t),
                (8, false) => kernel512::<8, false>(t),
                (7, false) => kernel512::<7, false>(t),
                (6, false) => kernel512::<6, false>(t),
                (5, false) => kernel512::<5, false>(t),
                (4, false) => kernel512::<4, false>(t),
                (3, false) => kernel512::<3, false>(t),
                (2, false) => kernel512::<2, false>(t),
                (_, false) => kernel512::<1, false>(t),
            });
        }
    }

    /// # Safety
    /// AVX2 and FMA; the operands as [`blocks`] needs them for `MR = 6`, `NR = 16`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn matmul256(o: &Operands<'_>, c: &mut [f32], accumulate: bool) {
        // SAFETY: the caller's contract; every `rows` below is in 1..=6.
        unsafe {
            blocks::<6, 16>(o, c, accumulate, |rows, t| match (rows, t.cols == 16) {
                (6, true) => kernel256::<6, true>(t),
                (5, true) => kernel256::<5, true>(t),
                (4, true) => kernel256::<4, true>(t),
                (3, true) => kernel256::<3, true>(t),
                (2, true) => kernel256::<2, true>(t),
                (_, true) => kernel256::<1, true>(t),
                (6, false) => kernel256::<6, false>(t),
                (5, false) => kernel256::<5, false>(t),
                (4, false) => kernel256::<4, false>(t),
                (3, false) => kernel256::<3, false>(t),
                (2, false) => kernel256::<2, false>(t),
                (_, false) => kernel256::<1, false>(t),
            });
        }
    }

    /// # Safety
    /// AVX-512 F; `t.a` reaches `ROWS` rows × `t.kc` at its strides, `t.b` `t.kc` rows of
    /// `t.cols` (1..=32; `FULL` only if 32) at stride `t.ldb`, `t.c` `ROWS` rows of `t.cols` at
    /// stride `t.ldc`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn kernel512<const ROWS: usize, const FULL: bool>(t: &Tile) {
        // Lanes of the two vectors that are real columns.
        let mask = |half: usize| -> u16 {
            let cols = t.cols.saturating_sub(16 * half).min(16);
            u16::try_from((1u32 << cols) - 1).unwrap_or(u16::MAX)
        };
        let (m0, m1) = (mask(0), mask(1));
        let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
        for p in 0..t.kc {
            // SAFETY: row p: the columns below t.cols of two vectors at p · ldb and
            // p · ldb + 16 (masked lanes are not read).
            let (b0, b1) = unsafe {
                let bp = t.b.add(p * t.ldb);
                if FULL {
                    (_mm512_loadu_ps(bp), _mm512_loadu_ps(bp.add(16)))
                } else {
                    (
                        _mm512_maskz_loadu_ps(m0, bp),
                        _mm512_maskz_loadu_ps(m1, bp.wrapping_add(16)),
                    )
                }
            };
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: row r < ROWS, index p < kc: inside the operand (the contract).
                let x = _mm512_set1_ps(unsafe { *t.a.add(r * t.rs + p * t.ps) });
                acc[0] = _mm512_fmadd_ps(x, b0, acc[0]);
                acc[1] = _mm512_fmadd_ps(x, b1, acc[1]);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            // SAFETY: row r < ROWS of c, columns below t.cols (the masks); the second half's
            // address may lie past c when its mask is empty, hence wrapping_add (never read).
            unsafe {
                let out = t.c.add(r * t.ldc);
                for (h, (&v, m)) in acc.iter().zip([m0, m1]).enumerate() {
                    let dst = out.wrapping_add(16 * h);
                    if m == u16::MAX {
                        let v = if t.add {
                            _mm512_add_ps(v, _mm512_loadu_ps(dst))
                        } else {
                            v
                        };
                        _mm512_storeu_ps(dst, v);
                    } else if m != 0 {
                        let v = if t.add {
                            _mm512_add_ps(v, _mm512_mask_loadu_ps(_mm512_setzero_ps(), m, dst))
                        } else {
                            v
                        };
                        _mm512_mask_storeu_ps(dst, m, v);
                    }
                }
            }
        }
    }

    /// # Safety
    /// AVX2 and FMA; as [`kernel512`] with 16 columns per panel; `FULL` only if `t.cols` is 16
    /// (then the loads are not masked: AVX2's masked loads are slow).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn kernel256<const ROWS: usize, const FULL: bool>(t: &Tile) {
        // Lanes of the two vectors that are real columns (the sign bit set).
        let lanes = |half: usize| {
            let mut m = [0i32; 8];
            for (l, x) in m.iter_mut().enumerate() {
                *x = if 8 * half + l < t.cols { -1 } else { 0 };
            }
            // SAFETY: eight i32 read from the array.
            unsafe { _mm256_loadu_si256(m.as_ptr().cast()) }
        };
        let (m0, m1) = (lanes(0), lanes(1));
        let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
        for p in 0..t.kc {
            // SAFETY: as in kernel512, with vectors of 8 (masked lanes are not read).
            let (b0, b1) = unsafe {
                let bp = t.b.add(p * t.ldb);
                if FULL {
                    (_mm256_loadu_ps(bp), _mm256_loadu_ps(bp.add(8)))
                } else {
                    (
                        _mm256_maskload_ps(bp, m0),
                        _mm256_maskload_ps(bp.wrapping_add(8), m1),
                    )
                }
            };
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: as in kernel512.
                let x = _mm256_set1_ps(unsafe { *t.a.add(r * t.rs + p * t.ps) });
                acc[0] = _mm256_fmadd_ps(x, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(x, b1, acc[1]);
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            // SAFETY: row r < ROWS of c; a full panel writes 16 columns, a partial one goes
            // through `tmp` and writes t.cols.
            unsafe {
                let out = t.c.add(r * t.ldc);
                if t.cols == 16 {
                    for (h, &v) in acc.iter().enumerate() {
                        let dst = out.add(8 * h);
                        let v = if t.add {
                            _mm256_add_ps(v, _mm256_loadu_ps(dst))
                        } else {
                            v
                        };
                        _mm256_storeu_ps(dst, v);
                    }
                } else {
                    let mut tmp = [0f32; 16];
                    _mm256_storeu_ps(tmp.as_mut_ptr(), acc[0]);
                    _mm256_storeu_ps(tmp.as_mut_ptr().add(8), acc[1]);
                    let dst = std::slice::from_raw_parts_mut(out, t.cols);
                    for (d, &v) in dst.iter_mut().zip(&tmp) {
                        *d = if t.add { *d + v } else { v };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;
    use crate::cpu::tests::{naive, random};

    #[test]
    fn products_match_f64_in_every_layout_shape_and_instruction_set() {
        let isas: Vec<Isa> = [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(|i| i.available())
            .collect();
        // Where neither exists, `Isa::detect` is None and training keeps `cpu::matmul`
        // (checked in model.rs); on x86-64 servers at least AVX2 runs here.
        if Isa::Avx2.available() {
            assert!(!isas.is_empty());
        }
        let mut rng = Rng::new(41);
        for &isa in &isas {
            for &(m, n, k) in &[
                (1, 1, 1),
                (5, 3, 2),
                (12, 32, 128),
                (13, 33, 129),
                (25, 17, 300),
                (256, 256, 64),
                (40, 70, 1),
            ] {
                for op_a in [Op::N, Op::T] {
                    for op_b in [Op::N, Op::T] {
                        let (a, b) = (random(m * k, &mut rng), random(k * n, &mut rng));
                        let want = naive(m, n, k, &a, op_a, &b, op_b);
                        let mut c = vec![f32::NAN; m * n + 3];
                        matmul(isa, (m, n, k), &a, op_a, &b, op_b, &mut c, false);
                        let tol = 1e-5 * (k as f64).sqrt() * 4.0 + 1e-5;
                        for (i, (&g, &w)) in c.iter().zip(&want).enumerate() {
                            assert!(
                                (f64::from(g) - w).abs() <= tol * (1.0 + w.abs()),
                                "{isa:?} {m}x{n}x{k} {op_a:?}{op_b:?} [{i}]: {g} vs {w}"
                            );
                        }
                        // Nothing past the product is written.
                        assert!(c[m * n..].iter().all(|x| x.is_nan()));
                        // Accumulating adds the product to what is there.
                        let mut twice = c.clone();
                        matmul(isa, (m, n, k), &a, op_a, &b, op_b, &mut twice, true);
                        for (i, (&t, &once)) in twice.iter().zip(&c).take(m * n).enumerate() {
                            assert!(
                                (t - 2.0 * once).abs() <= 1e-5 * (1.0 + once.abs()),
                                "{isa:?} accumulate [{i}]: {t} vs 2 × {once}"
                            );
                        }
                    }
                }
            }
            // k = 0: the product is zero.
            let mut c = vec![1.0f32; 6];
            matmul(isa, (2, 3, 0), &[], Op::N, &[], Op::N, &mut c, false);
            assert_eq!(c, [0.0; 6]);
        }
    }

    #[test]
    fn the_same_inputs_give_the_same_bits_on_any_thread() {
        let Some(isa) = Isa::detect() else {
            assert!(!Isa::Avx2.available());
            return;
        };
        let mut rng = Rng::new(42);
        let (m, n, k) = (100, 70, 200);
        let (a, b) = (random(m * k, &mut rng), random(k * n, &mut rng));
        // B transposed: packed into the thread's own buffer, the only per-thread state.
        let run = || {
            let mut c = vec![0.0f32; m * n];
            matmul(isa, (m, n, k), &a, Op::T, &b, Op::T, &mut c, false);
            c
        };
        // Here the buffer first holds a larger, different operand; there it starts empty.
        let big = random(2 * k * n, &mut rng);
        let mut scratch = vec![0.0f32; m * 2 * n];
        matmul(
            isa,
            (m, 2 * n, k),
            &a,
            Op::T,
            &big,
            Op::T,
            &mut scratch,
            false,
        );
        let here = run();
        let there = std::thread::scope(|s| s.spawn(run).join().unwrap());
        assert_eq!(here, there);
    }
}
