//! Each kernel on the GPU against its CPU reference (`hearth_kernels::reference`), on fresh
//! random inputs of awkward shapes. Bounds are relative, per float32 arithmetic: products
//! against the sum of absolute terms, element-wise results to a few ulps.

use hearth_kernels::Math;
use hearth_kernels::cuda::{CudaError, Gpu, LOSS_BLOCKS, check_indices};
use hearth_kernels::reference as r;
use hearth_ml::Rng;

fn normal(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// Element-wise closeness within `rel` of the larger magnitude (plus a tiny absolute floor).
fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = rel * g.abs().max(w.abs()) + 1e-6;
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: GPU {g} vs CPU {w} (tolerance {tol})"
        );
    }
}

#[test]
fn gemm_matches_the_reference_for_every_transpose_and_shape() {
    let gpu = super::gpu();
    // Compute capability 8.0 and later has TF32 tensor cores, and gemm_tf32 must have passed
    // its start-up check there (else training would quietly fall back to float32); on an
    // older GPU the TF32 kernel must refuse, which `tf32_gemm_is_refused_without_tensor_cores`
    // checks.
    if gpu.compute_capability().0 >= 8 {
        assert!(
            gpu.tensor_cores(),
            "{}: {:?}",
            gpu.name(),
            gpu.tensor_core_problem()
        );
    }
    let maths: &[Math] = if gpu.tensor_cores() {
        &[Math::F32, Math::Tf32]
    } else {
        &[Math::F32]
    };
    for &math in maths {
        gemm_against_the_reference(&gpu, math);
    }
}

fn gemm_against_the_reference(gpu: &Gpu, math: Math) {
    let mut rng = Rng::new(11);
    let shapes = [
        (1, 1, 1),
        (3, 5, 7),
        (64, 64, 16),
        (67, 129, 33),
        (1024, 256, 30),
        (256, 30, 1024),
        (1024, 1, 256),
        (200, 300, 500),
    ];
    let reference = math.reference();
    for &(m, n, k) in &shapes {
        for (ta, tb, aligned) in r::gemm_test_layouts() {
            // Padded leading dimensions catch stride mistakes.
            let (ar, ac) = if ta { (k, m) } else { (m, k) };
            let (br, bc) = if tb { (n, k) } else { (k, n) };
            let (lda, ldb, ldc) = r::gemm_test_strides(aligned, ac, bc, n);
            let a = normal(&mut rng, (ar - 1) * lda + ac);
            let b = normal(&mut rng, (br - 1) * ldb + bc);
            let c0 = normal(&mut rng, (m - 1) * ldc + n);
            for (alpha, beta) in [(1.0f32, 0.0f32), (0.5, -1.5)] {
                // The same operands, rounded as the kernel rounds them (TF32 or not): only the
                // summation order differs.
                let mut want = c0.clone();
                reference(
                    m, n, k, alpha, &a, lda, ta, &b, ldb, tb, beta, &mut want, ldc,
                );
                // Exact float32 products, for TF32's own error bound.
                let mut exact = c0.clone();
                r::gemm_f32(
                    m, n, k, alpha, &a, lda, ta, &b, ldb, tb, beta, &mut exact, ldc,
                );
                // |alpha| Σ|a||b| + |beta c| bounds each element's rounding error.
                let abs = |v: &[f32]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
                let mut scale = abs(&c0);
                r::gemm_f32(
                    m,
                    n,
                    k,
                    alpha.abs(),
                    &abs(&a),
                    lda,
                    ta,
                    &abs(&b),
                    ldb,
                    tb,
                    beta.abs(),
                    &mut scale,
                    ldc,
                );
                let (da, db) = (gpu.upload(&a).unwrap(), gpu.upload(&b).unwrap());
                let mut dc = gpu.upload(&c0).unwrap();
                gpu.gemm(
                    math,
                    (m, n, k),
                    alpha,
                    (&da.as_view(), lda, ta),
                    (&db.as_view(), ldb, tb),
                    beta,
                    (&mut dc.as_view_mut(), ldc),
                )
                .unwrap();
                let got = gpu.download(&dc.as_view()).unwrap();
                // The tensor cores' float32 sums may truncate where IEEE rounds: twice the room.
                let sum_rel = match math {
                    Math::F32 => 1e-5,
                    Math::Tf32 => 2e-5,
                };
                for i in 0..m {
                    for j in 0..n {
                        let idx = i * ldc + j;
                        let tol = sum_rel * (k as f32).sqrt().max(1.0) * scale[idx] + 1e-6;
                        assert!(
                            (got[idx] - want[idx]).abs() <= tol,
                            "{math:?} gemm {m}x{n}x{k} ta={ta} tb={tb} lda={lda} ldb={ldb} alpha={alpha} beta={beta} \
                             at ({i},{j}): GPU {} vs CPU {} (tolerance {tol})",
                            got[idx],
                            want[idx]
                        );
                        // TF32 operands carry a relative error of at most 2^-11 each.
                        let tf32_tol = 2f32.powi(-10) * 1.01 * scale[idx] + tol;
                        assert!(
                            (got[idx] - exact[idx]).abs() <= tf32_tol,
                            "{math:?} gemm {m}x{n}x{k} at ({i},{j}): GPU {} vs float32 {}",
                            got[idx],
                            exact[idx]
                        );
                    }
                }
                // Padding between rows is never written.
                for i in 0..m.saturating_sub(1) {
                    for j in n..ldc {
                        assert_eq!(got[i * ldc + j].to_bits(), c0[i * ldc + j].to_bits());
                    }
                }
            }
        }
    }
}

#[test]
fn tf32_gemm_is_refused_without_tensor_cores() {
    let gpu = super::gpu();
    let a = gpu.upload(&[1.0f32; 4]).unwrap();
    let mut c = gpu.upload(&[0.0f32; 4]).unwrap();
    let result = gpu.gemm(
        Math::Tf32,
        (2, 2, 2),
        1.0,
        (&a.as_view(), 2, false),
        (&a.as_view(), 2, false),
        0.0,
        (&mut c.as_view_mut(), 2),
    );
    if gpu.tensor_cores() {
        result.unwrap();
        assert_eq!(gpu.download(&c.as_view()).unwrap(), [2.0; 4]);
    } else {
        let e = result.unwrap_err();
        assert!(
            matches!(
                e,
                CudaError::Unsupported { .. } | CudaError::TensorCoreCheck { .. }
            ),
            "{e}"
        );
    }
}

#[test]
fn a_buffer_too_small_is_an_error_before_launch() {
    let gpu = super::gpu();
    let a = gpu.upload(&[1.0f32; 6]).unwrap();
    let b = gpu.upload(&[1.0f32; 6]).unwrap();
    let mut c = gpu.upload(&[0.0f32; 3]).unwrap();
    let e = gpu
        .gemm(
            Math::F32,
            (2, 2, 3),
            1.0,
            (&a.as_view(), 3, false),
            (&b.as_view(), 2, false),
            0.0,
            (&mut c.as_view_mut(), 2),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            CudaError::Shape {
                kernel: "gemm_f32",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("c holds 3 elements, 4 are needed"),
        "{e}"
    );
    check_indices(&[0, 1, 7], 7).unwrap_err();
}

#[test]
fn gather_rows_matches_the_reference() {
    let gpu = super::gpu();
    let mut rng = Rng::new(12);
    let (rows, cols, picked) = (1000, 33, 777);
    let src: Vec<f32> = normal(&mut rng, rows * cols);
    let idx: Vec<u32> = (0..picked)
        .map(|_| (rng.next_u64() % rows as u64) as u32)
        .collect();
    check_indices(&idx, rows).unwrap();
    let bits: Vec<u32> = src.iter().map(|v| v.to_bits()).collect();
    let mut want = vec![0u32; picked * cols];
    r::gather_rows(picked, cols, &bits, &idx, &mut want);
    let (ds, di) = (gpu.upload(&src).unwrap(), gpu.upload(&idx).unwrap());
    let mut dd = gpu.zeros::<f32>(picked * cols).unwrap();
    // SAFETY: every index was checked against `rows` above.
    unsafe {
        gpu.gather_rows(
            picked,
            cols,
            &ds.as_view(),
            &di.as_view(),
            &mut dd.as_view_mut(),
        )
        .unwrap();
    }
    let got: Vec<u32> = gpu
        .download(&dd.as_view())
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert_eq!(got, want, "gather copies words exactly");
}

#[test]
fn bias_activation_relu_backward_and_column_sums_match() {
    let gpu = super::gpu();
    let mut rng = Rng::new(13);
    for &(rows, cols) in &[(1, 1), (1024, 256), (333, 77), (5, 1000)] {
        let z = normal(&mut rng, rows * cols);
        let bias = normal(&mut rng, cols);
        for relu in [false, true] {
            let mut want = z.clone();
            r::bias_act_forward(rows, cols, &mut want, &bias, relu);
            let mut dz = gpu.upload(&z).unwrap();
            let db = gpu.upload(&bias).unwrap();
            gpu.bias_act_forward(rows, cols, &mut dz.as_view_mut(), &db.as_view(), relu)
                .unwrap();
            assert_close(
                "bias_act_forward",
                &gpu.download(&dz.as_view()).unwrap(),
                &want,
                1e-6,
            );
        }
        let grad = normal(&mut rng, rows * cols);
        let act = normal(&mut rng, rows * cols);
        let mut want = grad.clone();
        r::relu_backward(&mut want, &act);
        let mut dg = gpu.upload(&grad).unwrap();
        let da = gpu.upload(&act).unwrap();
        gpu.relu_backward(rows * cols, &mut dg.as_view_mut(), &da.as_view())
            .unwrap();
        assert_close(
            "relu_backward",
            &gpu.download(&dg.as_view()).unwrap(),
            &want,
            0.0,
        );

        let mut want = vec![0f32; cols];
        r::column_sums(rows, cols, &grad, &mut want);
        let dgrad = gpu.upload(&grad).unwrap();
        let mut out = gpu.zeros::<f32>(cols).unwrap();
        gpu.column_sums(rows, cols, &dgrad.as_view(), &mut out.as_view_mut())
            .unwrap();
        let got = gpu.download(&out.as_view()).unwrap();
        let abs_sums: Vec<f32> = (0..cols)
            .map(|j| (0..rows).map(|i| grad[i * cols + j].abs()).sum())
            .collect();
        for j in 0..cols {
            let tol = 1e-5 * abs_sums[j] + 1e-6;
            assert!(
                (got[j] - want[j]).abs() <= tol,
                "column_sums[{j}]: {} vs {}",
                got[j],
                want[j]
            );
        }
    }
}

fn partial_sum(
    gpu: &hearth_kernels::cuda::Gpu,
    d: &hearth_kernels::cuda::cudarc::driver::CudaSlice<f32>,
) -> f64 {
    gpu.download(&d.as_view())
        .unwrap()
        .iter()
        .map(|&v| f64::from(v))
        .sum()
}

#[test]
fn losses_match_the_reference() {
    let gpu = super::gpu();
    let mut rng = Rng::new(14);
    for &n in &[1usize, 1000, 100_003] {
        let logits: Vec<f32> = normal(&mut rng, n).iter().map(|v| v * 4.0).collect();
        let targets: Vec<f32> = (0..n).map(|_| (rng.next_u64() % 2) as f32).collect();
        let scale = 1.0 / n as f32;
        let (mut prob, mut grad) = (vec![0f32; n], vec![0f32; n]);
        let want = r::sigmoid_bce(&logits, &targets, scale, &mut prob, &mut grad);
        let (dl, dt) = (gpu.upload(&logits).unwrap(), gpu.upload(&targets).unwrap());
        let (mut dp, mut dg) = (gpu.zeros::<f32>(n).unwrap(), gpu.zeros::<f32>(n).unwrap());
        let mut parts = gpu.zeros::<f32>(LOSS_BLOCKS).unwrap();
        gpu.sigmoid_bce(
            n,
            &dl.as_view(),
            &dt.as_view(),
            scale,
            &mut dp.as_view_mut(),
            &mut dg.as_view_mut(),
            &mut parts.as_view_mut(),
        )
        .unwrap();
        assert_close(
            "sigmoid_bce prob",
            &gpu.download(&dp.as_view()).unwrap(),
            &prob,
            1e-5,
        );
        assert_close(
            "sigmoid_bce grad",
            &gpu.download(&dg.as_view()).unwrap(),
            &grad,
            1e-5,
        );
        let got = partial_sum(&gpu, &parts);
        assert!(
            (got - f64::from(want)).abs() <= 1e-4 * f64::from(want).abs() + 1e-5,
            "sigmoid_bce loss {got} vs {want}"
        );

        let mut g2 = vec![0f32; n];
        let want = r::mse(&logits, &targets, scale, &mut g2);
        let mut dg = gpu.zeros::<f32>(n).unwrap();
        let mut parts = gpu.zeros::<f32>(LOSS_BLOCKS).unwrap();
        gpu.mse(
            n,
            &dl.as_view(),
            &dt.as_view(),
            scale,
            &mut dg.as_view_mut(),
            &mut parts.as_view_mut(),
        )
        .unwrap();
        assert_close("mse grad", &gpu.download(&dg.as_view()).unwrap(), &g2, 1e-5);
        let got = partial_sum(&gpu, &parts);
        assert!(
            (got - f64::from(want)).abs() <= 1e-4 * f64::from(want).abs() + 1e-5,
            "mse loss {got} vs {want}"
        );
    }
    for &(rows, classes) in &[(1usize, 2usize), (1000, 3), (4097, 10)] {
        let logits: Vec<f32> = normal(&mut rng, rows * classes)
            .iter()
            .map(|v| v * 3.0)
            .collect();
        let labels: Vec<i32> = (0..rows)
            .map(|_| (rng.next_u64() % classes as u64) as i32)
            .collect();
        let scale = 1.0 / rows as f32;
        let (mut prob, mut grad) = (vec![0f32; rows * classes], vec![0f32; rows * classes]);
        let want = r::softmax_ce(rows, classes, &logits, &labels, scale, &mut prob, &mut grad);
        let (dl, dy) = (gpu.upload(&logits).unwrap(), gpu.upload(&labels).unwrap());
        let mut dp = gpu.zeros::<f32>(rows * classes).unwrap();
        let mut dg = gpu.zeros::<f32>(rows * classes).unwrap();
        let mut parts = gpu.zeros::<f32>(LOSS_BLOCKS).unwrap();
        gpu.softmax_ce(
            rows,
            classes,
            &dl.as_view(),
            &dy.as_view(),
            scale,
            &mut dp.as_view_mut(),
            &mut dg.as_view_mut(),
            &mut parts.as_view_mut(),
        )
        .unwrap();
        assert_close(
            "softmax prob",
            &gpu.download(&dp.as_view()).unwrap(),
            &prob,
            1e-5,
        );
        assert_close(
            "softmax grad",
            &gpu.download(&dg.as_view()).unwrap(),
            &grad,
            1e-4,
        );
        let got = partial_sum(&gpu, &parts);
        assert!(
            (got - f64::from(want)).abs() <= 1e-4 * f64::from(want).abs() + 1e-5,
            "softmax loss {got} vs {want}"
        );
    }
}

#[test]
fn adam_and_reduce_sum_match_the_reference() {
    let gpu = super::gpu();
    let mut rng = Rng::new(15);
    let n = 74_497;
    let mut param = normal(&mut rng, n);
    let (mut m, mut v) = (vec![0f32; n], vec![0f32; n]);
    let (mut dp, mut dm, mut dv) = (
        gpu.upload(&param).unwrap(),
        gpu.upload(&m).unwrap(),
        gpu.upload(&v).unwrap(),
    );
    for t in 1..=5 {
        let grad = normal(&mut rng, n);
        let (lr_t, eps_t) = r::adam_step_constants(1e-3, 0.9, 0.999, 1e-8, t);
        r::adam_update(&mut param, &grad, &mut m, &mut v, 0.9, 0.999, lr_t, eps_t);
        let dg = gpu.upload(&grad).unwrap();
        gpu.adam_update(
            n,
            &mut dp.as_view_mut(),
            &dg.as_view(),
            &mut dm.as_view_mut(),
            &mut dv.as_view_mut(),
            0.9,
            0.999,
            lr_t,
            eps_t,
        )
        .unwrap();
    }
    assert_close(
        "adam param",
        &gpu.download(&dp.as_view()).unwrap(),
        &param,
        1e-5,
    );
    assert_close("adam m", &gpu.download(&dm.as_view()).unwrap(), &m, 1e-5);
    assert_close("adam v", &gpu.download(&dv.as_view()).unwrap(), &v, 1e-5);

    let x = normal(&mut rng, n);
    let want = r::reduce_sum(&x);
    let dx = gpu.upload(&x).unwrap();
    let mut parts = gpu.zeros::<f32>(LOSS_BLOCKS).unwrap();
    gpu.reduce_sum(n, &dx.as_view(), &mut parts.as_view_mut())
        .unwrap();
    let got = partial_sum(&gpu, &parts);
    let abs: f64 = x.iter().map(|v| f64::from(v.abs())).sum();
    assert!(
        (got - f64::from(want)).abs() <= 1e-5 * abs,
        "reduce_sum {got} vs {want}"
    );
}
