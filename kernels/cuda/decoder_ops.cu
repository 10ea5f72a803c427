// The decoder's fused small kernels; see decoder_ops.hpp.
#include "kernels/cuda/decoder_ops.hpp"

#include <cmath>

namespace qerl::kernels::cuda {
namespace {

__device__ inline float round_bf16(float v) { return __bfloat162float(__float2bfloat16(v)); }

// One block per row; each thread holds 8 values per pass of 16 bytes.
// Added: the row is bf16(x + residual), written to sum first; each thread
// reads back only what it wrote.
template <bool Added>
__global__ void rms_norm_kernel(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ residual,
                                const __nv_bfloat16* __restrict__ weight, float eps, int dim,
                                __nv_bfloat16* __restrict__ sum, __nv_bfloat16* __restrict__ out) {
  const int64_t offset = static_cast<int64_t>(blockIdx.x) * dim;
  const __nv_bfloat16* row = Added ? sum + offset : x + offset;
  __nv_bfloat16* dst = out + offset;
  float squares = 0.f;
  for (int i = threadIdx.x * 8; i < dim; i += blockDim.x * 8) {
    uint4 packed = *reinterpret_cast<const uint4*>(x + offset + i);
    __nv_bfloat16* v = reinterpret_cast<__nv_bfloat16*>(&packed);
    if constexpr (Added) {
      const uint4 other = *reinterpret_cast<const uint4*>(residual + offset + i);
      const __nv_bfloat16* r = reinterpret_cast<const __nv_bfloat16*>(&other);
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = __float2bfloat16(__bfloat162float(v[j]) + __bfloat162float(r[j]));
      *reinterpret_cast<uint4*>(sum + offset + i) = packed;
    }
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float f = __bfloat162float(v[j]);
      squares += f * f;
    }
  }
  __shared__ float partial[32];
  for (int o = 16; o > 0; o /= 2) squares += __shfl_xor_sync(0xffffffffu, squares, o);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = squares;
  __syncthreads();
  if (threadIdx.x < 32) {
    float s = threadIdx.x < blockDim.x / 32 ? partial[threadIdx.x] : 0.f;
    for (int o = 16; o > 0; o /= 2) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (threadIdx.x == 0) partial[0] = s;
  }
  __syncthreads();
  const float inverse = rsqrtf(partial[0] / static_cast<float>(dim) + eps);
  for (int i = threadIdx.x * 8; i < dim; i += blockDim.x * 8) {
    const uint4 packed = *reinterpret_cast<const uint4*>(row + i);
    const uint4 scale = *reinterpret_cast<const uint4*>(weight + i);
    const __nv_bfloat16* v = reinterpret_cast<const __nv_bfloat16*>(&packed);
    const __nv_bfloat16* w = reinterpret_cast<const __nv_bfloat16*>(&scale);
    uint4 result;
    __nv_bfloat16* r = reinterpret_cast<__nv_bfloat16*>(&result);
#pragma unroll
    for (int j = 0; j < 8; ++j)  // as weight * x32.to(bf16): normalized rounded, then the product
      r[j] = __float2bfloat16(__bfloat162float(w[j]) * round_bf16(__bfloat162float(v[j]) * inverse));
    *reinterpret_cast<uint4*>(dst + i) = result;
  }
}

// The rotate-half pair (lo, hi) = (x[d], x[d + D/2]) with cos/sin at d and
// d + D/2: each product and the sum rounded to bf16, as the composed ops.
__device__ inline void rotate_pair(const __nv_bfloat16* in, const __nv_bfloat16* c, const __nv_bfloat16* n,
                                   int64_t d, int64_t half, __nv_bfloat16* o) {
  const float lo = __bfloat162float(in[d]), hi = __bfloat162float(in[d + half]);
  o[d] = __float2bfloat16(round_bf16(lo * __bfloat162float(c[d])) + round_bf16(-hi * __bfloat162float(n[d])));
  o[d + half] = __float2bfloat16(round_bf16(hi * __bfloat162float(c[d + half])) +
                                 round_bf16(lo * __bfloat162float(n[d + half])));
}

// One thread per (b, s, h, d < D/2) pair: out[d] and out[d + D/2].
__global__ void rotary_kernel(const __nv_bfloat16* __restrict__ x, const __nv_bfloat16* __restrict__ cos,
                              const __nv_bfloat16* __restrict__ sin, int64_t seq, int64_t heads, int64_t dim,
                              int64_t pairs, __nv_bfloat16* __restrict__ out) {
  const int64_t half = dim / 2;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < pairs;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t d = i % half;
    const int64_t h = (i / half) % heads;
    const int64_t bs = i / (half * heads);  // b * seq + s
    const int64_t s = bs % seq, b = bs / seq;
    const __nv_bfloat16* in = x + (bs * heads + h) * dim;
    const __nv_bfloat16* c = cos + bs * dim;
    const __nv_bfloat16* n = sin + bs * dim;
    rotate_pair(in, c, n, d, half, out + ((b * heads + h) * seq + s) * dim);
  }
}


// One thread per (b, h, d < D/2) pair of one new token: the rotated key
// pair (rotate_pair, as rotary_kernel) and the value pair, both written at the
// cache slot *slot (skipped if outside the capacity).
__global__ void rotary_kv_cache_kernel(const __nv_bfloat16* __restrict__ k, const __nv_bfloat16* __restrict__ v,
                                       const __nv_bfloat16* __restrict__ cos, const __nv_bfloat16* __restrict__ sin,
                                       int64_t heads, int64_t dim, int64_t pairs, const int64_t* __restrict__ slot,
                                       int64_t capacity, __nv_bfloat16* __restrict__ k_cache,
                                       __nv_bfloat16* __restrict__ v_cache) {
  const int64_t half = dim / 2;
  const int64_t s = *slot;
  if (s < 0 || s >= capacity) return;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < pairs;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t d = i % half;
    const int64_t bh = i / half;  // b * heads + h
    const int64_t b = bh / heads;
    const __nv_bfloat16* in = k + bh * dim;
    const __nv_bfloat16* c = cos + b * dim;
    const __nv_bfloat16* n = sin + b * dim;
    const int64_t at = (bh * capacity + s) * dim;
    rotate_pair(in, c, n, d, half, k_cache + at);
    v_cache[at + d] = v[bh * dim + d];
    v_cache[at + d + half] = v[bh * dim + d + half];
  }
}

// One thread per value; silu as LibTorch's kernel computes it (fp32,
// x / (1 + exp(-x))), rounded to bf16 before the product, as the two ops do.
__global__ void silu_mul_kernel(const __nv_bfloat16* __restrict__ gate, int64_t gate_stride,
                                const __nv_bfloat16* __restrict__ up, int64_t up_stride, int64_t rows, int64_t cols,
                                __nv_bfloat16* __restrict__ out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < rows * cols;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, c = i % cols;
    const float g = __bfloat162float(gate[r * gate_stride + c]);
    const float silu = round_bf16(g / (1.f + expf(-g)));
    out[i] = __float2bfloat16(silu * __bfloat162float(up[r * up_stride + c]));
  }
}

// moe + bf16(bf16(sigmoid(gate)) * shared): each op rounded as LibTorch's.
__global__ void shared_expert_add_kernel(const __nv_bfloat16* __restrict__ moe, const __nv_bfloat16* __restrict__ gate,
                                         int64_t gate_stride, const __nv_bfloat16* __restrict__ shared,
                                         int64_t tokens, int64_t hidden, __nv_bfloat16* __restrict__ out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < tokens * hidden;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = __bfloat162float(gate[(i / hidden) * gate_stride]);
    const float sigmoid = round_bf16(1.f / (1.f + expf(-g)));
    out[i] = __float2bfloat16(__bfloat162float(moe[i]) + round_bf16(sigmoid * __bfloat162float(shared[i])));
  }
}

__device__ inline float warp_max(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

__device__ inline float warp_sum(float v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

__device__ inline void store_weight(float* w, float v) { *w = v; }
__device__ inline void store_weight(__nv_bfloat16* w, float v) { *w = __float2bfloat16(v); }

// One warp per token; lane l holds experts l, l + 32, ... (up to 8 each).
// Probabilities are >= 0, so taken and absent experts are marked -1.
// The order is descending with ties to the lower id; LibTorch's topk picks
// the same set but may order tied values otherwise.
template <typename Weight>
__global__ void moe_route_kernel(const __nv_bfloat16* __restrict__ logits, int64_t tokens, int experts, int top_k,
                                 bool normalize, int64_t* __restrict__ indices, Weight* __restrict__ weights) {
  constexpr int per_lane = static_cast<int>(route_max_experts / 32);
  const int lane = threadIdx.x % 32;
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32;
  if (t >= tokens) return;  // the whole warp: t is the same for its lanes
  const __nv_bfloat16* row = logits + t * experts;
  float v[per_lane];
  float largest = -INFINITY;
#pragma unroll
  for (int j = 0; j < per_lane; ++j) {
    const int e = lane + 32 * j;
    v[j] = e < experts ? __bfloat162float(row[e]) : -INFINITY;
    largest = fmaxf(largest, v[j]);
  }
  largest = warp_max(largest);
  float sum = 0.f;
#pragma unroll
  for (int j = 0; j < per_lane; ++j) {
    const bool present = lane + 32 * j < experts;
    v[j] = present ? expf(v[j] - largest) : 0.f;
    sum += v[j];
  }
  sum = warp_sum(sum);
  // A NaN probability (NaN logits) ranks below every number but above the
  // taken and absent experts, so that ids stay valid; its weight is NaN.
#pragma unroll
  for (int j = 0; j < per_lane; ++j) {
    const float p = v[j] / sum;
    v[j] = lane + 32 * j < experts ? (isnan(p) ? -0.5f : p) : -1.f;
  }
  float mine = 0.f;  // lane k keeps the k-th pick
  int mine_index = 0;
  for (int k = 0; k < top_k; ++k) {
    float best = -2.f;
    int best_index = experts;
#pragma unroll
    for (int j = 0; j < per_lane; ++j)
      if (v[j] > best) best = v[j], best_index = lane + 32 * j;  // j ascending: the lower id wins a tie
    for (int offset = 16; offset > 0; offset /= 2) {
      const float other = __shfl_xor_sync(0xffffffffu, best, offset);
      const int other_index = __shfl_xor_sync(0xffffffffu, best_index, offset);
      if (other > best || (other == best && other_index < best_index)) best = other, best_index = other_index;
    }
    if (lane == best_index % 32) {
#pragma unroll
      for (int j = 0; j < per_lane; ++j)
        if (j == best_index / 32) v[j] = -1.f;
    }
    if (lane == k) mine = best == -0.5f ? NAN : best, mine_index = best_index;
  }
  if (normalize) mine /= warp_sum(lane < top_k ? mine : 0.f);
  if (lane < top_k) {
    indices[t * top_k + lane] = mine_index;
    store_weight(weights + t * top_k + lane, mine);
  }
}

// One block. Expert ids go to shared memory (an id outside [0, experts)
// becomes the extra bucket `experts`, after every expert); each warp takes
// buckets in turn and walks the ids 32 at a time, counting with a ballot,
// then (after a scan of the counts) writing each match at its rank among
// the bucket's earlier matches: a stable counting sort.
static_assert(sort_max_assignments * sizeof(uint16_t) <= 40 * 1024, "moe_sort_kernel: ids must fit shared memory");

__global__ void moe_sort_kernel(const int64_t* __restrict__ indices, int n, int experts, int top_k,
                                int64_t* __restrict__ order, int64_t* __restrict__ rows,
                                int32_t* __restrict__ offsets, int64_t* __restrict__ position) {
  extern __shared__ uint16_t ids[];
  __shared__ int start[route_max_experts + 2];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  const int buckets = experts + 1;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int64_t e = indices[i];
    ids[i] = static_cast<uint16_t>(e >= 0 && e < experts ? e : experts);
  }
  __syncthreads();
  for (int e = warp; e < buckets; e += warps) {
    int count = 0;
    for (int base = 0; base < n; base += 32) {
      const int i = base + lane;
      count += __popc(__ballot_sync(0xffffffffu, i < n && ids[i] == e));
    }
    if (lane == 0) start[e + 1] = count;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    start[0] = 0;
    for (int e = 0; e < buckets; ++e) start[e + 1] += start[e];
  }
  __syncthreads();
  for (int e = threadIdx.x; e <= experts; e += blockDim.x) offsets[e] = start[e];
  const unsigned below = (1u << lane) - 1u;
  for (int e = warp; e < buckets; e += warps) {
    int next = start[e];
    for (int base = 0; base < n; base += 32) {
      const int i = base + lane;
      const bool match = i < n && ids[i] == e;
      const unsigned ballot = __ballot_sync(0xffffffffu, match);
      if (match) {
        const int d = next + __popc(ballot & below);
        order[d] = i;
        rows[d] = i / top_k;
        position[i] = e < experts ? d : 0;
      }
      next += __popc(ballot);
    }
  }
}

}  // namespace

namespace {

// Blocks for a grid-stride loop over `work` items (at most 65,536).
unsigned grid_for(int64_t work, int threads) {
  const int64_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned>(blocks < (1 << 16) ? blocks : (1 << 16));
}

cudaError_t launch_rms_norm(const __nv_bfloat16* x, const __nv_bfloat16* residual, const __nv_bfloat16* weight,
                            float eps, int64_t rows, int64_t dim, __nv_bfloat16* sum, __nv_bfloat16* out,
                            cudaStream_t stream) {
  if (dim % 8 != 0 || rows > 0x7fffffff) return cudaErrorInvalidValue;
  for (const void* p : {static_cast<const void*>(x), static_cast<const void*>(residual),
                        static_cast<const void*>(weight), static_cast<const void*>(sum),
                        static_cast<const void*>(out)})
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return cudaErrorMisalignedAddress;
  if (rows == 0) return cudaSuccess;
  int threads = static_cast<int>((dim / 8 + 31) / 32 * 32);
  threads = threads > 1024 ? 1024 : threads;
  if (residual != nullptr)
    rms_norm_kernel<true><<<static_cast<unsigned>(rows), threads, 0, stream>>>(x, residual, weight, eps,
                                                                              static_cast<int>(dim), sum, out);
  else
    rms_norm_kernel<false><<<static_cast<unsigned>(rows), threads, 0, stream>>>(x, nullptr, weight, eps,
                                                                               static_cast<int>(dim), nullptr, out);
  return cudaGetLastError();
}

}  // namespace

cudaError_t rms_norm_bf16(const __nv_bfloat16* x, const __nv_bfloat16* weight, float eps, int64_t rows, int64_t dim,
                          __nv_bfloat16* out, cudaStream_t stream) {
  return launch_rms_norm(x, nullptr, weight, eps, rows, dim, nullptr, out, stream);
}

cudaError_t add_rms_norm_bf16(const __nv_bfloat16* x, const __nv_bfloat16* residual, const __nv_bfloat16* weight,
                              float eps, int64_t rows, int64_t dim, __nv_bfloat16* sum, __nv_bfloat16* out,
                              cudaStream_t stream) {
  if (residual == nullptr || sum == nullptr) return cudaErrorInvalidValue;
  return launch_rms_norm(x, residual, weight, eps, rows, dim, sum, out, stream);
}

cudaError_t rotary_bf16(const __nv_bfloat16* x, const __nv_bfloat16* cos, const __nv_bfloat16* sin, int64_t batch,
                        int64_t seq, int64_t heads, int64_t dim, __nv_bfloat16* out, cudaStream_t stream) {
  if (dim % 2 != 0) return cudaErrorInvalidValue;
  const int64_t pairs = batch * seq * heads * (dim / 2);
  if (pairs == 0) return cudaSuccess;
  rotary_kernel<<<grid_for(pairs, 256), 256, 0, stream>>>(x, cos, sin, seq, heads, dim, pairs, out);
  return cudaGetLastError();
}

cudaError_t rotary_kv_cache_bf16(const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* cos,
                                const __nv_bfloat16* sin, int64_t batch, int64_t heads, int64_t dim,
                                const int64_t* slot, int64_t capacity, __nv_bfloat16* k_cache,
                                __nv_bfloat16* v_cache, cudaStream_t stream) {
  if (dim % 2 != 0) return cudaErrorInvalidValue;
  const int64_t pairs = batch * heads * (dim / 2);
  if (pairs == 0) return cudaSuccess;
  rotary_kv_cache_kernel<<<grid_for(pairs, 256), 256, 0, stream>>>(k, v, cos, sin, heads, dim, pairs, slot,
                                                                    capacity, k_cache, v_cache);
  return cudaGetLastError();
}

cudaError_t silu_mul_bf16(const __nv_bfloat16* gate, int64_t gate_stride, const __nv_bfloat16* up, int64_t up_stride,
                          int64_t rows, int64_t cols, __nv_bfloat16* out, cudaStream_t stream) {
  if (rows * cols == 0) return cudaSuccess;
  silu_mul_kernel<<<grid_for(rows * cols, 256), 256, 0, stream>>>(gate, gate_stride, up, up_stride, rows, cols, out);
  return cudaGetLastError();
}

cudaError_t shared_expert_add_bf16(const __nv_bfloat16* moe, const __nv_bfloat16* gate, int64_t gate_stride,
                                   const __nv_bfloat16* shared, int64_t tokens, int64_t hidden, __nv_bfloat16* out,
                                   cudaStream_t stream) {
  if (tokens * hidden == 0) return cudaSuccess;
  shared_expert_add_kernel<<<grid_for(tokens * hidden, 256), 256, 0, stream>>>(moe, gate, gate_stride, shared,
                                                                                tokens, hidden, out);
  return cudaGetLastError();
}

cudaError_t moe_route_bf16(const __nv_bfloat16* logits, int64_t tokens, int64_t experts, int64_t top_k,
                           bool normalize, int64_t* indices, void* weights, bool weights_bf16, cudaStream_t stream) {
  if (experts < 1 || experts > route_max_experts || top_k < 1 || top_k > experts || top_k > 32)
    return cudaErrorInvalidValue;
  if (tokens == 0) return cudaSuccess;
  constexpr int warps = 4;
  const int64_t blocks = (tokens + warps - 1) / warps;
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  const auto e = static_cast<int>(experts), k = static_cast<int>(top_k);
  if (weights_bf16)
    moe_route_kernel<<<static_cast<unsigned>(blocks), 32 * warps, 0, stream>>>(
        logits, tokens, e, k, normalize, indices, static_cast<__nv_bfloat16*>(weights));
  else
    moe_route_kernel<<<static_cast<unsigned>(blocks), 32 * warps, 0, stream>>>(logits, tokens, e, k, normalize,
                                                                               indices, static_cast<float*>(weights));
  return cudaGetLastError();
}

cudaError_t moe_sort_by_expert(const int64_t* indices, int64_t n, int64_t experts, int64_t top_k, int64_t* order,
                               int64_t* rows, int32_t* offsets, int64_t* position, cudaStream_t stream) {
  if (n < 0 || n > sort_max_assignments || experts < 1 || experts > route_max_experts || top_k < 1)
    return cudaErrorInvalidValue;
  moe_sort_kernel<<<1, 1024, static_cast<size_t>(n) * sizeof(uint16_t), stream>>>(
      indices, static_cast<int>(n), static_cast<int>(experts), static_cast<int>(top_k), order, rows, offsets,
      position);
  return cudaGetLastError();
}

}  // namespace qerl::kernels::cuda
