// SparseMoe's device paths (QERL_CUDA builds, a visible GPU): the experts
// as grouped launches with routing sorted on the device, without gradients
// (the W4A16 kernels) and with them (differentiable grouped GEMMs), must
// agree with the per-expert loop on the same GPU, for bf16 experts and for
// NVFP4 codes, through a whole tiny model. Elsewhere the case says it was
// skipped.
#include <doctest/doctest.h>

#include <torch/cuda.h>

#include "tests/models/nn/expert_codes.hpp"
#include "tests/models/nn/tiny_model.hpp"

using namespace qerl::models;
using namespace qerl::models::testing;

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
      const auto force_loop = [&](bool on) {
        for (auto& layer : lm->model->layer_list)
          if (layer->is_moe()) layer->moe->force_expert_loop(on);
      };
      torch::Tensor loop, grouped, trainable;
      {
        torch::NoGradGuard no_grad;
        force_loop(true);  // the per-expert loop, its routes recorded
        args.routing = Routing::capture();
        const ForwardOutput reference = lm->forward(args);
        loop = reference.logits.to(torch::kFloat).cpu();
        // The other paths replay those routes: rounding differences between
        // the paths must not flip a near-tie route and compare other experts.
        args.routing = Routing::replay(reference.routing.indices);
        force_loop(false);  // gradients off: grouped launches
        grouped = lm->forward(args).logits.to(torch::kFloat).cpu();
      }
      {
        torch::AutoGradMode grad_on(true);  // gradients on: the differentiable grouped GEMMs
        trainable = lm->forward(args).logits.detach().to(torch::kFloat).cpu();
      }
      CHECK_FALSE(torch::isnan(grouped).any().item<bool>());
      CHECK((grouped - loop).norm().item<double>() / loop.norm().item<double>() < 2e-2);
      CHECK((trainable - loop).norm().item<double>() / loop.norm().item<double>() < 2e-2);
    }
  }
#endif
}
