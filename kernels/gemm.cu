// Tiled single-precision GEMM: C = alpha * op(A) * op(B) + beta * C, row-major.
//
// op(A) is M x K (A stored M x K with lda, or K x M when trans_a), op(B) is K x N (B stored
// K x N with ldb, or N x K when trans_b), C is M x N with ldc. Each 16 x 16 thread block computes
// a 64 x 64 tile of C, each thread a 4 x 4 register block; K is walked in 16-wide slices staged
// through shared memory. Out-of-range elements load as zero, so any M, N, K works.
// Launch: grid = (ceil(N / 64), ceil(M / 64)), block = (16, 16).

#define GEMM_TILE 64
#define GEMM_K 16
#define GEMM_T 16

extern "C" __global__ void gemm_f32(
    int m, int n, int k,
    float alpha,
    const float* __restrict__ a, int lda, int trans_a,
    const float* __restrict__ b, int ldb, int trans_b,
    float beta,
    float* __restrict__ c, int ldc)
{
    __shared__ float as[GEMM_K][GEMM_TILE + 1];
    __shared__ float bs[GEMM_K][GEMM_TILE + 1];

    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const int tid = ty * GEMM_T + tx;
    const int row0 = blockIdx.y * GEMM_TILE;
    const int col0 = blockIdx.x * GEMM_TILE;

    float acc[4][4];
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j)
            acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < k; k0 += GEMM_K) {
        // 256 threads load a 64 x 16 slice of op(A) and a 16 x 64 slice of op(B): 4 each.
        for (int l = 0; l < 4; ++l) {
            int idx = tid + l * (GEMM_T * GEMM_T);
            int r = idx / GEMM_K;          // 0..63 : row of the A tile
            int kk = idx % GEMM_K;         // 0..15
            int gr = row0 + r;
            int gk = k0 + kk;
            float va = 0.0f;
            if (gr < m && gk < k)
                va = trans_a ? a[(long)gk * lda + gr] : a[(long)gr * lda + gk];
            as[kk][r] = va;

            int kb = idx / GEMM_TILE;      // 0..15
            int cc = idx % GEMM_TILE;      // 0..63 : column of the B tile
            int gkb = k0 + kb;
            int gc = col0 + cc;
            float vb = 0.0f;
            if (gkb < k && gc < n)
                vb = trans_b ? b[(long)gc * ldb + gkb] : b[(long)gkb * ldb + gc];
            bs[kb][cc] = vb;
        }
        __syncthreads();
        for (int kk = 0; kk < GEMM_K; ++kk) {
            float ra[4];
            float rb[4];
            for (int i = 0; i < 4; ++i)
                ra[i] = as[kk][ty + i * GEMM_T];
            for (int j = 0; j < 4; ++j)
                rb[j] = bs[kk][tx + j * GEMM_T];
            for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j)
                    acc[i][j] += ra[i] * rb[j];
        }
        __syncthreads();
    }

    for (int i = 0; i < 4; ++i) {
        int r = row0 + ty + i * GEMM_T;
        if (r >= m)
            continue;
        for (int j = 0; j < 4; ++j) {
            int cidx = col0 + tx + j * GEMM_T;
            if (cidx >= n)
                continue;
            float* out = &c[(long)r * ldc + cidx];
            float prev = beta == 0.0f ? 0.0f : beta * *out;
            *out = alpha * acc[i][j] + prev;
        }
    }
}
