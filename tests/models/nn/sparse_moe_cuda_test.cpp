// SparseMoe's device path (QERL_CUDA builds, a visible GPU): with gradients
// off, the experts run as grouped launches with routing sorted on the
// device; it must agree with the per-expert loop (which runs when gradients
// are on) on the same GPU, for bf16 experts and for NVFP4 codes, through a
// whole tiny model. Elsewhere the case says it was skipped.
#include <doctest/doctest.h>

#include <torch/cuda.h>

#include "kernels/quantize_tensor.hpp"
#include "tests/models/nn/tiny_model.hpp"

using namespace qerl::models;
using namespace qerl::models::testing;

namespace {

// Every expert Linear of every MoE layer computes from NVFP4 codes (gate and
// up of an expert share the smaller global scale, as fused siblings do).
void set_expert_codes(CausalLM& lm, torch::Device device) {
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

}  // namespace

TEST_CASE("SparseMoe on CUDA: grouped device path == per-expert loop, bf16 experts and NVFP4 codes") {
#if !QERL_CUDA
  MESSAGE("SKIPPED: not a QERL_CUDA build; the MoE device path is not compiled here");
#else
  if (!torch::cuda::is_available()) {
    MESSAGE("SKIPPED: no CUDA device visible; the MoE device path was not run");
    return;
  }
  for (const std::string type : {"qwen2_moe", "qwen3_moe", "mixtral"}) {
    for (const bool codes : {false, true}) {
      CAPTURE(type);
      CAPTURE(codes);
      CausalLM lm = tiny_model(type, 21, torch::kBFloat16);
      lm->to(torch::kCUDA);
      if (codes) set_expert_codes(lm, torch::kCUDA);
      torch::manual_seed(22);
      ForwardArgs args;
      args.input_ids = torch::randint(3, 97, {3, 13}, torch::kLong).cuda();
      torch::Tensor loop, grouped;
      {
        torch::AutoGradMode grad_on(true);  // gradients on: the per-expert loop
        loop = lm->forward(args).logits.detach().to(torch::kFloat).cpu();
      }
      {
        torch::NoGradGuard no_grad;  // gradients off: grouped launches
        grouped = lm->forward(args).logits.to(torch::kFloat).cpu();
      }
      CHECK_FALSE(torch::isnan(grouped).any().item<bool>());
      const double error = (grouped - loop).norm().item<double>() / loop.norm().item<double>();
      CHECK(error < 2e-2);
    }
  }
#endif
}
