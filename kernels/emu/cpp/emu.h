// A CPU emulation of the CUDA C that kernels/*.cu use, for testing the kernels' logic (indexing,
// tiling through shared memory, barriers, grid-stride loops) on machines without a GPU. It is
// force-included (-include) before each .cu file, which itself includes nothing.
//
// Each block's threads run as real threads that meet at __syncthreads() on a C++20 barrier;
// blocks run one after another, so __shared__ arrays can be function statics shared by the
// block's threads. What it cannot show: GPU memory-model effects, warp behaviour, or the
// device's floating-point rounding of intrinsics; the GPU tests (hil-tests/gpu) cover those.
#pragma once

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <barrier>

struct emu_dim3 {
    unsigned x, y, z;
};

extern thread_local emu_dim3 threadIdx;
extern thread_local emu_dim3 blockIdx;
extern emu_dim3 blockDim;
extern emu_dim3 gridDim;
extern thread_local std::barrier<>* emu_block_barrier;
// The calling thread's warp (32 consecutive threads of the block, by linear index) and lane,
// and the barrier its warp meets at in warp-collective operations (hearth_mma_tf32).
extern thread_local unsigned emu_warp;
extern thread_local unsigned emu_lane;
extern thread_local std::barrier<>* emu_warp_barrier;

#define __global__
#define __device__
#define __restrict__ __restrict
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define __forceinline__ inline

struct float4 {
    float x, y, z, w;
};

// Null while a barrier-free kernel runs its threads one by one: a __syncthreads() there crashes
// the test loudly instead of passing for the wrong reason.
inline void __syncthreads() { emu_block_barrier->arrive_and_wait(); }

inline unsigned __float_as_uint(float x) {
    unsigned u;
    memcpy(&u, &x, sizeof u);
    return u;
}
inline float __uint_as_float(unsigned u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

// The kernels' tensor-core helpers (kernels/gemm.cu defines them with inline PTX when this
// header is absent).
#define HEARTH_EMU 1

// cvt.rna.tf32.f32: round to 10 mantissa bits, to nearest, ties away from zero (adding half an
// ulp to the magnitude and truncating); infinities and NaNs pass through.
inline float hearth_tf32(float x) {
    unsigned u = __float_as_uint(x);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & ~0x1fffu;
    return __uint_as_float(u);
}

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 for the calling warp, with the PTX ISA's
// fragment layout (g = lane / 4, t = lane % 4): a0 = A[g][t], a1 = A[g+8][t], a2 = A[g][t+4],
// a3 = A[g+8][t+4]; b0 = B[t][g], b1 = B[t+4][g]; d0, d1 = D[g][2t], D[g][2t+1]; d2, d3 the
// same columns of row g+8. Every lane stages its fragments, the warp meets, each lane computes
// its part of D from all the lanes' fragments, and the warp meets again before the stage is
// reused. An operand that is not a TF32 value (low 13 bits set) aborts: the kernel must round
// before it multiplies.
struct emu_mma_stage {
    float a[32][4];
    float b[32][2];
};
extern emu_mma_stage emu_mma[32];

inline void hearth_mma_tf32(float* d, const float* a, const float* b) {
    emu_mma_stage& s = emu_mma[emu_warp];
    for (int i = 0; i < 4; ++i) {
        if (__float_as_uint(a[i]) & 0x1fffu) abort();
        s.a[emu_lane][i] = a[i];
    }
    for (int i = 0; i < 2; ++i) {
        if (__float_as_uint(b[i]) & 0x1fffu) abort();
        s.b[emu_lane][i] = b[i];
    }
    emu_warp_barrier->arrive_and_wait();
    const unsigned g = emu_lane / 4, t = emu_lane % 4;
    for (unsigned e = 0; e < 4; ++e) {
        const unsigned row = g + (e >= 2 ? 8 : 0);
        const unsigned col = 2 * t + (e & 1);
        double sum = 0.0;
        for (unsigned kk = 0; kk < 8; ++kk) {
            // A[row][kk] is held by lane 4 (row % 8) + kk % 4, in register (row >= 8) + 2 (kk >= 4);
            // B[kk][col] by lane 4 col + kk % 4, in register kk >= 4.
            const float av = s.a[4 * (row % 8) + kk % 4][(row >= 8 ? 1 : 0) + (kk >= 4 ? 2 : 0)];
            const float bv = s.b[4 * col + kk % 4][kk >= 4 ? 1 : 0];
            sum += (double)av * (double)bv;
        }
        d[e] = (float)(sum + (double)d[e]);
    }
    emu_warp_barrier->arrive_and_wait();
}
