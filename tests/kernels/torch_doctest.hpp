// LibTorch + doctest in one test file: c10's logging defines a CHECK macro
// that would shadow doctest's, so torch comes first and its CHECK goes.
// Also: bit-level tensor comparison and a qerl::Error message catcher.
#pragma once

#include <cstring>
#include <functional>
#include <string>

#include <torch/types.h>

#undef CHECK
#include <doctest/doctest.h>

#include "common/error.hpp"

namespace qerl::kernels::test {

// Same dtype, same shape and identical bytes (so -0.0 != 0.0, NaN == NaN).
inline bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const torch::Tensor x = a.cpu().contiguous(), y = b.cpu().contiguous();
  return std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()) == 0;
}

// The message of the qerl::Error that `f` throws ("" if it throws none).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const qerl::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace qerl::kernels::test
