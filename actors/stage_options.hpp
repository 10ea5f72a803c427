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

// reference.weights: the model's own weights in model.dtype, or the frozen
// base a LoRA policy trains on (its initial policy, adapters off: packed
// codes when quantization.scheme is set)
enum class ReferenceWeights { model, base };
constexpr auto enum_names(ReferenceWeights) {
  return std::array<EnumName<ReferenceWeights>, 2>{{{ReferenceWeights::model, "model"}, {ReferenceWeights::base, "base"}}};
}

// rollout.kv_cache, eval.kv_cache
enum class KvCachePolicy { keep, release };
constexpr auto enum_names(KvCachePolicy) {
  return std::array<EnumName<KvCachePolicy>, 2>{{{KvCachePolicy::keep, "keep"}, {KvCachePolicy::release, "release"}}};
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
