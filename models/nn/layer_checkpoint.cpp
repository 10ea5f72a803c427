// Activation checkpointing of a decoder layer (see layer_checkpoint.hpp).
#include "models/nn/layer_checkpoint.hpp"

#include <mutex>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>
#if QERL_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

namespace qerl::models {
namespace {

// The generator the layer's random draws (LoRA dropout) come from on `device`.
at::Generator layer_generator(const torch::Device& device) {
#if QERL_CUDA
  if (device.is_cuda()) return at::cuda::detail::getDefaultCUDAGenerator(device.has_index() ? device.index() : 0);
#endif
  return at::detail::getDefaultCPUGenerator();
}

torch::Tensor generator_state(at::Generator generator) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_generator_state(at::Generator& generator, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(state);
}

// Function::apply takes no undefined tensors: an absent mask or replay
// tensor travels as an empty one.
torch::Tensor empty_if_undefined(const torch::Tensor& t) { return t.defined() ? t : torch::empty({0}); }
torch::Tensor undefined_if_empty(const torch::Tensor& t) { return t.numel() > 0 ? t : torch::Tensor(); }

// Inputs: the hidden state (differentiable), the layer's address, the RoPE
// tables, the mask and the route (mode, replay indices and mask). Outputs:
// the layer's hidden state, the experts it used and, under replay, the
// router's own choice ([0] where none).
class CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                                                int64_t layer, const torch::Tensor& cos, const torch::Tensor& sin,
                                                const torch::Tensor& mask, int64_t mode,
                                                const torch::Tensor& replay_indices, const torch::Tensor& replay_mask) {
    auto* decoder = reinterpret_cast<DecoderLayerImpl*>(layer);
    const torch::Tensor mask_or_none = undefined_if_empty(mask);
    ctx->saved_data["rng"] = generator_state(layer_generator(hidden.device()));
    LayerOutput out;
    {
      // With gradients, as the recomputation will run: on a GPU the MoE
      // takes other kernels without them, and the backward must
      // differentiate what the forward computed. The graph built here is
      // dropped on return.
      torch::AutoGradMode with_grad(true);
      out = decoder->forward(hidden.detach(), RopeTables{cos, sin}, mask_or_none, nullptr,
                             LayerRoute{static_cast<RoutingMode>(mode), undefined_if_empty(replay_indices),
                                        undefined_if_empty(replay_mask)});
    }
    const auto none = torch::empty({0}, hidden.options().dtype(torch::kLong));
    const torch::Tensor used = out.moe.indices.defined() ? out.moe.indices : none;
    const torch::Tensor native = out.moe.native_indices.defined() ? out.moe.native_indices : none;
    ctx->saved_data["layer"] = layer;
    ctx->saved_data["hidden"] = hidden.detach();
    ctx->saved_data["cos"] = cos;
    ctx->saved_data["sin"] = sin;
    ctx->saved_data["mask"] = mask;
    ctx->saved_data["used"] = used;  // the recomputation replays these routes
    ctx->mark_non_differentiable({used, native});
    return {out.hidden.detach(), used, native};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    torch::autograd::variable_list none(8);
    if (!grads[0].defined()) return none;
    auto* decoder = reinterpret_cast<DecoderLayerImpl*>(ctx->saved_data["layer"].toInt());
    const torch::Tensor x = ctx->saved_data["hidden"].toTensor().detach().requires_grad_();
    const torch::Tensor used = ctx->saved_data["used"].toTensor();
    LayerRoute route;
    if (used.numel() > 0) route = LayerRoute{RoutingMode::replay, used, torch::Tensor()};
    at::Generator generator = layer_generator(x.device());
    const torch::Tensor now = generator_state(generator);
    set_generator_state(generator, ctx->saved_data["rng"].toTensor());
    LayerOutput out;
    {
      torch::AutoGradMode with_grad(true);
      out = decoder->forward(x, RopeTables{ctx->saved_data["cos"].toTensor(), ctx->saved_data["sin"].toTensor()},
                             undefined_if_empty(ctx->saved_data["mask"].toTensor()), nullptr, route);
    }
    set_generator_state(generator, now);
    // Re-entrant: the parameters' gradients accumulate as the plain graph's would.
    torch::autograd::backward({out.hidden}, {grads[0]});
    none[0] = x.grad();
    return none;
  }
};

}  // namespace

LayerOutput checkpointed_layer_forward(DecoderLayerImpl& layer, const torch::Tensor& hidden, const RopeTables& rope,
                                       const torch::Tensor& mask, const LayerRoute& route) {
  const auto outputs =
      CheckpointedLayer::apply(hidden, reinterpret_cast<int64_t>(&layer), rope.cos, rope.sin, empty_if_undefined(mask),
                               static_cast<int64_t>(route.mode), empty_if_undefined(route.replay_indices),
                               empty_if_undefined(route.replay_mask));
  LayerOutput out;
  out.hidden = outputs[0];
  if (layer.is_moe()) {
    out.moe.indices = outputs[1];
    if (outputs[2].numel() > 0) out.moe.native_indices = outputs[2];
  }
  return out;
}

}  // namespace qerl::models
