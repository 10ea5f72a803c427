// Argument checks and constants shared by the rl/ sources (private). Each
// check throws a qerl::Error naming the function and the offending tensor, so
// a shape or dtype mistake in a caller surfaces as one clear line rather than
// a LibTorch stack dump.
#pragma once

#include <string>

#include <torch/types.h>

#include "common/error.hpp"

namespace qerl::rl::detail {

// Log-ratios are clamped to [-kMaxLogRatio, kMaxLogRatio] before exp:
// e^20 ~ 4.9e8 is finite in float32 and far beyond any clip range.
inline constexpr double kMaxLogRatio = 20;

inline std::string shape_of(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t d = 0; d < t.dim(); ++d) s += (d ? ", " : "") + std::to_string(t.size(d));
  return s + "]";
}

inline void require(bool condition, const std::string& where, const std::string& what) {
  if (!condition) throw Error(where + ": " + what);
}

inline void require_dim(const torch::Tensor& t, int64_t dim, const std::string& where, const std::string& name) {
  require(t.defined() && t.dim() == dim, where,
          name + " must have " + std::to_string(dim) + " dimensions, got " + (t.defined() ? shape_of(t) : "undefined"));
}

inline void require_same_shape(const torch::Tensor& a, const torch::Tensor& b, const std::string& where,
                               const std::string& name_a, const std::string& name_b) {
  require(a.sizes() == b.sizes(), where,
          name_a + " " + shape_of(a) + " and " + name_b + " " + shape_of(b) + " differ in shape");
}

inline void require_floating(const torch::Tensor& t, const std::string& where, const std::string& name) {
  require(t.is_floating_point(), where, name + " must be a floating-point tensor");
}

}  // namespace qerl::rl::detail
