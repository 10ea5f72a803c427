// Per-weight quantization error statistics of qerl-scan: SQNR, relative L2
// error, deadzone (nonzero weights that quantize to zero) and saturation
// (elements at the largest E2M1 magnitude, 6). Plain C++ on float arrays, no
// LibTorch, so the arithmetic is testable on hand-made blocks; sums run in
// double, and totals over many weights add up element-weighted.
#pragma once

#include <cstdint>

namespace qerl::tools {

struct QuantErrorStats {
  int64_t elements = 0;      // weights looked at
  int64_t nonzero = 0;       // weights != 0
  int64_t deadzone = 0;      // weights != 0 whose fake-quantized value is ±0
  int64_t saturated = 0;     // elements whose E2M1 code has magnitude 6 (index 7)
  double signal_energy = 0;  // sum w^2
  double error_energy = 0;   // sum (w - q)^2

  // 10 log10(signal / error); +inf when the error is 0 (exact, or all zeros).
  double sqnr_db() const;
  // ||w - q|| / ||w||; 0 when the error is 0.
  double relative_error() const;
  // deadzone / nonzero (0 when every weight is 0).
  double deadzone_fraction() const;
  // saturated / elements (0 when empty).
  double saturation_fraction() const;

  // Element-weighted totals: sums and counts add, so the totals' SQNR and
  // relative error are those of all weights concatenated.
  QuantErrorStats& operator+=(const QuantErrorStats& other);
};

// w, q: `count` floats, a weight and its fake-quantized copy in the same
// row-major layout; packed: the count / 2 bytes of E2M1 codes the quantizer
// wrote for it (two per byte, even element in the low nibble; count even).
//
// Deadzone is decided on the dequantized values (q == ±0: what the layer
// computes with). Saturation is counted from the packed codes (magnitude
// index 7 is ±6): "|q| == 6 * block scale" would need the block's scale,
// and NVFP4's q = 6 * (s / G) is rounded in fp32 (and to bf16 for bf16
// weights), so comparing floats could miss; the code is exact.
QuantErrorStats quant_error_stats(const float* w, const float* q, const uint8_t* packed, int64_t count);

}  // namespace qerl::tools
