// Adam (Kingma & Ba) with bias correction folded into the step size by the caller:
//   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
//   param -= lr_t * m / (sqrt(v) + eps_t)
// where lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t) and eps_t = eps * sqrt(1 - b2^t).
extern "C" __global__ void adam_update(
    long n, float* __restrict__ param, const float* __restrict__ grad,
    float* __restrict__ m, float* __restrict__ v,
    float b1, float b2, float lr_t, float eps_t)
{
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        float g = grad[i];
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] -= lr_t * mi / (sqrtf(vi) + eps_t);
    }
}

// Partial sums of x: block b writes the sum of its grid-stride share to out[b]. Block size 256.
extern "C" __global__ void reduce_sum(long n, const float* __restrict__ x, float* __restrict__ out)
{
    __shared__ float part[256];
    float local = 0.0f;
    for (long i = (long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x)
        local += x[i];
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
