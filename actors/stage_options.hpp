// The fixed choices of built-in stages' own keys, as enums with their one
// table of names: builtin_stages.cpp declares the allowed values from these
// tables, and the stages read them with StageSpec::choice_option<E>.
#pragma once

#include <array>

#include "common/named_enum.hpp"

namespace qerl::actors {

// learner.mode
enum class LearnerMode { rl, sft };
constexpr auto enum_names(LearnerMode) {
  return std::array<EnumName<LearnerMode>, 2>{{{LearnerMode::rl, "rl"}, {LearnerMode::sft, "sft"}}};
}

// weight_sync.transport
enum class SyncTransport { auto_select, copy, nccl };
constexpr auto enum_names(SyncTransport) {
  return std::array<EnumName<SyncTransport>, 3>{
      {{SyncTransport::auto_select, "auto"}, {SyncTransport::copy, "copy"}, {SyncTransport::nccl, "nccl"}}};
}

// weight_sync.format: only "auto" (follow [quantization]) for now.
enum class SyncFormat { auto_select };
constexpr auto enum_names(SyncFormat) {
  return std::array<EnumName<SyncFormat>, 1>{{{SyncFormat::auto_select, "auto"}}};
}

}  // namespace qerl::actors
