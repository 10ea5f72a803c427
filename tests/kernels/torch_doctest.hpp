// LibTorch + doctest in one test file: c10's logging defines a CHECK macro
// that would shadow doctest's, so torch comes first and its CHECK goes.
// Also: bit-level tensor comparison, errors against an fp32 reference, a
// CUDA-visible check that says when a case is skipped, and a qerl::Error
// message catcher.
#pragma once

#include <cstring>
#include <functional>
#include <string>

#include <torch/cuda.h>
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

// ||got - reference|| / ||reference|| (got on any device, in any dtype).
inline double relative_error(const torch::Tensor& got, const torch::Tensor& reference) {
  return (got.cpu().to(torch::kFloat) - reference).norm().item<double>() / reference.norm().item<double>();
}

// The largest error of any one value against the reference's largest
// magnitude: catches a few wrong outputs (an edge tile, a K tail) that the
// norm of the whole error would average away.
inline double worst_error(const torch::Tensor& got, const torch::Tensor& reference) {
  return (got.cpu().to(torch::kFloat) - reference).abs().max().item<double>() / reference.abs().max().item<double>();
}

// Whether a CUDA device is visible; where none is, the case says that
// `what` (e.g. "the CUDA fp4 kernels") were not run.
inline bool cuda_visible(const char* what) {
  if (torch::cuda::is_available()) return true;
  MESSAGE("SKIPPED: no CUDA device visible; " << what << " were not run");
  return false;
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
