// Tiled single-precision GEMM: C = alpha * op(A) * op(B) + beta * C, row-major.
//
// op(A) is M x K (A stored M x K with lda, or K x M when trans_a), op(B) is K x N (B stored
// K x N with ldb, or N x K when trans_b), C is M x N with ldc. Each 16 x 16 thread block computes
// a 128 x 128 tile of C, each thread an 8 x 8 register block: rows 4 ty + (0..3) and
// 64 + 4 ty + (0..3), columns 4 tx + (0..3) and 64 + 4 tx + (0..3), so that it reads its A and
// B values from shared memory as four 16-byte vectors per k (a warp's A reads are two
// addresses, broadcast; its B reads 64 consecutive floats: conflict-free). K is walked in 8-wide
// slices through two shared buffers: while the block multiplies one slice, each thread holds its
// part of the next in registers, so one barrier per slice suffices and global loads overlap the
// arithmetic.
// Out-of-range elements load as zero, so any M, N, K and leading dimension works.
// Launch: grid = (ceil(N / 128), ceil(M / 128)), block = (16, 16).

#define GEMM_TILE 128
#define GEMM_K 8
#define GEMM_T 16
#define GEMM_R 8

#ifndef HEARTH_EMU
// x rounded to TF32, kept as a float whose 13 low mantissa bits are zero.
__device__ __forceinline__ float hearth_tf32(float x)
{
#if __CUDA_ARCH__ >= 800
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
    return __uint_as_float(r);
#else
    return x;
#endif
}
#endif

// Whether a matrix may be read as 16-byte vectors: the pointer is 16-byte aligned and the leading
// dimension a multiple of 4, so every row starts on a 16-byte boundary.
__device__ __forceinline__ int gemm_vec_ok(const float* p, int ld)
{
    return ((unsigned long long)p & 15) == 0 && (ld & 3) == 0;
}

// 16-byte loads of a slice that lies wholly inside its matrix (the caller checks, with
// gemm_vec_ok): `rows` rows of op(A), or columns of op(B), from r0, by `ks` values of k from k0.
// `kcontig`: stored with k contiguous (A untransposed, B transposed); else the rows are
// contiguous. Thread `tid` of `nt` reads the float4s q = tid + l nt into v[4 l .. 4 l + 3]:
//   k contiguous: row q % rows, k values 4 (q / rows) + 0..3 (a warp reads 32 rows, so its
//   shared stores, one k row each, hit 32 distinct banks in both kernels' layouts);
//   rows contiguous: k value q / (rows / 4), rows 4 (q % (rows / 4)) + 0..3 (a warp reads 512
//   consecutive bytes).
__device__ __forceinline__ void gemm_vec_load(
    const float* __restrict__ p, int ld, int kcontig, int r0, int k0, int rows, int ks, int nt,
    int tid, float* v)
{
    for (int l = 0; l < rows * ks / (4 * nt); ++l) {
        const int q = tid + l * nt;
        const long off = kcontig ? (long)(r0 + q % rows) * ld + k0 + 4 * (q / rows)
                                 : (long)(k0 + q / (rows / 4)) * ld + r0 + 4 * (q % (rows / 4));
        const float4 x = *reinterpret_cast<const float4*>(p + off);
        v[4 * l] = x.x;
        v[4 * l + 1] = x.y;
        v[4 * l + 2] = x.z;
        v[4 * l + 3] = x.w;
    }
}

// Stores what gemm_vec_load read into the k-major shared slice s[kk * pad + r] (pad a multiple
// of 4, s 16-byte aligned), rounded to TF32 when `tf32`.
__device__ __forceinline__ void gemm_vec_store(
    const float* v, int kcontig, int rows, int ks, int nt, int tid, float* s, int pad, int tf32)
{
    for (int l = 0; l < rows * ks / (4 * nt); ++l) {
        const int q = tid + l * nt;
        float x[4];
        for (int e = 0; e < 4; ++e)
            x[e] = tf32 ? hearth_tf32(v[4 * l + e]) : v[4 * l + e];
        if (kcontig) {
            const int r = q % rows, kk = 4 * (q / rows);
            for (int e = 0; e < 4; ++e)
                s[(kk + e) * pad + r] = x[e];
        } else {
            float4 y;
            y.x = x[0];
            y.y = x[1];
            y.z = x[2];
            y.w = x[3];
            *reinterpret_cast<float4*>(&s[(q / (rows / 4)) * pad + 4 * (q % (rows / 4))]) = y;
        }
    }
}

// Split K: a launch with gridDim.z = parts > 1 gives block z the k values [kbeg, kend), chunks
// of whole `slice`s (the last one shorter, perhaps empty), and points its C at slab z of a
// workspace of `parts` slabs of m rows of ldc each, where it writes its partial sums (the
// launcher passes alpha 1 and beta 0 for it). gemm_reduce then adds the slabs in order and
// applies the caller's alpha and beta: no atomics, so the result does not depend on which block
// finishes first. With gridDim.z = 1 the block takes all of K and C stays where it is. Returns
// the offset of the block's C.
__device__ __forceinline__ long gemm_split_k(int m, int k, int slice, int ldc, int* kbeg, int* kend)
{
    *kbeg = 0;
    *kend = k;
    if (gridDim.z <= 1)
        return 0;
    {
        const int per = (k + (int)gridDim.z - 1) / (int)gridDim.z;
        const int chunk = (per + slice - 1) / slice * slice;
        const int z = (int)blockIdx.z;
        *kbeg = z * chunk < k ? z * chunk : k;
        *kend = *kbeg + chunk < k ? *kbeg + chunk : k;
        return (long)z * m * ldc;
    }
}

// Thread `tid`'s 4 elements of the A slice (128 rows x 8) and of the B slice (8 x 128), read
// from global memory into registers: as one 16-byte vector per operand where `vec_a` (`vec_b`)
// says the slice lies inside the matrix and may be (gemm_vec_ok), else element by element.
__device__ void gemm_load(
    int m, int n, int k, const float* __restrict__ a, int lda, int trans_a,
    const float* __restrict__ b, int ldb, int trans_b, int row0, int col0, int k0, int tid,
    int vec_a, int vec_b, float* ra, float* rb)
{
    const int nt = GEMM_T * GEMM_T;
    if (vec_a) {
        gemm_vec_load(a, lda, !trans_a, row0, k0, GEMM_TILE, GEMM_K, nt, tid, ra);
    } else {
        for (int l = 0; l < 4; ++l) {
            int idx = tid + l * nt;
            // With trans_a, consecutive threads walk consecutive rows of stored A (= columns
            // of op(A)); without, consecutive k. Either way one of the two is contiguous.
            int r = trans_a ? idx % GEMM_TILE : idx / GEMM_K;
            int kk = trans_a ? idx / GEMM_TILE : idx % GEMM_K;
            int gr = row0 + r, gk = k0 + kk;
            ra[l] = (gr < m && gk < k) ? (trans_a ? a[(long)gk * lda + gr] : a[(long)gr * lda + gk])
                                       : 0.0f;
        }
    }
    if (vec_b) {
        gemm_vec_load(b, ldb, trans_b, col0, k0, GEMM_TILE, GEMM_K, nt, tid, rb);
    } else {
        for (int l = 0; l < 4; ++l) {
            int idx = tid + l * nt;
            int kb = trans_b ? idx % GEMM_K : idx / GEMM_TILE;
            int cc = trans_b ? idx / GEMM_K : idx % GEMM_TILE;
            int gkb = k0 + kb, gc = col0 + cc;
            rb[l] = (gkb < k && gc < n)
                        ? (trans_b ? b[(long)gc * ldb + gkb] : b[(long)gkb * ldb + gc])
                        : 0.0f;
        }
    }
}

// Stores what gemm_load read into shared buffers `as` (k-major: as[kk][r]) and `bs`, in the
// layout it was read in.
__device__ void gemm_store(
    int trans_a, int trans_b, int tid, int vec_a, int vec_b, const float* ra, const float* rb,
    float (*as)[GEMM_TILE + 4], float (*bs)[GEMM_TILE + 4])
{
    const int nt = GEMM_T * GEMM_T;
    if (vec_a) {
        gemm_vec_store(ra, !trans_a, GEMM_TILE, GEMM_K, nt, tid, &as[0][0], GEMM_TILE + 4, 0);
    } else {
        for (int l = 0; l < 4; ++l) {
            int idx = tid + l * nt;
            if (trans_a)
                as[idx / GEMM_TILE][idx % GEMM_TILE] = ra[l];
            else
                as[idx % GEMM_K][idx / GEMM_K] = ra[l];
        }
    }
    if (vec_b) {
        gemm_vec_store(rb, trans_b, GEMM_TILE, GEMM_K, nt, tid, &bs[0][0], GEMM_TILE + 4, 0);
    } else {
        for (int l = 0; l < 4; ++l) {
            int idx = tid + l * nt;
            if (trans_b)
                bs[idx % GEMM_K][idx / GEMM_K] = rb[l];
            else
                bs[idx / GEMM_TILE][idx % GEMM_TILE] = rb[l];
        }
    }
}

// At most 128 registers a thread, so that two blocks share a multiprocessor (without the bound
// the compiler takes about 166 and one block runs alone).
extern "C" __global__ void __launch_bounds__(GEMM_T * GEMM_T, 2) gemm_f32(
    int m, int n, int k,
    float alpha,
    const float* __restrict__ a, int lda, int trans_a,
    const float* __restrict__ b, int ldb, int trans_b,
    float beta,
    float* __restrict__ c, int ldc)
{
    // Rows of 132 floats (528 bytes): every 4-float group at a multiple of 4 is 16-byte aligned.
    __shared__ __align__(16) float as[2][GEMM_K][GEMM_TILE + 4];
    __shared__ __align__(16) float bs[2][GEMM_K][GEMM_TILE + 4];

    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const int tid = ty * GEMM_T + tx;
    const int row0 = blockIdx.y * GEMM_TILE;
    const int col0 = blockIdx.x * GEMM_TILE;

    float acc[GEMM_R][GEMM_R];
    for (int i = 0; i < GEMM_R; ++i)
        for (int j = 0; j < GEMM_R; ++j)
            acc[i][j] = 0.0f;

    // This block's k values: all of them, or its part when K is split (gemm_split_k).
    int kbeg, kend;
    c += gemm_split_k(m, k, GEMM_K, ldc, &kbeg, &kend);

    // Tiles wholly inside the matrix read 16-byte vectors, slice by slice while K lasts.
    const int tile_a = row0 + GEMM_TILE <= m && gemm_vec_ok(a, lda);
    const int tile_b = col0 + GEMM_TILE <= n && gemm_vec_ok(b, ldb);
    int vec_a = tile_a && kbeg + GEMM_K <= kend;
    int vec_b = tile_b && kbeg + GEMM_K <= kend;
    float ra[4];
    float rb[4];
    gemm_load(
        m, n, kend, a, lda, trans_a, b, ldb, trans_b, row0, col0, kbeg, tid, vec_a, vec_b, ra, rb);
    gemm_store(trans_a, trans_b, tid, vec_a, vec_b, ra, rb, as[0], bs[0]);
    __syncthreads();

    int buf = 0;
    for (int k0 = kbeg; k0 < kend; k0 += GEMM_K) {
        const int next = k0 + GEMM_K;
        vec_a = tile_a && next + GEMM_K <= kend;
        vec_b = tile_b && next + GEMM_K <= kend;
        if (next < kend)
            gemm_load(
                m, n, kend, a, lda, trans_a, b, ldb, trans_b, row0, col0, next, tid, vec_a, vec_b,
                ra, rb);
#pragma unroll
        for (int kk = 0; kk < GEMM_K; ++kk) {
            const float4 a0 = *reinterpret_cast<const float4*>(&as[buf][kk][4 * ty]);
            const float4 a1 = *reinterpret_cast<const float4*>(&as[buf][kk][64 + 4 * ty]);
            const float4 b0 = *reinterpret_cast<const float4*>(&bs[buf][kk][4 * tx]);
            const float4 b1 = *reinterpret_cast<const float4*>(&bs[buf][kk][64 + 4 * tx]);
            const float va[GEMM_R] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            const float vb[GEMM_R] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
            for (int i = 0; i < GEMM_R; ++i)
                for (int j = 0; j < GEMM_R; ++j)
                    acc[i][j] += va[i] * vb[j];
        }
        if (next < kend) {
            // The other buffer was last read before the previous barrier: safe to overwrite.
            gemm_store(trans_a, trans_b, tid, vec_a, vec_b, ra, rb, as[buf ^ 1], bs[buf ^ 1]);
            buf ^= 1;
        }
        __syncthreads();
    }

    for (int i = 0; i < GEMM_R; ++i) {
        int r = row0 + (i < 4 ? 4 * ty + i : 64 + 4 * ty + i - 4);
        if (r >= m)
            continue;
        for (int j = 0; j < GEMM_R; ++j) {
            int cidx = col0 + (j < 4 ? 4 * tx + j : 64 + 4 * tx + j - 4);
            if (cidx >= n)
                continue;
            float* out = &c[(long)r * ldc + cidx];
            float prev = beta == 0.0f ? 0.0f : beta * *out;
            *out = alpha * acc[i][j] + prev;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tensor-core GEMM, TF32 products: the same contract as gemm_f32, except that every element of
// op(A) and op(B) is first rounded to TF32 (10 mantissa bits, round to nearest, ties away from
// zero: cvt.rna) and the products run on the tensor cores (mma.sync m16n8k8, FP32 accumulate).
// Needs compute capability 8.0 or later; the host never launches it on an older device, and
// there its body traps.
//
// Each block of 128 threads (4 warps, 2 x 2) computes a 64 x 64 tile of C, each warp 32 x 32 of
// it as 2 x 4 mma tiles of 16 x 8. K is walked in 16-wide slices through two shared buffers, as
// in gemm_f32, already rounded to TF32 when stored. The shared rows are 72 floats, so the
// fragment reads (lane = 4 g + t reads row k0 + t, column c + g) hit 32 distinct banks.
// Launch: grid = (ceil(N / 64), ceil(M / 64)), block = (128, 1).

#define TC_TILE 64
#define TC_K 16
#define TC_PAD 72
#define TC_THREADS 128
#define TC_LOADS (TC_TILE * TC_K / TC_THREADS)

#ifndef HEARTH_EMU
// d += a * b for one warp: a is 16 x 8 (a0: row g, col t; a1: row g + 8, col t; a2, a3: the
// same rows at col t + 4), b is 8 x 8 (b0: row t, col g; b1: row t + 4, col g), d is 16 x 8
// (d0, d1: row g, cols 2t, 2t + 1; d2, d3: row g + 8), where g = lane / 4 and t = lane % 4.
__device__ __forceinline__ void hearth_mma_tf32(float* d, const float* a, const float* b)
{
#if __CUDA_ARCH__ >= 800
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(__float_as_uint(a[0])), "r"(__float_as_uint(a[1])), "r"(__float_as_uint(a[2])),
          "r"(__float_as_uint(a[3])), "r"(__float_as_uint(b[0])), "r"(__float_as_uint(b[1])));
#else
    __trap();
#endif
}
#endif

// Thread `tid`'s TC_LOADS elements of the A slice (64 rows x 16) and of the B slice (16 x 64):
// as two 16-byte vectors per operand where `vec_a` (`vec_b`) allows, as in gemm_load.
__device__ void tc_load(
    int m, int n, int k, const float* __restrict__ a, int lda, int trans_a,
    const float* __restrict__ b, int ldb, int trans_b, int row0, int col0, int k0, int tid,
    int vec_a, int vec_b, float* ra, float* rb)
{
    if (vec_a) {
        gemm_vec_load(a, lda, !trans_a, row0, k0, TC_TILE, TC_K, TC_THREADS, tid, ra);
    } else {
        for (int l = 0; l < TC_LOADS; ++l) {
            int idx = tid + l * TC_THREADS;
            int r = trans_a ? idx % TC_TILE : idx / TC_K;
            int kk = trans_a ? idx / TC_TILE : idx % TC_K;
            int gr = row0 + r, gk = k0 + kk;
            ra[l] = (gr < m && gk < k) ? (trans_a ? a[(long)gk * lda + gr] : a[(long)gr * lda + gk])
                                       : 0.0f;
        }
    }
    if (vec_b) {
        gemm_vec_load(b, ldb, trans_b, col0, k0, TC_TILE, TC_K, TC_THREADS, tid, rb);
    } else {
        for (int l = 0; l < TC_LOADS; ++l) {
            int idx = tid + l * TC_THREADS;
            int kb = trans_b ? idx % TC_K : idx / TC_TILE;
            int cc = trans_b ? idx / TC_K : idx % TC_TILE;
            int gkb = k0 + kb, gc = col0 + cc;
            rb[l] = (gkb < k && gc < n)
                        ? (trans_b ? b[(long)gc * ldb + gkb] : b[(long)gkb * ldb + gc])
                        : 0.0f;
        }
    }
}

// Stores what tc_load read, rounded to TF32, k-major: as[kk][r], bs[kk][c].
__device__ void tc_store(
    int trans_a, int trans_b, int tid, int vec_a, int vec_b, const float* ra, const float* rb,
    float (*as)[TC_PAD], float (*bs)[TC_PAD])
{
    if (vec_a) {
        gemm_vec_store(ra, !trans_a, TC_TILE, TC_K, TC_THREADS, tid, &as[0][0], TC_PAD, 1);
    } else {
        for (int l = 0; l < TC_LOADS; ++l) {
            int idx = tid + l * TC_THREADS;
            if (trans_a)
                as[idx / TC_TILE][idx % TC_TILE] = hearth_tf32(ra[l]);
            else
                as[idx % TC_K][idx / TC_K] = hearth_tf32(ra[l]);
        }
    }
    if (vec_b) {
        gemm_vec_store(rb, trans_b, TC_TILE, TC_K, TC_THREADS, tid, &bs[0][0], TC_PAD, 1);
    } else {
        for (int l = 0; l < TC_LOADS; ++l) {
            int idx = tid + l * TC_THREADS;
            if (trans_b)
                bs[idx % TC_K][idx / TC_K] = hearth_tf32(rb[l]);
            else
                bs[idx / TC_TILE][idx % TC_TILE] = hearth_tf32(rb[l]);
        }
    }
}

// At most 128 registers a thread (four blocks a multiprocessor; without the bound, about 166).
extern "C" __global__ void __launch_bounds__(TC_THREADS, 4) gemm_tf32(
    int m, int n, int k,
    float alpha,
    const float* __restrict__ a, int lda, int trans_a,
    const float* __restrict__ b, int ldb, int trans_b,
    float beta,
    float* __restrict__ c, int ldc)
{
    __shared__ __align__(16) float as[2][TC_K][TC_PAD];
    __shared__ __align__(16) float bs[2][TC_K][TC_PAD];

    const int tid = threadIdx.x;
    const int lane = tid % 32;
    const int warp = tid / 32;
    const int g = lane / 4;
    const int t = lane % 4;
    const int wm = (warp / 2) * 32;
    const int wn = (warp % 2) * 32;
    const int row0 = blockIdx.y * TC_TILE;
    const int col0 = blockIdx.x * TC_TILE;

    float acc[2][4][4];
    for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 4; ++j)
            for (int e = 0; e < 4; ++e)
                acc[i][j][e] = 0.0f;

    int kbeg, kend;
    c += gemm_split_k(m, k, TC_K, ldc, &kbeg, &kend);
    const int tile_a = row0 + TC_TILE <= m && gemm_vec_ok(a, lda);
    const int tile_b = col0 + TC_TILE <= n && gemm_vec_ok(b, ldb);
    int vec_a = tile_a && kbeg + TC_K <= kend;
    int vec_b = tile_b && kbeg + TC_K <= kend;
    float ra[TC_LOADS];
    float rb[TC_LOADS];
    tc_load(
        m, n, kend, a, lda, trans_a, b, ldb, trans_b, row0, col0, kbeg, tid, vec_a, vec_b, ra, rb);
    tc_store(trans_a, trans_b, tid, vec_a, vec_b, ra, rb, as[0], bs[0]);
    __syncthreads();

    int buf = 0;
    for (int k0 = kbeg; k0 < kend; k0 += TC_K) {
        const int next = k0 + TC_K;
        vec_a = tile_a && next + TC_K <= kend;
        vec_b = tile_b && next + TC_K <= kend;
        if (next < kend)
            tc_load(
                m, n, kend, a, lda, trans_a, b, ldb, trans_b, row0, col0, next, tid, vec_a, vec_b,
                ra, rb);
#pragma unroll
        for (int ks = 0; ks < TC_K; ks += 8) {
            float fa[2][4];
            float fb[4][2];
#pragma unroll
            for (int i = 0; i < 2; ++i) {
                int r = wm + i * 16 + g;
                fa[i][0] = as[buf][ks + t][r];
                fa[i][1] = as[buf][ks + t][r + 8];
                fa[i][2] = as[buf][ks + t + 4][r];
                fa[i][3] = as[buf][ks + t + 4][r + 8];
            }
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                int cc = wn + j * 8 + g;
                fb[j][0] = bs[buf][ks + t][cc];
                fb[j][1] = bs[buf][ks + t + 4][cc];
            }
#pragma unroll
            for (int i = 0; i < 2; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j)
                    hearth_mma_tf32(acc[i][j], fa[i], fb[j]);
        }
        if (next < kend) {
            tc_store(trans_a, trans_b, tid, vec_a, vec_b, ra, rb, as[buf ^ 1], bs[buf ^ 1]);
            buf ^= 1;
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 2; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                int r = row0 + wm + i * 16 + g + (e >= 2 ? 8 : 0);
                int cidx = col0 + wn + j * 8 + 2 * t + (e & 1);
                if (r >= m || cidx >= n)
                    continue;
                float* out = &c[(long)r * ldc + cidx];
                float prev = beta == 0.0f ? 0.0f : beta * *out;
                *out = alpha * acc[i][j][e] + prev;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Split K's second pass: c = alpha * (ws slab 0 + ... + slab parts - 1) + beta * c, where ws holds
// `parts` slabs of m x n partial sums (row stride n) written by a split gemm_f32 or gemm_tf32.
// The slabs are added in order, so the sums are the same on every run. beta = 0 leaves c unread.
// Launch: any grid of 1-D blocks (grid-stride loop over the m x n elements).
extern "C" __global__ void gemm_reduce(
    int m, int n, int parts, const float* __restrict__ ws, float alpha, float beta,
    float* __restrict__ c, int ldc)
{
    const long total = (long)m * n;
    const long stride = (long)gridDim.x * blockDim.x;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        float sum = 0.0f;
        for (int z = 0; z < parts; ++z)
            sum += ws[z * total + i];
        float* out = &c[(i / n) * ldc + i % n];
        const float prev = beta == 0.0f ? 0.0f : beta * *out;
        *out = alpha * sum + prev;
    }
}
