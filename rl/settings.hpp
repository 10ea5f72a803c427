// The RL choices a pipeline names ([algorithm], [router_replay]) as enums,
// each with its one table of spellings (common/named_enum.hpp). No LibTorch:
// the pipeline loader (dsl/) builds PipelineSpec from these.
#pragma once

#include <array>

#include "common/named_enum.hpp"

namespace qerl::rl {

// algorithm.name: group-relative advantages or critic-free PPO.
enum class Advantage { grpo, ppo };
constexpr auto enum_names(Advantage) {
  return std::array<EnumName<Advantage>, 2>{{{Advantage::grpo, "grpo"}, {Advantage::ppo, "ppo"}}};
}

// algorithm.loss_agg (see loss_agg.hpp).
enum class LossAgg { token_mean, seq_mean_token_mean, seq_mean_token_sum };
constexpr auto enum_names(LossAgg) {
  return std::array<EnumName<LossAgg>, 3>{{{LossAgg::token_mean, "token-mean"},
                                           {LossAgg::seq_mean_token_mean, "seq-mean-token-mean"},
                                           {LossAgg::seq_mean_token_sum, "seq-mean-token-sum"}}};
}

// algorithm.lr_schedule (see lr_schedule.hpp).
enum class LrSchedule { constant, linear, cosine };
constexpr auto enum_names(LrSchedule) {
  return std::array<EnumName<LrSchedule>, 3>{
      {{LrSchedule::constant, "constant"}, {LrSchedule::linear, "linear"}, {LrSchedule::cosine, "cosine"}}};
}

// algorithm.kl_estimator (see kl.hpp).
enum class KlEstimator { k1, k3 };
constexpr auto enum_names(KlEstimator) {
  return std::array<EnumName<KlEstimator>, 2>{{{KlEstimator::k1, "k1"}, {KlEstimator::k3, "k3"}}};
}

// router_replay.mode (REFERENCE.md "MoE router replay"): R1 records only
// (the rollout's routes are compared with the learner's own top-k), R2
// replays the routes the learner recorded in its old-log-prob pass, R3
// replays the rollout's routes in the old-log-prob pass and every update.
enum class ReplayMode { disabled, r1, r2, r3 };
constexpr auto enum_names(ReplayMode) {
  return std::array<EnumName<ReplayMode>, 4>{
      {{ReplayMode::disabled, "disabled"}, {ReplayMode::r1, "R1"}, {ReplayMode::r2, "R2"}, {ReplayMode::r3, "R3"}}};
}
// Whether the rollout records routes for the learner (every mode but disabled).
constexpr bool captures_routes(ReplayMode mode) { return mode != ReplayMode::disabled; }

}  // namespace qerl::rl
