// The learner's update loops, apart from the stage (so they run and are
// tested without a pipeline): the AdamW optimizer over the trainable
// tensors (fp32 masters of a low-precision policy, rl/fp32_masters.hpp),
// the supervised step (token-mean cross-entropy on demonstrations) and the
// RL step (GRPO / critic-free PPO advantages, clipped surrogate with
// clip-higher, optional KL to the reference and entropy bonus;
// mini-batches, PPO epochs and micro-batches for gradient accumulation;
// router replay; AQN on the learner's forwards).
//
// Host synchronisation: the loops read nothing from the device while they
// run, except the gradient norm once per optimizer step (a non-finite norm
// skips the step); every metric is accumulated on the device and read once,
// at the end of the step.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/optim/adamw.h>

#include "actors/payloads.hpp"
#include "dsl/pipeline_spec.hpp"
#include "models/engine/weight_noise.hpp"
#include "models/nn/causal_lm.hpp"
#include "rl/fp32_masters.hpp"
#include "rl/settings.hpp"

namespace qerl::actors {

class RouteBook;  // actors/router_replay.hpp

struct TrainerSettings {
  dsl::AlgorithmSpec algorithm;  // the [algorithm] section
  int64_t micro_batch_size = 0;  // rows per forward/backward; 0 = the mini-batch
  rl::ReplayMode replay = rl::ReplayMode::disabled;
  int64_t run_seed = 0;          // seeds the epoch shuffles and AQN draws
  int64_t total_steps = 1;       // run.steps, for the LR schedule
};

class PolicyTrainer {
 public:
  // Trains `params` (named `names`, in the order of lm's named_parameters
  // for a full-parameter policy; LoRA's adapter tensors otherwise) of `lm`.
  // `noise`: AQN on the learner's forwards (null: none). `warn` receives
  // one-line warnings (may be empty).
  PolicyTrainer(models::CausalLM lm, std::vector<torch::Tensor> params, std::vector<std::string> names,
                TrainerSettings settings, models::WeightNoise* noise, std::function<void(const std::string&)> warn);

  // The LR of RL step `step` (warm-up and decay count RL steps), set on the optimizer: actor/lr.
  void set_learning_rate(int64_t step, std::map<std::string, double>& metrics);
  // mode = sft: mini-batch steps of token-mean cross-entropy: sft/loss, sft/tokens, actor/grad_norm.
  void sft_step(const RolloutBatch& batch, std::map<std::string, double>& metrics);
  // mode = rl: one RL step over the batch; `ref` may be null (no KL term);
  // `noise_sigma`: the AQN sigma of this step (used with noise).
  void rl_step(const RolloutBatch& batch, const Scores& scores, const RefLogprobs* ref, int64_t step,
               double noise_sigma, std::map<std::string, double>& metrics);

  torch::optim::AdamW& optimizer() { return *optimizer_; }
  rl::Fp32Masters& masters() { return masters_; }

 private:
  class Means;  // metric sums, on the device until the step's one read
  int64_t micro_size(int64_t mini) const;
  torch::Tensor advantages(const RolloutBatch& batch, const Scores& scores) const;
  torch::Tensor old_logprobs(const RolloutBatch& batch, RouteBook& routes);
  void optimizer_step(Means& means);

  models::CausalLM lm_;
  TrainerSettings settings_;
  rl::Fp32Masters masters_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  models::WeightNoise* noise_ = nullptr;
  std::function<void(const std::string&)> warn_;
  int64_t skipped_updates_ = 0;
  bool warned_no_routes_ = false;
};

}  // namespace qerl::actors
