// Tiled single-precision GEMM: C = alpha * op(A) * op(B) + beta * C, row-major.
//
// op(A) is M x K (A stored M x K with lda, or K x M when trans_a), op(B) is K x N (B stored
// K x N with ldb, or N x K when trans_b), C is M x N with ldc. Each 16 x 16 thread block computes
// a 128 x 128 tile of C, each thread an 8 x 8 register block (rows ty + 16 i, columns tx + 16 j:
// a warp reads two rows of the A slice, broadcast, and 16 consecutive columns of the B slice,
// so shared-memory reads are conflict-free). K is walked in 8-wide slices through two shared
// buffers: while the block multiplies one slice, each thread holds its part of the next in
// registers, so one barrier per slice suffices and global loads overlap the arithmetic.
// Out-of-range elements load as zero, so any M, N, K and leading dimension works.
// Launch: grid = (ceil(N / 128), ceil(M / 128)), block = (16, 16).

#define GEMM_TILE 128
#define GEMM_K 8
#define GEMM_T 16
#define GEMM_R 8

// Thread `tid`'s 4 elements of the A slice (128 rows x 8) and of the B slice (8 x 128), read
// from global memory into registers.
__device__ void gemm_load(
    int m, int n, int k, const float* __restrict__ a, int lda, int trans_a,
    const float* __restrict__ b, int ldb, int trans_b, int row0, int col0, int k0, int tid,
    float* ra, float* rb)
{
    for (int l = 0; l < 4; ++l) {
        int idx = tid + l * (GEMM_T * GEMM_T);
        // A: with trans_a, consecutive threads walk consecutive rows of stored A (= columns of
        // op(A)); without, consecutive k. Either way one of the two is contiguous in memory.
        int r, kk;
        if (trans_a) {
            r = idx % GEMM_TILE;
            kk = idx / GEMM_TILE;
        } else {
            r = idx / GEMM_K;
            kk = idx % GEMM_K;
        }
        int gr = row0 + r;
        int gk = k0 + kk;
        float va = 0.0f;
        if (gr < m && gk < k)
            va = trans_a ? a[(long)gk * lda + gr] : a[(long)gr * lda + gk];
        ra[l] = va;

        int kb, cc;
        if (trans_b) {
            kb = idx % GEMM_K;
            cc = idx / GEMM_K;
        } else {
            kb = idx / GEMM_TILE;
            cc = idx % GEMM_TILE;
        }
        int gkb = k0 + kb;
        int gc = col0 + cc;
        float vb = 0.0f;
        if (gkb < k && gc < n)
            vb = trans_b ? b[(long)gc * ldb + gkb] : b[(long)gkb * ldb + gc];
        rb[l] = vb;
    }
}

// Stores what gemm_load read into shared buffers `as` (k-major: as[kk][r]) and `bs`.
__device__ void gemm_store(
    int trans_a, int trans_b, int tid, const float* ra, const float* rb,
    float (*as)[GEMM_TILE + 4], float (*bs)[GEMM_TILE + 4])
{
    for (int l = 0; l < 4; ++l) {
        int idx = tid + l * (GEMM_T * GEMM_T);
        if (trans_a)
            as[idx / GEMM_TILE][idx % GEMM_TILE] = ra[l];
        else
            as[idx % GEMM_K][idx / GEMM_K] = ra[l];
        if (trans_b)
            bs[idx % GEMM_K][idx / GEMM_K] = rb[l];
        else
            bs[idx / GEMM_TILE][idx % GEMM_TILE] = rb[l];
    }
}

extern "C" __global__ void gemm_f32(
    int m, int n, int k,
    float alpha,
    const float* __restrict__ a, int lda, int trans_a,
    const float* __restrict__ b, int ldb, int trans_b,
    float beta,
    float* __restrict__ c, int ldc)
{
    __shared__ float as[2][GEMM_K][GEMM_TILE + 4];
    __shared__ float bs[2][GEMM_K][GEMM_TILE + 4];

    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const int tid = ty * GEMM_T + tx;
    const int row0 = blockIdx.y * GEMM_TILE;
    const int col0 = blockIdx.x * GEMM_TILE;

    float acc[GEMM_R][GEMM_R];
    for (int i = 0; i < GEMM_R; ++i)
        for (int j = 0; j < GEMM_R; ++j)
            acc[i][j] = 0.0f;

    float ra[4];
    float rb[4];
    gemm_load(m, n, k, a, lda, trans_a, b, ldb, trans_b, row0, col0, 0, tid, ra, rb);
    gemm_store(trans_a, trans_b, tid, ra, rb, as[0], bs[0]);
    __syncthreads();

    int buf = 0;
    for (int k0 = 0; k0 < k; k0 += GEMM_K) {
        const int next = k0 + GEMM_K;
        if (next < k)
            gemm_load(m, n, k, a, lda, trans_a, b, ldb, trans_b, row0, col0, next, tid, ra, rb);
        for (int kk = 0; kk < GEMM_K; ++kk) {
            float va[GEMM_R];
            float vb[GEMM_R];
            for (int i = 0; i < GEMM_R; ++i)
                va[i] = as[buf][kk][ty + i * GEMM_T];
            for (int j = 0; j < GEMM_R; ++j)
                vb[j] = bs[buf][kk][tx + j * GEMM_T];
            for (int i = 0; i < GEMM_R; ++i)
                for (int j = 0; j < GEMM_R; ++j)
                    acc[i][j] += va[i] * vb[j];
        }
        if (next < k) {
            // The other buffer was last read before the previous barrier: safe to overwrite.
            gemm_store(trans_a, trans_b, tid, ra, rb, as[buf ^ 1], bs[buf ^ 1]);
            buf ^= 1;
        }
        __syncthreads();
    }

    for (int i = 0; i < GEMM_R; ++i) {
        int r = row0 + ty + i * GEMM_T;
        if (r >= m)
            continue;
        for (int j = 0; j < GEMM_R; ++j) {
            int cidx = col0 + tx + j * GEMM_T;
            if (cidx >= n)
                continue;
            float* out = &c[(long)r * ldc + cidx];
            float prev = beta == 0.0f ? 0.0f : beta * *out;
            *out = alpha * acc[i][j] + prev;
        }
    }
}
