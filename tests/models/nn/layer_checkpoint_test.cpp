// Activation checkpointing (CausalLM::set_activation_checkpointing,
// models/nn/layer_checkpoint.hpp) against the plain forward and backward on
// tiny random models (MoE with a shared expert, and dense), fp32 on the
// CPU, with padding: the same logits and routes, the same gradient for
// every parameter and for adapters with dropout (the recomputation must
// draw the forward's masks), under captured and replayed routing; and the
// layers really run twice.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "models/nn/causal_lm.hpp"
#include "tests/models/nn/tiny_model.hpp"

using namespace qerl::models;
using namespace qerl::models::testing;

namespace {

struct Pass {
  torch::Tensor logits, routes;
  std::vector<torch::Tensor> grads;  // every model parameter's, then the adapters'
};

}  // namespace

TEST_CASE("activation checkpointing: logits, routes and every gradient as without it, dropout adapters included") {
  for (const std::string type : {"qwen2_moe", "llama"}) {
    CAPTURE(type);
    CausalLM lm = tiny_model(type, /*seed=*/91);
    torch::manual_seed(92);
    // A dropout adapter on every q_proj: y += dropout(x) A^T B^T, A and B trained.
    std::vector<torch::Tensor> adapters;
    auto calls = std::make_shared<int64_t>(0);
    for (auto& layer : lm->model->layer_list) {
      Linear& q = layer->self_attn->q_proj;
      const torch::Tensor a = (torch::randn({4, q->in_features()}) * 0.1).requires_grad_();
      const torch::Tensor b = (torch::randn({q->out_features(), 4}) * 0.1).requires_grad_();
      adapters.insert(adapters.end(), {a, b});
      q->set_adapter_hook([a, b, calls](const torch::Tensor& x) {
        ++*calls;
        return torch::matmul(torch::matmul(torch::dropout(x, 0.3, /*train=*/true), a.t()), b.t());
      });
    }
    ForwardArgs args;
    args.input_ids = torch::randint(3, 97, {3, 10}, torch::kLong);
    args.attention_mask = torch::ones({3, 10}, torch::kLong);
    args.attention_mask.narrow(1, 0, 3).select(0, 1).zero_();  // left padding in row 1
    const torch::Tensor probe = torch::randn({3, 10, lm->config().vocab_size});
    const bool moe = lm->config().is_moe();
    Routing replay;
    const auto run = [&](bool checkpointed, const Routing& routing) {
      lm->set_activation_checkpointing(checkpointed);
      lm->zero_grad();
      for (const auto& t : adapters) t.mutable_grad() = torch::Tensor();
      args.routing = routing;
      torch::manual_seed(93);  // the dropout masks of the forward
      const ForwardOutput out = lm->forward(args);
      (out.logits * probe).sum().backward();
      Pass pass{out.logits.detach(), out.routing.indices, {}};
      for (const auto& p : lm->parameters()) pass.grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros({1}));
      for (const auto& t : adapters) pass.grads.push_back(t.grad().clone());
      return pass;
    };
    std::vector<Routing> routings{moe ? Routing::capture() : Routing::native()};
    for (size_t r = 0; r < routings.size(); ++r) {
      CAPTURE(r);
      *calls = 0;
      const Pass plain = run(false, routings[r]);
      const int64_t plain_calls = *calls;
      *calls = 0;
      const Pass checkpointed = run(true, routings[r]);
      CHECK(*calls == 2 * plain_calls);  // every layer ran again in the backward
      CHECK(torch::equal(plain.logits, checkpointed.logits));
      if (moe) {
        REQUIRE(plain.routes.defined());
        CHECK(torch::equal(plain.routes, checkpointed.routes));
        if (r == 0) routings.push_back(Routing::replay(plain.routes));  // then the same under replay
      }
      REQUIRE(plain.grads.size() == checkpointed.grads.size());
      int64_t nonzero = 0;
      for (size_t i = 0; i < plain.grads.size(); ++i) {
        CAPTURE(i);
        const double scale = plain.grads[i].abs().max().item<double>();
        nonzero += scale > 0;
        CHECK((checkpointed.grads[i] - plain.grads[i]).abs().max().item<double>() <= 1e-5 * std::max(scale, 1e-6));
      }
      CHECK(nonzero > static_cast<int64_t>(plain.grads.size()) / 2);
    }
    // Without gradients nothing is recomputed and nothing changes.
    lm->set_activation_checkpointing(true);
    *calls = 0;
    torch::NoGradGuard no_grad;
    args.routing = Routing::native();
    torch::manual_seed(93);
    const torch::Tensor logits = lm->forward(args).logits;
    CHECK(*calls == static_cast<int64_t>(lm->model->layer_list.size()));
  }
}
