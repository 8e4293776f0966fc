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

#include <barrier>

struct emu_dim3 {
    unsigned x, y, z;
};

extern thread_local emu_dim3 threadIdx;
extern thread_local emu_dim3 blockIdx;
extern emu_dim3 blockDim;
extern emu_dim3 gridDim;
extern thread_local std::barrier<>* emu_block_barrier;

#define __global__
#define __device__
#define __restrict__ __restrict
#define __shared__ static

// Null while a barrier-free kernel runs its threads one by one: a __syncthreads() there crashes
// the test loudly instead of passing for the wrong reason.
inline void __syncthreads() { emu_block_barrier->arrive_and_wait(); }
