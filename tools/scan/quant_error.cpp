// Per-weight quantization error statistics (see quant_error.hpp): one pass
// over the weight, its fake-quantized copy and the packed E2M1 codes.
// Everything accumulates in double so that a multi-million-element weight
// with a tiny error keeps its digits.
#include "tools/scan/quant_error.hpp"

#include <cmath>
#include <limits>
#include <string>

#include "common/error.hpp"
#include "kernels/e2m1.hpp"

namespace qerl::tools {

namespace {

constexpr uint8_t e2m1_max_magnitude_code = 7;  // magnitude index of 6.0

bool is_saturated(uint8_t code) { return (code & 0x07) == e2m1_max_magnitude_code; }

}  // namespace

double QuantErrorStats::sqnr_db() const {
  if (error_energy == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal_energy / error_energy);
}

double QuantErrorStats::relative_error() const {
  if (error_energy == 0.0) return 0.0;
  return std::sqrt(error_energy / signal_energy);
}

double QuantErrorStats::deadzone_fraction() const {
  return nonzero == 0 ? 0.0 : static_cast<double>(deadzone) / static_cast<double>(nonzero);
}

double QuantErrorStats::saturation_fraction() const {
  return elements == 0 ? 0.0 : static_cast<double>(saturated) / static_cast<double>(elements);
}

QuantErrorStats& QuantErrorStats::operator+=(const QuantErrorStats& other) {
  elements += other.elements;
  nonzero += other.nonzero;
  deadzone += other.deadzone;
  saturated += other.saturated;
  signal_energy += other.signal_energy;
  error_energy += other.error_energy;
  return *this;
}

QuantErrorStats quant_error_stats(const float* w, const float* q, const uint8_t* packed, int64_t count) {
  if (count < 0 || count % 2 != 0)
    throw Error("quant_error_stats: element count " + std::to_string(count) + " must be even and >= 0");
  QuantErrorStats stats;
  stats.elements = count;
  for (int64_t i = 0; i < count; ++i) {
    const double x = w[i];
    const double d = x - static_cast<double>(q[i]);
    stats.signal_energy += x * x;
    stats.error_energy += d * d;
    if (x != 0.0) {
      ++stats.nonzero;
      if (q[i] == 0.0f) ++stats.deadzone;  // true for -0.0 too
    }
  }
  for (int64_t j = 0; j < count / 2; ++j) {
    stats.saturated += is_saturated(kernels::e2m1_low(packed[j]));
    stats.saturated += is_saturated(kernels::e2m1_high(packed[j]));
  }
  return stats;
}

}  // namespace qerl::tools
