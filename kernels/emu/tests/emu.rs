//! Every kernel, compiled for the CPU under the CUDA emulation and launched with the GPU's
//! grids, against its CPU reference on random inputs of awkward shapes.
#![allow(
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]

use hearth_kernels::Math;
use hearth_kernels::reference as r;
use hearth_kernels_emu as emu;
use hearth_ml::Rng;

fn normal(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

fn close(what: &str, got: &[f32], want: &[f32], rel: f32) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = rel * g.abs().max(w.abs()) + 1e-6;
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: kernel {g} vs reference {w}"
        );
    }
}

fn sum(partials: &[f32]) -> f64 {
    assert!(
        partials.iter().all(|p| p.is_finite()),
        "every block writes its partial"
    );
    partials.iter().map(|&p| f64::from(p)).sum()
}

#[test]
fn gemm_for_every_transpose_shape_and_scaling() {
    for math in [Math::F32, Math::Tf32] {
        gemm_against_the_reference(math);
    }
}

/// One GEMM kernel against its reference, which rounds the operands as the kernel does (TF32
/// for `gemm_tf32`, whose mma.sync the emulation runs warp by warp in the PTX fragment layout):
/// only the summation order differs. Shapes cover partial tiles in every dimension, K not a
/// multiple of any slice, and several blocks each way.
fn gemm_against_the_reference(math: Math) {
    let mut rng = Rng::new(21);
    let reference = math.reference();
    for &(m, n, k) in &[
        (1, 1, 1),
        (3, 5, 7),
        (16, 8, 8),
        (37, 70, 21),
        (64, 64, 16),
        (67, 129, 33),
        (130, 70, 100),
        (256, 136, 40),
        // K split in 4 parts (the last shorter), and in 16 (gemm_tf32's last two are empty).
        (70, 40, 300),
        (16, 16, 1100),
    ] {
        for (ta, tb, aligned) in r::gemm_test_layouts() {
            let (ar, ac) = if ta { (k, m) } else { (m, k) };
            let (br, bc) = if tb { (n, k) } else { (k, n) };
            let (lda, ldb, ldc) = r::gemm_test_strides(aligned, ac, bc, n);
            let a = normal(&mut rng, (ar - 1) * lda + ac);
            let b = normal(&mut rng, (br - 1) * ldb + bc);
            let c0 = normal(&mut rng, (m - 1) * ldc + n);
            for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, -1.5)] {
                let mut want = c0.clone();
                reference(
                    m, n, k, alpha, &a, lda, ta, &b, ldb, tb, beta, &mut want, ldc,
                );
                let mut exact = c0.clone();
                r::gemm_f32(
                    m, n, k, alpha, &a, lda, ta, &b, ldb, tb, beta, &mut exact, ldc,
                );
                let mut got = c0.clone();
                emu::gemm(
                    math, m, n, k, alpha, &a, lda, ta, &b, ldb, tb, beta, &mut got, ldc,
                )
                .unwrap();
                let mut rounding_seen = false;
                for i in 0..m {
                    for j in 0..n {
                        let x = i * ldc + j;
                        let tol = 1e-5 * (k as f32).sqrt() * (1.0 + want[x].abs()) + 1e-4;
                        assert!(
                            (got[x] - want[x]).abs() <= tol,
                            "{math:?} gemm {m}x{n}x{k} ta={ta} tb={tb} lda={lda} ldb={ldb} a={alpha} b={beta} \
                             ({i},{j}): {} vs {}",
                            got[x],
                            want[x]
                        );
                        rounding_seen |= (got[x] - exact[x]).abs() > tol;
                    }
                    // The padding after each row of C is never written.
                    if i + 1 < m {
                        for j in n..ldc {
                            assert_eq!(got[i * ldc + j].to_bits(), c0[i * ldc + j].to_bits());
                        }
                    }
                }
                // TF32 is not float32: past tiny shapes gemm_tf32 must differ from float32
                // products somewhere (a kernel that skipped the rounding would not).
                if math == Math::Tf32 && k >= 16 {
                    assert!(rounding_seen, "{m}x{n}x{k}: no sign of TF32 rounding");
                }
            }
        }
    }
}

#[test]
fn the_start_up_check_passes_the_tensor_core_kernel_and_catches_a_broken_one() {
    // What `Gpu::open` runs before it lets gemm_tf32 train, here with the emulated kernel: it
    // must pass (else every GPU would fall back to float32), and fail a kernel that mixes up
    // its operands.
    let emulated = |transpose_b: bool| {
        move |(m, n, k): (usize, usize, usize), a: &[f32], b: &[f32]| {
            let mut c = vec![0.0f32; m * n];
            // Reading B as if stored n × k is what a wrong fragment index would do.
            let (b, ldb) = if transpose_b {
                (b[..n * k].to_vec(), k)
            } else {
                (b.to_vec(), n)
            };
            emu::gemm(
                Math::Tf32,
                m,
                n,
                k,
                1.0,
                a,
                k,
                false,
                &b,
                ldb,
                transpose_b,
                0.0,
                &mut c,
                n,
            )
            .map_err(|e| e.to_string())?;
            Ok(c)
        }
    };
    hearth_kernels::cuda::tensor_core_check(emulated(false)).unwrap();
    let e = hearth_kernels::cuda::tensor_core_check(emulated(true)).unwrap_err();
    assert!(e.contains("where its reference is"), "{e}");
    let e =
        hearth_kernels::cuda::tensor_core_check(|_, _, _| Err("launch failed".into())).unwrap_err();
    assert_eq!(e, "launch failed");
}

#[test]
fn gather_bias_activation_relu_backward_and_column_sums() {
    let mut rng = Rng::new(22);
    let (rows, cols) = (300, 33);
    let src: Vec<u32> = (0..rows * cols).map(|_| rng.next_u64() as u32).collect();
    let idx: Vec<u32> = (0..257)
        .map(|_| (rng.next_u64() % rows as u64) as u32)
        .collect();
    let (mut got, mut want) = (vec![0u32; 257 * cols], vec![0u32; 257 * cols]);
    emu::gather_rows(257, cols, &src, &idx, &mut got);
    r::gather_rows(257, cols, &src, &idx, &mut want);
    assert_eq!(got, want);

    for &(rows, cols) in &[(1, 1), (37, 77), (5, 300)] {
        let z = normal(&mut rng, rows * cols);
        let bias = normal(&mut rng, cols);
        for relu in [false, true] {
            let (mut got, mut want) = (z.clone(), z.clone());
            emu::bias_act_forward(rows, cols, &mut got, &bias, relu);
            r::bias_act_forward(rows, cols, &mut want, &bias, relu);
            close("bias_act_forward", &got, &want, 0.0);
        }
        let act = normal(&mut rng, rows * cols);
        let (mut got, mut want) = (z.clone(), z.clone());
        emu::relu_backward(&mut got, &act);
        r::relu_backward(&mut want, &act);
        close("relu_backward", &got, &want, 0.0);
        let (mut got, mut want) = (vec![f32::NAN; cols], vec![0.0; cols]);
        emu::column_sums(rows, cols, &z, &mut got).unwrap();
        r::column_sums(rows, cols, &z, &mut want);
        close("column_sums", &got, &want, 1e-5);
    }
}

#[test]
fn losses_and_their_partial_sums() {
    let mut rng = Rng::new(23);
    for &n in &[1usize, 255, 257, 20_000] {
        let z: Vec<f32> = normal(&mut rng, n).iter().map(|v| v * 4.0).collect();
        let y: Vec<f32> = (0..n).map(|_| (rng.next_u64() % 2) as f32).collect();
        let scale = 1.0 / n as f32;
        let (mut p1, mut g1, mut p2, mut g2) =
            (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let partial = emu::sigmoid_bce(&z, &y, scale, &mut p1, &mut g1);
        let want = r::sigmoid_bce(&z, &y, scale, &mut p2, &mut g2);
        close("sigmoid_bce prob", &p1, &p2, 1e-6);
        close("sigmoid_bce grad", &g1, &g2, 1e-6);
        let got = sum(&partial);
        assert!(
            (got - f64::from(want)).abs() <= 1e-4 * f64::from(want).abs() + 1e-4,
            "{got} vs {want}"
        );

        let (mut g1, mut g2) = (vec![0.0; n], vec![0.0; n]);
        let partial = emu::mse(&z, &y, scale, &mut g1);
        let want = r::mse(&z, &y, scale, &mut g2);
        close("mse grad", &g1, &g2, 1e-6);
        let got = sum(&partial);
        assert!(
            (got - f64::from(want)).abs() <= 1e-4 * f64::from(want).abs() + 1e-4,
            "{got} vs {want}"
        );
    }
    for &(rows, classes) in &[(1usize, 2usize), (300, 3), (1000, 10)] {
        let z: Vec<f32> = normal(&mut rng, rows * classes)
            .iter()
            .map(|v| v * 3.0)
            .collect();
        let labels: Vec<i32> = (0..rows)
            .map(|_| (rng.next_u64() % classes as u64) as i32)
            .collect();
        let scale = 1.0 / rows as f32;
        let k = rows * classes;
        let (mut p1, mut g1, mut p2, mut g2) =
            (vec![0.0; k], vec![0.0; k], vec![0.0; k], vec![0.0; k]);
        let partial = emu::softmax_ce(rows, classes, &z, &labels, scale, &mut p1, &mut g1);
        let want = r::softmax_ce(rows, classes, &z, &labels, scale, &mut p2, &mut g2);
        close("softmax prob", &p1, &p2, 1e-5);
        close("softmax grad", &g1, &g2, 1e-5);
        let got = sum(&partial);
        assert!(
            (got - f64::from(want)).abs() <= 1e-4 * f64::from(want).abs() + 1e-4,
            "{got} vs {want}"
        );
    }
}

#[test]
fn adam_and_reduce_sum() {
    let mut rng = Rng::new(24);
    let n = 10_007;
    let mut p1 = normal(&mut rng, n);
    let mut p2 = p1.clone();
    let (mut m1, mut v1, mut m2, mut v2) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for t in 1..=4 {
        let g = normal(&mut rng, n);
        let (lr_t, eps_t) = r::adam_step_constants(1e-3, 0.9, 0.999, 1e-8, t);
        emu::adam_update(&mut p1, &g, &mut m1, &mut v1, 0.9, 0.999, lr_t, eps_t);
        r::adam_update(&mut p2, &g, &mut m2, &mut v2, 0.9, 0.999, lr_t, eps_t);
    }
    close("adam param", &p1, &p2, 0.0);
    close("adam m", &m1, &m2, 0.0);
    close("adam v", &v1, &v2, 0.0);
    for &n in &[1usize, 256, 100_003] {
        let x = normal(&mut rng, n);
        let got = sum(&emu::reduce_sum(&x));
        let want = r::reduce_sum(&x);
        let abs: f64 = x.iter().map(|v| f64::from(v.abs())).sum();
        assert!(
            (got - f64::from(want)).abs() <= 1e-5 * abs,
            "reduce_sum {got} vs {want}"
        );
    }
}
