// Test helper: NVFP4 codes on every expert Linear of a tiny model (shared
// by the MoE device-path and CUDA generation tests).
#pragma once

#include <doctest/doctest.h>

#include "kernels/quantize_tensor.hpp"
#include "models/nn/causal_lm.hpp"

namespace qerl::models::testing {

// Every expert Linear of every MoE layer computes from NVFP4 codes (gate and
// up of an expert share the smaller global scale, as fused siblings do).
inline void set_expert_codes(CausalLM& lm, torch::Device device) {
  for (auto& layer : lm->model->layer_list) {
    if (!layer->is_moe()) continue;
    for (const auto& module : *layer->moe->experts) {
      auto expert = std::dynamic_pointer_cast<SwiGLUImpl>(module);
      REQUIRE(expert);
      const float g = std::min(qerl::kernels::nvfp4_global_scale(expert->gate->weight.detach()),
                               qerl::kernels::nvfp4_global_scale(expert->up->weight.detach()));
      for (Linear l : {expert->gate, expert->up, expert->down}) {
        const bool fused = l.get() != expert->down.get();
        const auto q = qerl::kernels::nvfp4_quantize(l->weight.detach(),
                                                      fused ? std::optional<float>(g) : std::nullopt);
        l->set_codes(std::make_shared<qerl::kernels::Fp4Weight>(
            qerl::kernels::Fp4Weight{q.packed, q.block_scale, q.global_scale}.to(device)));
      }
    }
  }
}

}  // namespace qerl::models::testing
