// What a weight update carries (the learner picks it, weight sync passes
// it on, a sampling engine takes it in): every parameter dense (full), the
// packed Linears as 4-bit codes plus every other parameter dense (packed:
// a QAT learner's update), or the LoRA adapters only (lora-only: the base
// is frozen).
#pragma once

#include <array>

#include "common/named_enum.hpp"

namespace qerl::models {

enum class WeightsFormat { full, packed, lora_only };

constexpr auto enum_names(WeightsFormat) {
  return std::array<EnumName<WeightsFormat>, 3>{
      {{WeightsFormat::full, "full"}, {WeightsFormat::packed, "packed"}, {WeightsFormat::lora_only, "lora-only"}}};
}

}  // namespace qerl::models
