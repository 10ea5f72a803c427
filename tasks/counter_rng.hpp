// Counter-based random numbers for task data: a splitmix64 stream keyed by
// (seed, stream), so problem i of seed s, or the order of epoch e, is the same
// no matter what was drawn before. Written out here instead of std::
// distributions, whose outputs differ between standard libraries.
#pragma once

#include <cstdint>

namespace qerl::tasks {

// The splitmix64 finalizer: a bijection on 64-bit words with good avalanche.
inline uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

class CounterRng {
 public:
  // Distinct streams of one seed start from distinct states (mix is a
  // bijection and stream * odd constant is injective mod 2^64).
  CounterRng(uint64_t seed, uint64_t stream)
      : state_(splitmix64_mix(seed) + stream * 0xD1B54A32D192ED03ULL) {}

  uint64_t next() {
    state_ += kGamma;
    return splitmix64_mix(state_);
  }

  // Uniform in [0, n), n > 0, without modulo bias (rejection sampling).
  uint64_t below(uint64_t n) {
    const uint64_t threshold = (0 - n) % n;  // 2^64 mod n
    for (;;) {
      const uint64_t r = next();
      if (r >= threshold) return r % n;
    }
  }

  // Uniform in [lo, hi], lo <= hi.
  int64_t in_range(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo) + 1));
  }

 private:
  static constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ULL;
  uint64_t state_;
};

}  // namespace qerl::tasks
