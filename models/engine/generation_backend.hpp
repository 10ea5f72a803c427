// How a sampling engine runs models::generate's contract on its device.
// The LibTorch engine calls models::generate itself (the reference); a CUDA
// device gets the CUDA backend (cuda_generation.cpp, QERL_CUDA builds):
// the static-cache loop of static_generator.hpp on a stream of its own,
// decode steps replayed as CUDA graphs per batch bucket where the model's
// forward allows it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/generate/generator.hpp"
#include "models/nn/causal_lm.hpp"

namespace qerl::models {

class GenerationBackend {
 public:
  virtual ~GenerationBackend() = default;
  // As models::generate.
  virtual std::vector<GeneratedSequence> generate(CausalLMImpl& lm, const std::vector<std::vector<int64_t>>& prompts,
                                                  const GenerationConfig& config) = 0;
  // One line for the log: what runs the decode steps, and why graphs are
  // off when they are.
  virtual std::string describe() const = 0;
  // Frees what the backend keeps between calls (the KV cache, graphs).
  virtual void release() {}
};

#if QERL_CUDA
// For a model on a CUDA device (cuda_generation.cpp).
std::unique_ptr<GenerationBackend> make_cuda_generation(CausalLMImpl& lm);
#endif

}  // namespace qerl::models
