// Losses and their gradients, each also writing per-block partial sums of the loss (the host,
// or reduce_sum, adds them up). Block size must be 256.

// Sums `local` over the block (256 threads) in shared memory `part`; thread 0 writes the total
// to out[blockIdx.x].
__device__ void block_sum(float local, float* part, float* out)
{
    part[threadIdx.x] = local;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            part[threadIdx.x] += part[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        out[blockIdx.x] = part[0];
}

// Binary cross-entropy on logits: p = sigmoid(z), loss_i = max(z,0) - z*y + log1p(exp(-|z|))
// (stable), grad_i = (p - y) * scale (scale = 1 / batch rows for a mean loss).
extern "C" __global__ void sigmoid_bce(
    int n, const float* __restrict__ logits, const float* __restrict__ targets, float scale,
    float* __restrict__ prob, float* __restrict__ grad, float* __restrict__ loss_partial)
{
    __shared__ float part[256];
    float local = 0.0f;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        float z = logits[i];
        float y = targets[i];
        float p = z >= 0.0f ? 1.0f / (1.0f + expf(-z)) : expf(z) / (1.0f + expf(z));
        prob[i] = p;
        grad[i] = (p - y) * scale;
        local += fmaxf(z, 0.0f) - z * y + log1pf(expf(-fabsf(z)));
    }
    block_sum(local, part, loss_partial);
}

// Softmax cross-entropy over `classes` logits per row with integer labels: prob = softmax,
// loss_r = logsumexp(z_r) - z_r[label], grad = (prob - onehot(label)) * scale. One thread per row.
extern "C" __global__ void softmax_ce(
    int rows, int classes, const float* __restrict__ logits, const int* __restrict__ labels,
    float scale, float* __restrict__ prob, float* __restrict__ grad,
    float* __restrict__ loss_partial)
{
    __shared__ float part[256];
    float local = 0.0f;
    for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += gridDim.x * blockDim.x) {
        const float* z = logits + (long)r * classes;
        float mx = z[0];
        for (int c = 1; c < classes; ++c)
            mx = fmaxf(mx, z[c]);
        float sum = 0.0f;
        for (int c = 0; c < classes; ++c)
            sum += expf(z[c] - mx);
        float lse = mx + logf(sum);
        int label = labels[r];
        for (int c = 0; c < classes; ++c) {
            float p = expf(z[c] - lse);
            prob[(long)r * classes + c] = p;
            grad[(long)r * classes + c] = (p - (c == label ? 1.0f : 0.0f)) * scale;
        }
        local += lse - z[label];
    }
    block_sum(local, part, loss_partial);
}

// Mean squared error for regression: loss_i = (z - y)^2 / 2, grad_i = (z - y) * scale.
extern "C" __global__ void mse(
    int n, const float* __restrict__ pred, const float* __restrict__ targets, float scale,
    float* __restrict__ grad, float* __restrict__ loss_partial)
{
    __shared__ float part[256];
    float local = 0.0f;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        float d = pred[i] - targets[i];
        grad[i] = d * scale;
        local += 0.5f * d * d;
    }
    block_sum(local, part, loss_partial);
}
