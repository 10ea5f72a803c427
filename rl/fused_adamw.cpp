// fused_adamw_step (see fused_adamw.hpp).
#include "rl/fused_adamw.hpp"

#include <map>
#include <tuple>

#include <ATen/ops/_fused_adamw.h>
#include <torch/types.h>

#include "common/error.hpp"

namespace qerl::rl {
namespace {

// The tensors of one fused call: parameters sharing a device, a dtype and
// a step count.
struct FusedLists {
  std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs;
};

}  // namespace

void fused_adamw_step(torch::optim::AdamW& optimizer) {
  torch::NoGradGuard no_grad;
  auto& state = optimizer.state();
  for (auto& group : optimizer.param_groups()) {
    const auto& options = static_cast<const torch::optim::AdamWOptions&>(group.options());
    if (options.amsgrad()) throw Error("fused_adamw_step: amsgrad is not supported");
    std::map<std::tuple<std::string, torch::ScalarType, int64_t>, FusedLists> calls;
    for (const torch::Tensor& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto found = state.find(p.unsafeGetTensorImpl());
      if (found == state.end()) {
        auto fresh = std::make_unique<torch::optim::AdamWParamState>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        found = state.emplace(p.unsafeGetTensorImpl(), std::move(fresh)).first;
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*found->second);
      s.step(s.step() + 1);
      FusedLists& lists = calls[{p.device().str(), p.scalar_type(), s.step()}];
      lists.params.push_back(p);
      lists.grads.push_back(p.grad());
      lists.exp_avgs.push_back(s.exp_avg());
      lists.exp_avg_sqs.push_back(s.exp_avg_sq());
    }
    const auto [beta1, beta2] = options.betas();
    for (auto& [key, lists] : calls) {
      // The kernel reads each parameter's step from a float tensor on its
      // device; the parameters of one call share one.
      const torch::Tensor step = torch::full({}, static_cast<double>(std::get<2>(key)),
                                             lists.params.front().options().dtype(torch::kFloat));
      const std::vector<torch::Tensor> steps(lists.params.size(), step);
      at::_fused_adamw_(lists.params, lists.grads, lists.exp_avgs, lists.exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps,
                        options.lr(), beta1, beta2, options.weight_decay(), options.eps(), /*amsgrad=*/false,
                        /*maximize=*/false);
    }
  }
}

}  // namespace qerl::rl
