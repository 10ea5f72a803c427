// Device-side pieces shared by the CUDA fp4 kernels: the element and scale
// formats (E2M1, FP8 E4M3, E8M0) and the rounding rules of the CPU reference
// (kernels/e2m1.cpp, fp8_e4m3.cpp, nvfp4.cpp, mxfp4.cpp), written so that a
// kernel reproduces the reference bit for bit. Compiled without fast-math:
// every division here is IEEE (as on the CPU).
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

namespace qerl::kernels::cuda::device {

constexpr float fp32_tiny = 1.17549435e-38f;  // 2^-126: the reference clamps amax below by it
constexpr float nvfp4_global_numerator = 448.0f * 6.0f;

// Round to bf16 and back (RTNE), the reference's round_to(bf16, v).
__device__ __forceinline__ float round_bf16(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }
__device__ __forceinline__ float round_to(bool bf16, float v) { return bf16 ? round_bf16(v) : v; }

// E2M1 code of v: nearest magnitude, ties to the even code, saturating at 6;
// the sign bit only for v < 0 (so -0.0 gives +0, a tiny negative -0); NaN -> 0.
// Without a chain of compares: the grid's spacing is 0.5 below 2, 1 in [2, 4)
// and 2 from 4, so the code is base + rint(a * step) (step a power of two,
// so the product is exact), rint by the 1.5 * 2^23 magic addition (round to
// nearest even, as the reference's ties), then saturated at 7.
__device__ __forceinline__ uint32_t e2m1_encode(float v) {
  const float a = fabsf(v);
  const bool low = a < 2.0f, mid = a < 4.0f;
  const float step = low ? 2.0f : (mid ? 1.0f : 0.5f);
  const uint32_t base = low ? 0u : (mid ? 2u : 4u);
  const uint32_t m = min((__float_as_uint(fmaf(a, step, 12582912.0f)) - 0x4B400000u) + base, 7u);
  if (v != v) return 0;
  return (v < 0.0f ? 8u : 0u) | m;
}

// v / d rounded as IEEE division, from r = 1 / d (itself IEEE): the quotient
// v * r is faithful and one residual step (exact through fma) rounds it
// correctly (Markstein). One reciprocal per scale group replaces a division
// per value; the kernel tests check the codes bit for bit against the CPU.
__device__ __forceinline__ float divide_by(float v, float d, float r) {
  const float q = v * r;
  return fmaf(fmaf(-q, d, v), r, q);
}

// Value of an E2M1 code (low 4 bits). Twice the magnitudes (0, 1, 2, 3, 4,
// 6, 8, 12) as nibbles of one constant: a shift, not a table.
__device__ __forceinline__ float e2m1_value(uint32_t code) {
  const float m = static_cast<float>((0xC8643210u >> (4u * (code & 7u))) & 0xFu) * 0.5f;
  return (code & 8u) ? -m : m;
}

__device__ __forceinline__ float e4m3_value(uint8_t bits) {
  __nv_fp8_e4m3 v;
  v.__x = bits;
  return static_cast<float>(v);
}

// FP8 E4M3 bits of v: round to nearest even, saturating at +-448.
__device__ __forceinline__ uint8_t e4m3_encode(float v) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
}

// 2^(code - 127), exact (code 0 is the fp32 subnormal 2^-127; 255 gives inf).
__device__ __forceinline__ float e8m0_value(uint8_t code) {
  return code == 0 ? 5.87747175e-39f : __uint_as_float(static_cast<uint32_t>(code) << 23);
}

// NVFP4 global scale G from amax(|w|) (reference: kernels::nvfp4_global_scale).
__device__ __forceinline__ float nvfp4_global_scale(float amax, bool bf16) {
  amax = fmaxf(amax, fp32_tiny);
  const float g = round_to(bf16, round_to(bf16, 1.0f / amax) * nvfp4_global_numerator);
  return isfinite(g) ? g : 1.0f;
}

// E4M3 bits of one NVFP4 block scale (reference: kernels::nvfp4_block_scale).
__device__ __forceinline__ uint8_t nvfp4_block_scale(float block_amax, float global_scale, bool bf16) {
  const float local = round_to(bf16, block_amax / 6.0f);
  const uint8_t bits = e4m3_encode(global_scale * local);
  return bits == 0 ? 0x20 : bits;
}

// E8M0 code of an MXFP4 group from its amax (reference: kernels::mxfp4_scale_code).
__device__ __forceinline__ uint8_t mxfp4_scale_code(float amax, bool ocp) {
  if (ocp) {
    if (amax != amax) return 0xFF;
    if (amax == 0.0f) return 0;
    const int e = isinf(amax) ? (1 << 29) : ilogbf(amax);
    return static_cast<uint8_t>(min(max(e - 2 + 127, 0), 254));
  }
  const uint32_t rounded = (__float_as_uint(amax) + (1u << 21)) & 0xFF800000u;
  if (rounded == 0) return 0;
  const int biased = static_cast<int>(rounded >> 23);
  if (biased == 0xFF) return 0xFF;
  return static_cast<uint8_t>(min(max(biased - 2, 0), 255));
}

// Bytes of {a, b} picked by the selector's nibbles (PTX prmt).
__device__ __forceinline__ uint32_t prmt(uint32_t a, uint32_t b, uint32_t selector) {
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(selector));
  return r;
}

// Eight E2M1 codes (one 32-bit word, element 0 in the low nibble) -> eight
// bf16 values as four bf16x2 words (element 2i low half of out[i]): the
// magnitudes' bf16 high and low bytes are looked up with byte permutes
// (prmt), and one more permute gathers the sign bits (bit 3 of each nibble)
// into bits 15 and 31 of each word.
__device__ __forceinline__ void e2m1x8_to_bf16x8(uint32_t w, uint32_t (&out)[4]) {
  // bf16 of 0, 0.5, 1, 1.5 | 2, 3, 4, 6: 0000 3F00 3F80 3FC0 | 4000 4040 4080 40C0
  constexpr uint32_t hi_lo = 0x3F3F3F00u, hi_hi = 0x40404040u;
  constexpr uint32_t lo_lo = 0xC0800000u, lo_hi = 0xC0804000u;
  const uint32_t m = w & 0x77777777u, w4 = w << 4;
  uint32_t hi[2], lo[2];
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(hi[0]) : "r"(hi_lo), "r"(hi_hi), "r"(m));
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(lo[0]) : "r"(lo_lo), "r"(lo_hi), "r"(m));
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(hi[1]) : "r"(hi_lo), "r"(hi_hi), "r"(m >> 16));
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(lo[1]) : "r"(lo_lo), "r"(lo_hi), "r"(m >> 16));
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    uint32_t v, sign;
    const uint32_t selector = (i % 2 == 0) ? 0x5140u : 0x7362u;
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(v) : "r"(lo[i / 2]), "r"(hi[i / 2]), "r"(selector));
    // byte 1 <- byte i of w << 4 (element 2i's sign at bit 15), byte 3 <- byte i of w (element 2i + 1's at bit 31)
    const uint32_t sign_selector = 0x0000u | (static_cast<uint32_t>(i) << 12) | (static_cast<uint32_t>(4 + i) << 4);
    asm("prmt.b32 %0, %1, %2, %3;" : "=r"(sign) : "r"(w), "r"(w4), "r"(sign_selector));
    out[i] = v | (sign & 0x80008000u);
  }
}

__device__ __forceinline__ uint32_t bf16x2_mul(uint32_t a, __nv_bfloat162 s) {
  __nv_bfloat162 v = *reinterpret_cast<__nv_bfloat162*>(&a);
  v = __hmul2(v, s);
  return *reinterpret_cast<uint32_t*>(&v);
}

// c += a * b on the tensor cores: m16n8k16, bf16 inputs, fp32 accumulators.
__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

}  // namespace qerl::kernels::cuda::device
