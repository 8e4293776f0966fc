// Fused bias + activation, forward and backward, row-major [rows x cols].

// z[i, j] = act(z[i, j] + bias[j]) in place; act is ReLU when relu != 0, identity otherwise.
// Launch: one thread per element (grid-stride loop).
extern "C" __global__ void bias_act_forward(
    int rows, int cols, float* __restrict__ z, const float* __restrict__ bias, int relu)
{
    long total = (long)rows * cols;
    for (long idx = (long)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (long)gridDim.x * blockDim.x) {
        float v = z[idx] + bias[idx % cols];
        z[idx] = (relu && v < 0.0f) ? 0.0f : v;
    }
}

// grad[i] = 0 where the ReLU output act[i] is not positive (in place): the ReLU backward step.
extern "C" __global__ void relu_backward(
    long n, float* __restrict__ grad, const float* __restrict__ act)
{
    for (long idx = (long)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (long)gridDim.x * blockDim.x) {
        if (!(act[idx] > 0.0f))
            grad[idx] = 0.0f;
    }
}

// out[j] = sum over i of grad[i, j]: the bias gradient. One block of 256 threads per column
// stripe of 32 columns; each thread sums a strided subset of rows, then a shared reduction.
// Launch: grid = ceil(cols / 32), block = (32, 8).
extern "C" __global__ void column_sums(
    int rows, int cols, const float* __restrict__ grad, float* __restrict__ out)
{
    __shared__ float part[8][33];
    int col = blockIdx.x * 32 + threadIdx.x;
    float s = 0.0f;
    if (col < cols) {
        for (int r = threadIdx.y; r < rows; r += 8)
            s += grad[(long)r * cols + col];
    }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && col < cols) {
        float t = 0.0f;
        for (int y = 0; y < 8; ++y)
            t += part[y][threadIdx.x];
        out[col] = t;
    }
}
