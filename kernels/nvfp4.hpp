// NVFP4 weights (compressed-tensors `nvfp4-pack-quantized`), CPU reference on
// contiguous row-major float arrays, no LibTorch. A weight [rows, cols] is cut
// into groups of 16 along cols; each group stores E2M1 codes (two per byte,
// even element low) and one E4M3 block scale s; the tensor has one fp32
// global scale G. Value = e2m1 * (s / G). kernels/README.md gives the rules.
#pragma once

#include <cstdint>

#include "kernels/bf16.hpp"

namespace qerl::kernels {

inline constexpr int64_t nvfp4_group_size = 16;

// G = 448 * 6 / amax(|w|) over `count` values, with compressed-tensors'
// arithmetic: amax clamped below by 2^-126, G = (1 / amax) * 2688 with each
// op rounded to `dtype`, and a non-finite result replaced by 1.0 (so an
// all-zero or tiny tensor gets G = 1, never inf/NaN).
float nvfp4_global_scale(const float* w, int64_t count, WeightDtype dtype);

// E4M3 bits of one block scale: fp8(G * (amax_block / 6)), the division
// rounded to `dtype`, the product in fp32; a scale that rounds to 0 is
// stored as 0.125 (0x20).
uint8_t nvfp4_block_scale(float block_amax, float global_scale, WeightDtype dtype);

// w: [rows, cols] floats (a bf16 weight widened exactly, dtype = bf16);
// cols must be a multiple of 16 (throws qerl::Error otherwise).
// packed: [rows, cols / 2] bytes; block_scale: [rows, cols / 16] E4M3 bits.
// Elements: e2m1(x / (s / G)), both divisions in fp32.
void nvfp4_quantize(const float* w, int64_t rows, int64_t cols, float global_scale, WeightDtype dtype,
                    uint8_t* packed, uint8_t* block_scale);

// out: [rows, cols] fp32 values e2m1 * (s / G); round them to bf16 for a
// bf16 result (that is what compressed-tensors does too).
void nvfp4_dequantize(const uint8_t* packed, const uint8_t* block_scale, float global_scale, int64_t rows,
                      int64_t cols, float* out);

}  // namespace qerl::kernels
