// Moving training data on the device.

// dst[i, :] = src[idx[i], :] for i < rows, rows of `cols` 32-bit words: gathers a minibatch
// (features as floats, or labels as ints: words are copied, never converted).
// Launch: one thread per word (grid-stride loop).
extern "C" __global__ void gather_rows(
    int rows, int cols, const unsigned int* __restrict__ src, const unsigned int* __restrict__ idx,
    unsigned int* __restrict__ dst)
{
    long total = (long)rows * cols;
    for (long w = (long)blockIdx.x * blockDim.x + threadIdx.x; w < total;
         w += (long)gridDim.x * blockDim.x) {
        long r = w / cols;
        long c = w - r * cols;
        dst[w] = src[(long)idx[r] * cols + c];
    }
}
