// Shared by the NVFP4 / MXFP4 error tests: a seeded N(0, 1) weight and the
// relative L2 error ||w - w_hat|| / ||w|| (SQNR = -20 log10 of it).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace qerl::kernels::test {

inline std::vector<float> gaussian_weight(int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<size_t>(count));
  for (float& x : w) x = normal(rng);
  return w;
}

inline double relative_l2(const std::vector<float>& w, const std::vector<float>& w_hat) {
  double error = 0.0, norm = 0.0;
  for (size_t i = 0; i < w.size(); ++i) {
    error += (static_cast<double>(w[i]) - w_hat[i]) * (static_cast<double>(w[i]) - w_hat[i]);
    norm += static_cast<double>(w[i]) * w[i];
  }
  return std::sqrt(error / norm);
}

inline double sqnr_db(double relative_l2) { return -20.0 * std::log10(relative_l2); }

}  // namespace qerl::kernels::test
