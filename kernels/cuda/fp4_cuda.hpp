// CUDA kernels of the NVFP4 / MXFP4 formats and the quantized Linear
// (issue 15), on raw device pointers so that this header and the .cu files
// need no LibTorch (fp4_cuda_torch.hpp binds them). Every launcher enqueues
// on `stream` and returns the launch's cudaError_t (cudaErrorInvalidValue
// for shapes a kernel does not take, cudaErrorMisalignedAddress for
// pointers it cannot vector-load). The arithmetic is the CPU reference's
// (kernels/nvfp4.cpp, kernels/mxfp4.cpp), operation for operation, so
// packing, fake-quant and dequantization agree bit for bit.
//
// Weights may come in a batch of `batch` equal slices [rows, cols] (the
// experts of an MoE layer), each with its own global scale.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace qerl::kernels::cuda {

// amax_bits[b] = max(amax_bits[b], bits of max |w| over slice b) for w:
// [batch, per_batch] fp32 or bf16 (16-byte aligned, per_batch a multiple of
// 8 values); zero amax_bits first. NaN values are skipped.
cudaError_t fp4_amax(const void* w, bool bf16, int64_t batch, int64_t per_batch, uint32_t* amax_bits,
                     cudaStream_t stream);

// NVFP4 pack of w: [batch, rows, cols] (bf16 or fp32; cols % 16 == 0). The
// global scale of slice b is given_global[b], or, when given_global is
// null, G = 2688 / amax from amax_bits[b] (fp4_amax; several sibling
// weights reduced into the same amax share the smallest G, as fused q/k/v
// or gate/up must), written to global_out[b] when global_out is set.
// fake == null: codes to packed [batch, rows, cols / 2] and E4M3 scales to
// scales [batch, rows, cols / 16]. fake set: dequant(quant(w)) in w's dtype
// to fake [batch, rows, cols] instead (the QAT forward, one pass).
cudaError_t nvfp4_quantize(const void* w, bool bf16, int64_t batch, int64_t rows, int64_t cols,
                           const float* given_global, const uint32_t* amax_bits, float* global_out,
                           uint8_t* packed, uint8_t* scales, void* fake, cudaStream_t stream);

// MXFP4 pack of w: [rows, cols] (cols % 32 == 0): E8M0 scales by the OCP
// rule (ocp) or compressed-tensors'. fake as for nvfp4_quantize.
cudaError_t mxfp4_quantize(const void* w, bool bf16, int64_t rows, int64_t cols, bool ocp, uint8_t* packed,
                           uint8_t* scales, void* fake, cudaStream_t stream);

// dequant(W) -> out [batch, rows, cols] bf16 (out_bf16) or fp32: NVFP4 when
// global_scale ([batch] fp32) is set, else MXFP4.
cudaError_t fp4_dequantize(const uint8_t* packed, const uint8_t* scales, const float* global_scale, int64_t batch,
                           int64_t rows, int64_t cols, bool out_bf16, void* out, cudaStream_t stream);

// sums[0] += sum of w^2, sums[1] += sum of (w - dequant(W))^2 in fp64, for
// w [rows, cols] (bf16 or fp32, 16-byte aligned) and its codes (NVFP4 when
// global_scale, one value on the device, is set; else MXFP4), dequant
// rounded to w's dtype as fp4_dequantize writes it: a weight's
// quantization error without a dense temporary or a host read.
cudaError_t fp4_quant_error(const void* w, bool bf16, const uint8_t* packed, const uint8_t* scales,
                            const float* global_scale, int64_t rows, int64_t cols, double* sums, cudaStream_t stream);

// Which kernel fp4_matmul_bf16 / fp4_grouped_matmul_bf16 use for groups of
// at most 16 rows (for benchmarks and tests comparing them). automatic (the
// default): the decode kernel (W as the MMA's A operand); for a plain
// Linear in its wide variant (12 warps of <= 85 registers) up to 8 rows and
// its narrow one (8 warps, 4 K steps in flight each) otherwise, 17-32 rows
// in one pass of four 8-row x tiles; for grouped experts in its stream
// variant (persistent warps that each own whole 16-row tiles of W over all
// of K: no barrier, no drain between tiles), as measured fastest from 8
// tokens of the A2.7B MoE layer up (bench/NOTES.md; at 1 token narrow and
// compact are faster). narrow / wide / compact: that variant (wide only up to
// 8 rows; compact, blocks of 4 warps with 4 per SM, up to 16 rows);
// general: the general tile kernel; stream: as automatic does for experts
// (plain Linears as automatic).
enum class DecodeKernel { automatic, narrow, wide, compact, general, stream };
void fp4_select_decode_kernel(DecodeKernel kernel);
DecodeKernel fp4_decode_kernel();

// m16 tiles per block pass for `rows` rows of x (1..4).
int fp4_mma_tiles(int64_t rows);

// W4A16 on the tensor cores, decode shapes (M <= 64 in one pass; more rows
// loop): y[m, n] = sum_k x[m, k] * dequant(W)[n, k] (+ bias[n]) with x
// [M, K] bf16, W's codes [N, K / 2] + scales (global_scale null = MXFP4),
// y [M, N] bf16. K % 16 == 0 (NVFP4) or % 32 (MXFP4). W is decoded in
// registers; no dense copy of it is written anywhere.
cudaError_t fp4_matmul_bf16(const __nv_bfloat16* x, int64_t M, int64_t K, const uint8_t* packed,
                            const uint8_t* scales, const float* global_scale, int64_t N, const __nv_bfloat16* bias,
                            __nv_bfloat16* y, cudaStream_t stream);

// The same for all experts of an MoE layer in one launch: x [rows, K] holds
// each expert's rows contiguously (sorted by expert), offsets [experts + 1]
// (int32, on the device) bound them, W's codes are [experts, N, K / 2] with
// scales [experts, N, K / group] and global_scale [experts]. rows_hint (the
// expected rows per expert, read on the host, never the device counts)
// picks the tile height. Experts with no rows cost one empty block each.
// W4A16 on the tensor cores, prefill shapes (fp4_matmul_prefill.cu): y =
// x · dequant(W)ᵀ (+ bias) for any number of rows, W decoded in registers
// from codes staged in shared memory, no dense copy of W written anywhere.
// offsets null: one weight (experts = 1), rows [0, rows). offsets set
// ([experts + 1] int32 on the device, rows sorted by expert): expert e's
// codes multiply rows [offsets[e], offsets[e + 1]) in the same launch
// (bias must then be null). K % 16 == 0 (NVFP4) or % 32 (MXFP4); x 16-byte
// and codes 8-byte aligned; rows / 128 + experts <= 65535. splits > 1
// (one weight only; fp4_prefill_splits says how many): K is split over
// that many blocks per tile, which add fp32 sums into split_k_workspace
// ([rows, N], zeroed by the caller) before one more kernel writes y (for
// grids of tiles too small to fill the GPU: a few hundred rows).
cudaError_t fp4_prefill_matmul_bf16(const __nv_bfloat16* x, const int32_t* offsets, int64_t experts, int64_t rows,
                                    int64_t K, const uint8_t* packed, const uint8_t* scales,
                                    const float* global_scale, int64_t N, const __nv_bfloat16* bias,
                                    __nv_bfloat16* y, cudaStream_t stream, float* split_k_workspace = nullptr,
                                    int splits = 1);
int fp4_prefill_splits(int64_t rows, int64_t K, int64_t N);
// Which prefill kernel fp4_prefill_matmul_bf16 runs (for benchmarks and
// tests comparing them): mma_sync (v1: mma.sync m16n8k16, any sm_90),
// wgmma (v2: Hopper's warpgroup MMA, W decoded into its A registers, x
// read by the tensor cores from shared memory); automatic: wgmma (measured
// faster: bench/NOTES.md).
enum class PrefillKernel { automatic, mma_sync, wgmma };
void fp4_select_prefill_kernel(PrefillKernel kernel);
PrefillKernel fp4_prefill_kernel();

cudaError_t fp4_grouped_matmul_bf16(const __nv_bfloat16* x, const int32_t* offsets, int64_t experts,
                                    int64_t rows_hint, int64_t K, const uint8_t* packed, const uint8_t* scales,
                                    const float* global_scale, int64_t N, __nv_bfloat16* y, cudaStream_t stream);

// bf16 experts at decode sizes: y = x_sorted · W_eᵀ for each expert's
// rows (offsets [E + 1] on the device), W [E, N, K] bf16: persistent warps
// that each own whole 16-row tiles of W over all of K (the stream variant
// of the W4A16 decode kernel, W read as bf16), in passes of rows_per_group
// (at most 16) rows. K % 64 == 0, x and W 16-byte aligned; else
// cudaErrorInvalidValue.
cudaError_t bf16_grouped_decode_bf16(const __nv_bfloat16* x, const int32_t* offsets, int64_t experts,
                                     int64_t rows_per_group, const __nv_bfloat16* w, int64_t N, int64_t K,
                                     __nv_bfloat16* y, cudaStream_t stream);
bool bf16_grouped_decode_fits(int64_t rows_per_group, int64_t K, int64_t N, const void* x, const void* w);

// MoE top-k mixing: out[t, :] = sum_s weight[t, s] * y[position[t * top_k + s], :]
// (fp32 sums, one rounding to bf16), y the expert outputs in sorted order.
// weights [T, top_k]: fp32, or bf16 (bf16_weights), whose weighted terms
// are each rounded to bf16 first, as the CPU path multiplies in bf16.
cudaError_t moe_mix_bf16(const __nv_bfloat16* y, const int64_t* position, const void* weights, bool bf16_weights,
                         int64_t tokens, int64_t top_k, int64_t hidden, __nv_bfloat16* out, cudaStream_t stream);

}  // namespace qerl::kernels::cuda
