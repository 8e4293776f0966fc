// The emulator's launcher and one C entry point per kernel: hearth_emu_<kernel>(grid, block,
// kernel arguments…). Launches are serialized (shared memory is per-function static).
#include "emu.h"

#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

thread_local emu_dim3 threadIdx;
thread_local emu_dim3 blockIdx;
emu_dim3 blockDim;
emu_dim3 gridDim;
thread_local std::barrier<>* emu_block_barrier;
thread_local unsigned emu_warp;
thread_local unsigned emu_lane;
thread_local std::barrier<>* emu_warp_barrier;
emu_mma_stage emu_mma[32];

static std::mutex launch_lock;

// Kernels with __syncthreads() run each block's threads concurrently; the others (`serial`)
// run them one after another on this thread, which is much faster and equivalent for them.
// The grid's third dimension (gz) is the GEMMs' split of K; the other kernels use gz = 1.
static void launch(unsigned gx, unsigned gy, unsigned bx, unsigned by, bool serial,
                   const std::function<void()>& kernel, unsigned gz = 1) {
    std::lock_guard<std::mutex> guard(launch_lock);
    gridDim = {gx, gy, gz};
    blockDim = {bx, by, 1};
    const unsigned threads = bx * by;
    for (unsigned z = 0; z < gz; ++z)
    for (unsigned y = 0; y < gy; ++y) {
        for (unsigned x = 0; x < gx; ++x) {
            if (serial) {
                emu_block_barrier = nullptr;
                emu_warp_barrier = nullptr;
                for (unsigned ty = 0; ty < by; ++ty) {
                    for (unsigned tx = 0; tx < bx; ++tx) {
                        threadIdx = {tx, ty, 0};
                        blockIdx = {x, y, z};
                        kernel();
                    }
                }
                continue;
            }
            std::barrier<> bar(threads);
            // One barrier per warp of 32 threads (the last may be partial).
            std::vector<std::unique_ptr<std::barrier<>>> warps;
            for (unsigned w = 0; w * 32 < threads; ++w) {
                const unsigned size = threads - w * 32 < 32 ? threads - w * 32 : 32;
                warps.push_back(std::make_unique<std::barrier<>>(size));
            }
            std::vector<std::thread> pool;
            pool.reserve(threads);
            for (unsigned ty = 0; ty < by; ++ty) {
                for (unsigned tx = 0; tx < bx; ++tx) {
                    pool.emplace_back([&, x, y, z, tx, ty] {
                        threadIdx = {tx, ty, 0};
                        blockIdx = {x, y, z};
                        const unsigned linear = ty * bx + tx;
                        emu_warp = linear / 32;
                        emu_lane = linear % 32;
                        emu_block_barrier = &bar;
                        emu_warp_barrier = warps[emu_warp].get();
                        kernel();
                        // A thread that has returned no longer holds the others at a barrier.
                        bar.arrive_and_drop();
                        emu_warp_barrier->arrive_and_drop();
                    });
                }
            }
            for (auto& t : pool) t.join();
        }
    }
}

extern "C" {
void gather_rows(int, int, const unsigned*, const unsigned*, unsigned*);
void gemm_f32(int, int, int, float, const float*, int, int, const float*, int, int, float, float*,
              int);
void gemm_tf32(int, int, int, float, const float*, int, int, const float*, int, int, float, float*,
               int);
void gemm_reduce(int, int, int, const float*, float, float, float*, int);
void bias_act_forward(int, int, float*, const float*, int);
void relu_backward(long, float*, const float*);
void column_sums(int, int, const float*, float*);
void sigmoid_bce(int, const float*, const float*, float, float*, float*, float*);
void softmax_ce(int, int, const float*, const int*, float, float*, float*, float*);
void mse(int, const float*, const float*, float, float*, float*);
void adam_update(long, float*, const float*, float*, float*, float, float, float, float);
void reduce_sum(long, const float*, float*);

#define GRID unsigned gx, unsigned gy, unsigned bx, unsigned by

void hearth_emu_gather_rows(GRID, int rows, int cols, const unsigned* src, const unsigned* idx,
                            unsigned* dst) {
    launch(gx, gy, bx, by, true, [=] { gather_rows(rows, cols, src, idx, dst); });
}
void hearth_emu_gemm_f32(GRID, unsigned gz, int m, int n, int k, float alpha, const float* a,
                         int lda, int trans_a, const float* b, int ldb, int trans_b, float beta,
                         float* c, int ldc) {
    launch(
        gx, gy, bx, by, false,
        [=] { gemm_f32(m, n, k, alpha, a, lda, trans_a, b, ldb, trans_b, beta, c, ldc); }, gz);
}
void hearth_emu_gemm_tf32(GRID, unsigned gz, int m, int n, int k, float alpha, const float* a,
                          int lda, int trans_a, const float* b, int ldb, int trans_b, float beta,
                          float* c, int ldc) {
    launch(
        gx, gy, bx, by, false,
        [=] { gemm_tf32(m, n, k, alpha, a, lda, trans_a, b, ldb, trans_b, beta, c, ldc); }, gz);
}
void hearth_emu_gemm_reduce(GRID, int m, int n, int parts, const float* ws, float alpha,
                            float beta, float* c, int ldc) {
    launch(gx, gy, bx, by, true, [=] { gemm_reduce(m, n, parts, ws, alpha, beta, c, ldc); });
}
void hearth_emu_bias_act_forward(GRID, int rows, int cols, float* z, const float* bias, int relu) {
    launch(gx, gy, bx, by, true, [=] { bias_act_forward(rows, cols, z, bias, relu); });
}
void hearth_emu_relu_backward(GRID, long n, float* grad, const float* act) {
    launch(gx, gy, bx, by, true, [=] { relu_backward(n, grad, act); });
}
void hearth_emu_column_sums(GRID, int rows, int cols, const float* grad, float* out) {
    launch(gx, gy, bx, by, false, [=] { column_sums(rows, cols, grad, out); });
}
void hearth_emu_sigmoid_bce(GRID, int n, const float* logits, const float* targets, float scale,
                            float* prob, float* grad, float* partial) {
    launch(gx, gy, bx, by, false, [=] { sigmoid_bce(n, logits, targets, scale, prob, grad, partial); });
}
void hearth_emu_softmax_ce(GRID, int rows, int classes, const float* logits, const int* labels,
                           float scale, float* prob, float* grad, float* partial) {
    launch(gx, gy, bx, by, false,
           [=] { softmax_ce(rows, classes, logits, labels, scale, prob, grad, partial); });
}
void hearth_emu_mse(GRID, int n, const float* pred, const float* targets, float scale,
                    float* grad, float* partial) {
    launch(gx, gy, bx, by, false, [=] { mse(n, pred, targets, scale, grad, partial); });
}
void hearth_emu_adam_update(GRID, long n, float* param, const float* grad, float* m, float* v,
                            float b1, float b2, float lr_t, float eps_t) {
    launch(gx, gy, bx, by, true, [=] { adam_update(n, param, grad, m, v, b1, b2, lr_t, eps_t); });
}
void hearth_emu_reduce_sum(GRID, long n, const float* x, float* out) {
    launch(gx, gy, bx, by, false, [=] { reduce_sum(n, x, out); });
}
}
