// SparseMoe's device paths (QERL_CUDA builds, a visible GPU): the experts
// as grouped launches with routing sorted on the device, without gradients
// (the W4A16 kernels) and with them (differentiable grouped GEMMs), must
// agree with the per-expert loop on the same GPU, for bf16 experts and for
// NVFP4 codes, through a whole tiny model (and, routed natively, the fused
// router and shared-expert kernels). Elsewhere the case says it was
// skipped. Once stacked, the per-expert tensors are views of the stacked
// ones (one copy of the experts), and updates in place or new tensors
// reach the grouped path.
#include <doctest/doctest.h>

#include <torch/cuda.h>

#include <limits>
#include <stdexcept>

#include "tests/models/nn/expert_codes.hpp"
#include "tests/models/nn/tiny_model.hpp"

using namespace qerl::models;
using namespace qerl::models::testing;

namespace {

// Whether the MoE device path can run here; says why not when it cannot.
bool device_path_runs() {
#if !QERL_CUDA
  MESSAGE("SKIPPED: not a QERL_CUDA build; the MoE device path is not compiled here");
  return false;
#else
  if (torch::cuda::is_available()) return true;
  MESSAGE("SKIPPED: no CUDA device visible; the MoE device path was not run");
  return false;
#endif
}

}  // namespace

TEST_CASE("SparseMoe on CUDA: grouped device path == per-expert loop, bf16 experts and NVFP4 codes") {
  if (!device_path_runs()) return;
#if QERL_CUDA
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
        // Routed by the model itself: the fused router (softmax + top-k)
        // and shared-expert kernels. The first MoE layer sees the loop's
        // inputs exactly, so its expert sets must be the loop's (one token
        // may differ: a tie at the top-k boundary breaks to the lower id
        // here). Replaying the fused routes through the composed router
        // ops and shared-expert sum then gives the same logits.
        args.routing = Routing::capture();
        const ForwardOutput fused = lm->forward(args);
        const auto first_layer_sets = [](const torch::Tensor& indices) {
          return std::get<0>(indices.select(2, 0).to(torch::kLong).sort(-1));
        };
        const int64_t differing = first_layer_sets(fused.routing.indices)
                                      .ne(first_layer_sets(reference.routing.indices))
                                      .any(-1)
                                      .sum()
                                      .item<int64_t>();
        CHECK(differing <= 1);
        args.routing = Routing::replay(fused.routing.indices);
        const torch::Tensor composed = lm->forward(args).logits.to(torch::kFloat).cpu();
        const torch::Tensor f = fused.logits.to(torch::kFloat).cpu();
        MESSAGE(type << (codes ? " codes" : " bf16") << ": fused router and shared sum vs composed, relative distance "
                     << (f - composed).norm().item<double>() / composed.norm().item<double>());
        CHECK((f - composed).norm().item<double>() / composed.norm().item<double>() < 5e-3);
        args.routing = Routing::replay(reference.routing.indices);
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

#if QERL_CUDA
namespace {

SwiGLU expert_of(const CausalLM& lm, int64_t e) {
  for (auto& layer : lm->model->layer_list)
    if (layer->is_moe()) return SwiGLU(std::dynamic_pointer_cast<SwiGLUImpl>((*layer->moe->experts)[e]));
  throw std::runtime_error("no MoE layer");
}

// The tensor an expert projection computes with: its codes' bytes or its weight.
torch::Tensor held(const Linear& l) { return l->codes() != nullptr ? l->codes()->packed : l->weight; }

// Fresh random weights for `linears` (fused siblings: one NVFP4 global
// scale), written in place into their codes or weights, as a repack or a
// weight sync writes them.
void overwrite_in_place(std::vector<Linear> linears, bool codes, int64_t seed) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  std::vector<torch::Tensor> fresh;
  float g = std::numeric_limits<float>::infinity();
  for (const Linear& l : linears) {
    fresh.push_back(torch::randn({l->out_features(), l->in_features()}) * 0.05);
    g = std::min(g, qerl::kernels::nvfp4_global_scale(fresh.back()));
  }
  for (size_t i = 0; i < linears.size(); ++i) {
    if (!codes) {
      linears[i]->weight.copy_(fresh[i]);
      continue;
    }
    const auto q = qerl::kernels::nvfp4_quantize(fresh[i], g);
    qerl::kernels::Fp4Weight& c = *linears[i]->mutable_codes();
    c.packed.copy_(q.packed);
    c.scale.view(torch::kUInt8).copy_(q.block_scale.view(torch::kUInt8));
    c.global_scale.copy_(q.global_scale);
  }
}

}  // namespace
#endif

TEST_CASE("SparseMoe on CUDA: experts become views of the stacked tensors, and updates reach the grouped path") {
  if (!device_path_runs()) return;
#if QERL_CUDA
  for (const bool codes : {false, true}) {
    CAPTURE(codes);
    CausalLM lm = tiny_model("qwen2_moe", 23, torch::kBFloat16);
    lm->to(torch::kCUDA);
    if (codes) set_expert_codes(lm, torch::kCUDA);
    for (auto& p : lm->parameters()) p.set_requires_grad(false);
    torch::manual_seed(24);
    ForwardArgs args;
    args.input_ids = torch::randint(3, 97, {2, 11}, torch::kLong).cuda();
    args.routing = Routing::native();
    torch::NoGradGuard no_grad;
    const auto run = [&](bool loop) {
      for (auto& layer : lm->model->layer_list)
        if (layer->is_moe()) layer->moe->force_expert_loop(loop);
      return lm->forward(args).logits.to(torch::kFloat).cpu();
    };
    const torch::Tensor before = run(false);  // stacks the experts
    // One storage per projection kind: gate and up of every expert in one, down in another.
    const SwiGLU first = expert_of(lm, 0);
    const int64_t experts = lm->config().num_experts;
    for (int64_t e = 0; e < experts; ++e) {
      const SwiGLU x = expert_of(lm, e);
      CHECK(held(x->gate).storage().is_alias_of(held(first->gate).storage()));
      CHECK(held(x->up).storage().is_alias_of(held(first->gate).storage()));
      CHECK(held(x->down).storage().is_alias_of(held(first->down).storage()));
      CHECK_FALSE(held(x->down).storage().is_alias_of(held(first->gate).storage()));
    }
    CHECK((run(true) - before).norm().item<double>() / before.norm().item<double>() < 2e-2);
    // An update in place of expert 1's gate and up.
    const SwiGLU one = expert_of(lm, 1);
    overwrite_in_place({one->gate, one->up}, codes, 25);
    const torch::Tensor updated = run(false);
    const torch::Tensor updated_loop = run(true);
    CHECK((updated - updated_loop).norm().item<double>() / updated_loop.norm().item<double>() < 2e-2);
    CHECK((updated - before).abs().max().item<double>() > 1e-3);  // the update reached the grouped path
    // A new tensor for expert 2's down: restacked into the same stacked storage.
    SwiGLU two = expert_of(lm, 2);
    const void* stacked_before = held(first->down).storage().data();
    if (codes) {
      torch::manual_seed(26);
      const torch::Tensor w = torch::randn({two->down->out_features(), two->down->in_features()}) * 0.05;
      const auto q = qerl::kernels::nvfp4_quantize(w);
      two->down->set_codes(std::make_shared<qerl::kernels::Fp4Weight>(
          qerl::kernels::Fp4Weight{q.packed, q.block_scale, q.global_scale}.to(torch::kCUDA)));
    } else {
      two->down->weight.set_data(torch::randn_like(two->down->weight) * 0.05);
    }
    const torch::Tensor replaced = run(false);
    const torch::Tensor replaced_loop = run(true);
    CHECK((replaced - replaced_loop).norm().item<double>() / replaced_loop.norm().item<double>() < 2e-2);
    CHECK((replaced - updated).abs().max().item<double>() > 1e-3);
    CHECK(held(two->down).storage().is_alias_of(held(first->down).storage()));
    CHECK(held(first->down).storage().data() == stacked_before);
  }
#endif
}
