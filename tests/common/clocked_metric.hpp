// Metric keys whose values depend on the clock (tests compare runs
// without them): elapsed_s, the stages' seconds (timing_s/<stage>), the
// checkpoint saves' seconds (checkpoint_s/<stage>) and throughputs
// (…tokens_per_s).
#pragma once

#include <string>

namespace qerl::testing {

inline bool clocked_metric(const std::string& key) {
  const std::string rate = "tokens_per_s";
  return key == "elapsed_s" || key.rfind("timing_s/", 0) == 0 || key.rfind("checkpoint_s/", 0) == 0 ||
         (key.size() >= rate.size() && key.compare(key.size() - rate.size(), rate.size(), rate) == 0);
}

}  // namespace qerl::testing
