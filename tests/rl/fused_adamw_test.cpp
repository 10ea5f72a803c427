// fused_adamw_step against LibTorch's own AdamW::step on fresh random
// parameters and gradients: the same parameters and moments over several
// steps (a parameter without a gradient untouched), the same state (after
// fused steps, AdamW::step carries on as if it had taken them), on the CPU
// and, in CUDA builds with a visible GPU, on the GPU.
#include <doctest/doctest.h>

#include <vector>

#include <torch/cuda.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include "rl/fused_adamw.hpp"

namespace {

struct Trained {
  std::vector<torch::Tensor> params;
  std::unique_ptr<torch::optim::AdamW> optimizer;
};

// Four parameters of assorted shapes; the third never gets a gradient.
Trained make_trained(const torch::Device& device) {
  torch::manual_seed(301);
  Trained t;
  for (const auto& shape : std::vector<std::vector<int64_t>>{{7, 5}, {33}, {4, 4}, {2, 3, 9}})
    t.params.push_back(torch::randn(shape).to(device).requires_grad_());
  t.optimizer = std::make_unique<torch::optim::AdamW>(
      t.params, torch::optim::AdamWOptions(1e-2).betas({0.9, 0.99}).eps(1e-8).weight_decay(0.1));
  return t;
}

// Step `step`'s gradients (fresh, seeded by the step), the third parameter's left undefined.
void set_grads(Trained& t, int step) {
  torch::manual_seed(400 + step);
  for (size_t i = 0; i < t.params.size(); ++i)
    t.params[i].mutable_grad() = i == 2 ? torch::Tensor() : torch::randn(t.params[i].sizes()).to(t.params[i].device());
}

double largest_difference(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, (a[i].detach().cpu() - b[i].detach().cpu()).abs().max().item<double>());
  return worst;
}

void check_against_libtorch(const torch::Device& device) {
  Trained reference = make_trained(torch::kCPU), fused = make_trained(device);
  const torch::Tensor untouched = fused.params[2].detach().clone();
  for (int step = 1; step <= 3; ++step) {
    set_grads(reference, step);
    set_grads(fused, step);
    reference.optimizer->step();
    qerl::rl::fused_adamw_step(*fused.optimizer);
    CAPTURE(step);
    // Each step moves parameters by about lr = 1e-2; the two differ by float rounding.
    CHECK(largest_difference(reference.params, fused.params) < 1e-6);
    CHECK(torch::equal(fused.params[2].detach().cpu(), untouched.cpu()));
  }
  // The moments and step counts, as AdamW keeps them.
  for (size_t i = 0; i < reference.params.size(); ++i) {
    CAPTURE(i);
    const auto& r = reference.optimizer->state();
    const auto& f = fused.optimizer->state();
    REQUIRE((r.count(reference.params[i].unsafeGetTensorImpl()) == f.count(fused.params[i].unsafeGetTensorImpl())));
    if (i == 2) continue;  // never had a gradient: no state in either
    const auto& rs = static_cast<const torch::optim::AdamWParamState&>(*r.at(reference.params[i].unsafeGetTensorImpl()));
    const auto& fs = static_cast<const torch::optim::AdamWParamState&>(*f.at(fused.params[i].unsafeGetTensorImpl()));
    CHECK(fs.step() == 3);
    CHECK(rs.step() == 3);
    CHECK(largest_difference({rs.exp_avg(), rs.exp_avg_sq()}, {fs.exp_avg(), fs.exp_avg_sq()}) < 1e-6);
  }
  // A fourth step by AdamW::step itself carries on from the fused steps' state.
  set_grads(reference, 4);
  set_grads(fused, 4);
  reference.optimizer->step();
  fused.optimizer->step();
  CHECK(largest_difference(reference.params, fused.params) < 1e-6);
  CHECK(largest_difference(reference.params, make_trained(torch::kCPU).params) > 1e-2);  // they did move
}

}  // namespace

TEST_CASE("fused_adamw_step == AdamW::step, on the CPU") { check_against_libtorch(torch::kCPU); }

TEST_CASE("fused_adamw_step on a GPU == AdamW::step on the CPU") {
  if (!torch::cuda::is_available()) {
    MESSAGE("SKIPPED: no CUDA device visible; fused_adamw_step was not run on a GPU");
    return;
  }
  check_against_libtorch(torch::kCUDA);
}

TEST_CASE("fused_adamw_step refuses amsgrad") {
  Trained t = make_trained(torch::kCPU);
  static_cast<torch::optim::AdamWOptions&>(t.optimizer->param_groups().front().options()).amsgrad(true);
  set_grads(t, 1);
  CHECK_THROWS_WITH(qerl::rl::fused_adamw_step(*t.optimizer), "fused_adamw_step: amsgrad is not supported");
}
