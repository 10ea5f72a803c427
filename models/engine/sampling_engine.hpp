// The sampling engine: what a rollout or eval stage generates with. It owns
// the sampling weights (the model, its packed 4-bit base, LoRA adapters and
// AQN noise targets), takes weight updates in any format, draws and removes
// AQN noise, and generates a batch with per-token log-probs and, for MoE
// models, the routes it took. Stages hold one through this interface and
// never touch the model.
//
// make_sampling_engine builds one for the model's device: on the CPU it
// generates with models::generate (the reference); on a CUDA device (a
// QERL_CUDA build) with the static-cache loop and CUDA graphs of
// generation_backend.hpp.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "models/engine/weight_noise.hpp"
#include "models/engine/weights_format.hpp"
#include "models/generate/generator.hpp"
#include "models/io/checkpoint.hpp"
#include "models/nn/causal_lm.hpp"
#include "models/nn/weights.hpp"
#include "models/quant/lora.hpp"
#include "models/quant/quantize_model.hpp"

namespace qerl::models {

// What an engine is built from (the pipeline's stages assemble it from
// [model], [quantization], [lora] and [aqn]; see actors/policy.hpp).
struct EngineParts {
  CausalLM lm{nullptr};                  // on its device, eval mode
  std::unique_ptr<PackedBase> base;      // null: dense weights
  std::unique_ptr<LoraAdapters> lora;    // null: no adapters (else: the base is frozen)
  std::unique_ptr<WeightNoise> noise;    // null: no AQN on this copy
  // Updates carry codes (a QAT learner): saved codes are what was sampled
  // with and are restored as they are, never repacked.
  bool codes_from_updates = false;
};

class SamplingEngine {
 public:
  virtual ~SamplingEngine() = default;

  // Installs the weights of an update. full: every parameter (packed
  // Linears are repacked before the next generation, or packed on arrival
  // when their dense weights are freed); packed: codes for the packed
  // Linears, dense tensors for the rest; lora_only: the adapters. A dense
  // update removes any noise first (it may cover only some tensors; the
  // rest must be clean). qerl::Error when the format does not fit the engine
  // (no base for codes, no adapters for LoRA tensors) or a tensor is
  // missing or mis-shaped.
  virtual void load_update(WeightsFormat format, const TensorMap& tensors) = 0;

  // AQN: sets the noise targets to clean + N(0, sigma^2) drawn from `seed`
  // (sigma 0: the clean values), replacing any earlier draw, and returns
  // the RMS of the applied noise. qerl::Error without noise targets.
  virtual double draw_noise(double sigma, uint64_t seed) = 0;
  // Puts the clean values back (a no-op without a draw in place).
  virtual void clear_noise() = 0;
  virtual bool has_noise_targets() const = 0;

  // Makes the codes match the weights now held (repacking what changed)
  // and, for W4A4, calibrates input scales once on `prompts` (left-padded
  // with `pad`). Returns the codes' SQNR in dB when it is known (packed
  // here from dense weights), nullopt otherwise or without a base.
  virtual std::optional<double> prepare(const std::vector<std::vector<int64_t>>& prompts, int64_t pad) = 0;

  // Generates for every prompt (one call, one seeded stream): tokens,
  // log-probs and, with config.capture_routing on a MoE model, routes.
  virtual std::vector<GeneratedSequence> generate(const std::vector<std::vector<int64_t>>& prompts,
                                                  const GenerationConfig& config) = 0;

  // Frees what generation keeps between calls (the CUDA engine's static KV
  // cache and its CUDA graphs) so that stages sharing the device can use the
  // memory; the next generate allocates and captures again. A no-op where
  // nothing is kept.
  virtual void release_cache() = 0;

  // Checkpoint: writes the weights it samples with, clean, into `dir`
  // (adapters, or the dense parameters; the base's codes and W4A4 input
  // scales), and reads them back so that a resumed run samples with the
  // same weights and codes.
  virtual void save(const std::filesystem::path& dir) = 0;
  virtual void load(const std::filesystem::path& dir) = 0;

  // Bytes of the sampling weights on their device (see ResidentWeights).
  virtual ResidentWeights resident_weights() = 0;
  // What the packed base quantized (null without a base).
  virtual const QuantSummary* quant_summary() const = 0;
  virtual const ModelConfig& model_config() const = 0;
  // One line for the log: how it generates (and why CUDA graphs are off
  // when they are).
  virtual std::string describe() const = 0;
  virtual torch::Device device() const = 0;
};

// The implementation for the model's device (see the top of this file).
std::unique_ptr<SamplingEngine> make_sampling_engine(EngineParts parts);

}  // namespace qerl::models
