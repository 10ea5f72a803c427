// SparseMoe on a CUDA device (QERL_CUDA builds): the experts stacked for
// the grouped kernels (stacked_experts: each expert's weights or codes
// become views of the stacked tensors; LoRA stacked beside them), the
// differentiable grouped path for training (grouped_with_gradients, trained
// adapters held as rows of stacked fp32 tensors), and the keys that tell
// when the stacked copies are stale. The CPU path and the forward's
// dispatch are in sparse_moe.cpp.
#include <functional>

#include <torch/types.h>

#include "common/error.hpp"
#include "models/nn/sparse_moe.hpp"
#if QERL_CUDA
#include <ATen/ops/_grouped_mm.h>
#include <torch/autograd.h>

#include "kernels/cuda/fp4_cuda_torch.hpp"
#endif

namespace qerl::models {
#if QERL_CUDA
namespace {

// Stacks `parts` into `dst`: in place when dst already has that layout (so
// that a CUDA graph that captured dst's address reads the new values), else
// into a new tensor.
void stack_into(torch::Tensor& dst, const std::vector<torch::Tensor>& parts) {
  std::vector<int64_t> shape{static_cast<int64_t>(parts.size())};
  for (int64_t d : parts.front().sizes()) shape.push_back(d);
  if (dst.defined() && dst.sizes() == torch::IntArrayRef(shape) && dst.scalar_type() == parts.front().scalar_type() &&
      dst.device() == parts.front().device())
    torch::stack_out(dst, parts);
  else
    dst = torch::stack(parts);
}

// Stacks per-expert row blocks into dst [E, sum of rows, ...]: member k of
// expert e goes to dst[e] rows [offset_k, offset_k + rows_k). Keeps dst's
// storage when its layout holds (a CUDA graph that captured its address
// then reads the new values) and copies only the blocks that are not
// already views of their own place in it (after the first stacking every
// expert tensor is one: see SparseMoeImpl::stacked_experts).
void stack_rows_into(torch::Tensor& dst, const std::vector<std::vector<torch::Tensor>>& members) {
  const torch::Tensor& first = members.front().front();
  std::vector<int64_t> shape{static_cast<int64_t>(members.size()), 0};
  for (const torch::Tensor& t : members.front()) shape[1] += t.size(0);
  for (int64_t d = 1; d < first.dim(); ++d) shape.push_back(first.size(d));
  if (!dst.defined() || dst.sizes() != torch::IntArrayRef(shape) || dst.scalar_type() != first.scalar_type() ||
      dst.device() != first.device())
    dst = torch::empty(shape, first.options());
  for (size_t e = 0; e < members.size(); ++e) {
    int64_t row = 0;
    for (const torch::Tensor& t : members[e]) {
      torch::Tensor slot = dst[static_cast<int64_t>(e)].narrow(0, row, t.size(0));
      if (slot.data_ptr() != t.data_ptr()) slot.copy_(t);
      row += t.size(0);
    }
  }
}

// The LoRA of one grouped projection whose output concatenates `members`
// (gate and up; or down alone), each a list of one adapter per expert (all
// null: that member has none): a [E, n R, in] and b [E, sum out, n R], b
// block-diagonal with the scale folded in, rank padded to R (a multiple of
// 8, as the grouped GEMM's alignment asks), bf16. In place when the layout
// holds; both undefined when no member has adapters.
void stack_low_rank(torch::Tensor& a_dst, torch::Tensor& b_dst,
                    const std::vector<std::vector<const LinearImpl::LowRankAdapter*>>& members,
                    const std::vector<int64_t>& outs, int64_t in) {
  const auto experts = static_cast<int64_t>(members.front().size());
  const LinearImpl::LowRankAdapter* any = nullptr;
  for (const auto& member : members)
    if (member.front() != nullptr) any = member.front();
  if (any == nullptr) {
    a_dst = b_dst = torch::Tensor();
    return;
  }
  const int64_t rank = any->a.size(0), padded = (rank + 7) / 8 * 8, n = static_cast<int64_t>(members.size());
  int64_t out_total = 0;
  for (int64_t out : outs) out_total += out;
  const auto options = any->a.options().dtype(torch::kBFloat16);
  const std::vector<int64_t> a_shape{experts, n * padded, in}, b_shape{experts, out_total, n * padded};
  if (!a_dst.defined() || a_dst.sizes() != torch::IntArrayRef(a_shape) || a_dst.device() != any->a.device())
    a_dst = torch::empty(a_shape, options);
  if (!b_dst.defined() || b_dst.sizes() != torch::IntArrayRef(b_shape) || b_dst.device() != any->a.device())
    b_dst = torch::empty(b_shape, options);
  a_dst.zero_();
  b_dst.zero_();
  int64_t row = 0;
  for (int64_t m = 0; m < n; ++m) {
    const auto& member = members[m];
    if (member.front() != nullptr) {
      std::vector<torch::Tensor> a, b;
      for (const auto* adapter : member) {
        a.push_back(adapter->a.detach());
        b.push_back(adapter->b.detach() * adapter->scale);
      }
      a_dst.narrow(1, m * padded, rank).copy_(torch::stack(a));
      b_dst.narrow(1, row, outs[m]).narrow(2, m * padded, rank).copy_(torch::stack(b));
    }
    row += outs[m];
  }
}

// Makes every tensor of `tensors` (one per expert, same shape, dtype and
// device) a row of `stacked` [E, ...], and, `with_grad`, each one's
// gradient a row of `grad`: restacking (a copy) only when some tensor is not its row yet,
// relinking the gradients (a fresh zero `grad`, gradients already
// accumulated elsewhere copied in) only when some gradient is not its row,
// as after the optimizer clears them. In place updates of the tensors (the
// optimizer's, a checkpoint load, a weight sync) then write `stacked`, and
// gradients added to `grad` are every tensor's own.
void bind_rows(torch::Tensor& stacked, torch::Tensor& grad, const std::vector<torch::Tensor>& tensors,
               bool with_grad) {
  const torch::Tensor& first = tensors.front();
  const auto experts = static_cast<int64_t>(tensors.size());
  const auto row_of = [experts](const torch::Tensor& t, int64_t e) {
    return static_cast<char*>(t.data_ptr()) + e * t.stride(0) * static_cast<int64_t>(t.element_size());
  };
  const auto holds = [&](const torch::Tensor& t) {
    return t.defined() && t.size(0) == experts && t.sizes().slice(1) == first.sizes() &&
           t.scalar_type() == first.scalar_type() && t.device() == first.device() && t.is_contiguous();
  };
  torch::NoGradGuard no_grad;
  bool bound = holds(stacked);
  for (int64_t e = 0; bound && e < experts; ++e) bound = tensors[e].data_ptr() == row_of(stacked, e);
  if (!bound) {
    std::vector<torch::Tensor> values;
    for (const torch::Tensor& t : tensors) values.push_back(t.detach());
    stacked = torch::stack(values);
    for (int64_t e = 0; e < experts; ++e) tensors[e].set_data(stacked[e]);
  }
  if (!with_grad) return;
  bool linked = holds(grad);
  for (int64_t e = 0; linked && e < experts; ++e)
    linked = tensors[e].grad().defined() && tensors[e].grad().data_ptr() == row_of(grad, e);
  if (!linked) {
    torch::Tensor fresh = torch::zeros_like(stacked);
    for (int64_t e = 0; e < experts; ++e) {
      if (tensors[e].grad().defined()) fresh[e].copy_(tensors[e].grad());
      tensors[e].mutable_grad() = fresh[e];
    }
    grad = fresh;
  }
}

// `stacked` (rows bound by bind_rows, no autograd history) read in `dtype`
// for a grouped GEMM; the backward adds the incoming gradient into `grad`
// (whose rows are the adapters' gradients) and passes none on. One kernel
// each way for every expert at once, where stacking the adapters through
// autograd cost a cast, a slice and an accumulation per expert and pass.
class ReadStacked : public torch::autograd::Function<ReadStacked> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& stacked,
                               const torch::Tensor& grad, c10::ScalarType dtype) {
    ctx->saved_data["grad"] = grad;
    return stacked.to(dtype, /*non_blocking=*/false, /*copy=*/true);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    if (grads[0].defined()) ctx->saved_data["grad"].toTensor().add_(grads[0]);
    return {torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// The trained adapters of one member as [E, r, in] and [E, out, r] in
// `dtype`, bound to `held` (see bind_rows) and differentiable through
// ReadStacked.
std::pair<torch::Tensor, torch::Tensor> read_adapters(SparseMoeImpl::StackedAdapters& held,
                                                      const std::vector<const LinearImpl::LowRankAdapter*>& member,
                                                      c10::ScalarType dtype) {
  std::vector<torch::Tensor> a, b;
  for (const auto* adapter : member) {
    a.push_back(adapter->a);
    b.push_back(adapter->b);
  }
  const bool trained = a.front().requires_grad();
  bind_rows(held.a, held.grad_a, a, trained);
  bind_rows(held.b, held.grad_b, b, trained);
  const auto read = [&](const torch::Tensor& stacked, const torch::Tensor& grad) {
    if (!trained) return stacked.to(dtype);
    return ReadStacked::apply(stacked.detach().requires_grad_(), grad, dtype);
  };
  return {read(held.a, held.grad_a), read(held.b, held.grad_b)};
}

}  // namespace
#endif

#if QERL_CUDA
torch::Tensor SparseMoeImpl::grouped_with_gradients(const torch::Tensor& x, const torch::Tensor& indices,
                                                    const torch::Tensor& weights) {
  std::vector<std::vector<const LinearImpl::LowRankAdapter*>> lora(3);  // gate, up, down: one per expert
  bool codes = false, dense = false;
  for (const SwiGLU& e : expert_list_) {
    int which = 0;
    for (const Linear& l : {e->gate, e->up, e->down}) {
      if (l->has_weight_hook() || l->has_input_hook() || l->bias.defined()) return {};
      const LinearImpl::LowRankAdapter* adapter = l->low_rank_adapter();
      if (l->has_adapter_hook() && (adapter == nullptr || adapter->dropout_active())) return {};
      if (adapter != nullptr && adapter->a.size(0) % 8 != 0) return {};  // the grouped GEMM's 16-byte rows
      lora[which++].push_back(adapter);
      (l->codes() != nullptr ? codes : dense) = true;
      if (l->codes() == nullptr && (l->weight.scalar_type() != torch::kBFloat16 || !l->weight.is_cuda())) return {};
    }
  }
  if (codes && dense) return {};
  for (const auto& member : lora)
    for (const auto* adapter : member)
      if ((adapter == nullptr) != (member.front() == nullptr) ||
          (adapter != nullptr && (adapter->a.size(0) != member.front()->a.size(0) ||
                                  adapter->scale != member.front()->scale ||
                                  adapter->a.requires_grad() != member.front()->a.requires_grad())))
        return {};
  const kernels::cuda::ExpertRouting routing = kernels::cuda::sort_by_expert(indices, num_experts_);
  const torch::Tensor ends = routing.offsets.narrow(0, 1, num_experts_);
  const torch::Tensor rows = x.index_select(0, routing.rows);  // [T*K, H] sorted
  // The base projections. Frozen bases (codes, or bf16 weights without
  // gradients) come from the stacked experts, kept in sync, so nothing is
  // copied per call; codes are decoded again in the backward rather than
  // kept dense between the passes. Trained bf16 experts are stacked each
  // call, so that gradients reach the parameters.
  // Only frozen bases use (and so build) the stacked copy: trained experts
  // change every step, and restacking them would be a second copy for nothing.
  const bool frozen = codes || !expert_list_.front()->gate->weight.requires_grad();
  const auto* stacked = frozen ? static_cast<const kernels::cuda::MoeExperts*>(stacked_experts()) : nullptr;
  std::function<torch::Tensor(const torch::Tensor&, bool)> base;  // (rows, down?) -> rows · W_eᵀ
  if (codes) {
    if (stacked == nullptr || !stacked->fp4()) return {};
    base = [&](const torch::Tensor& in, bool down) {
      return kernels::cuda::frozen_experts_projection(in, routing, down ? stacked->down : stacked->gate_up);
    };
  } else if (stacked != nullptr && !stacked->fp4()) {
    base = [&](const torch::Tensor& in, bool down) {
      return at::_grouped_mm(in, (down ? stacked->down_bf16 : stacked->gate_up_bf16).transpose(1, 2), ends);
    };
  } else {
    std::vector<torch::Tensor> gate_up, down;
    for (const SwiGLU& e : expert_list_) {
      gate_up.push_back(torch::cat({e->gate->weight, e->up->weight}));
      down.push_back(e->down->weight);
    }
    const torch::Tensor gate_up_w = torch::stack(gate_up), down_w = torch::stack(down);  // [E, 2I, H], [E, H, I]
    base = [&, gate_up_w, down_w](const torch::Tensor& in, bool is_down) {
      return at::_grouped_mm(in, (is_down ? down_w : gate_up_w).transpose(1, 2), ends);
    };
  }
  // Each expert's LoRA term on its rows, as the adapter hook computes it:
  // ((rows A^T) B^T) * scale in the rows' dtype; the adapters read as rows
  // of one stacked tensor each (read_adapters).
  const auto low_rank = [&](const torch::Tensor& in, int which) {
    const auto [a, b] = read_adapters(trained_lora_[which], lora[which], in.scalar_type());
    const torch::Tensor t = at::_grouped_mm(in, a.transpose(1, 2), ends);
    return at::_grouped_mm(t, b.transpose(1, 2), ends) * lora[which].front()->scale;
  };
  const torch::Tensor h = base(rows, false);  // [T*K, 2I]
  const int64_t inner = h.size(1) / 2;
  torch::Tensor gate_out = h.narrow(1, 0, inner), up_out = h.narrow(1, inner, inner);
  if (lora[0].front() != nullptr) gate_out = gate_out + low_rank(rows, 0);
  if (lora[1].front() != nullptr) up_out = up_out + low_rank(rows, 1);
  const torch::Tensor act = torch::silu(gate_out) * up_out;
  torch::Tensor out = base(act, true);  // [T*K, H]
  if (lora[2].front() != nullptr) out = out + low_rank(act, 2);
  // As the loop: each (token, slot) output weighted, the K slots summed, rounded once.
  const torch::Tensor weighted = out.index_select(0, routing.position) * weights.reshape({-1}).unsqueeze(-1);
  return weighted.view({x.size(0), top_k_, -1}).sum(1).to(x.scalar_type());
}
#endif

bool SparseMoeImpl::grouped_on_device() {
#if QERL_CUDA
  if (expert_loop_forced_) return false;
  return expert_list_.front()->gate->weight.scalar_type() == torch::kBFloat16 && stacked_experts() != nullptr;
#else
  return false;
#endif
}

#if QERL_CUDA
std::vector<int64_t> SparseMoeImpl::expert_key(bool adapters) const {
  // Each tensor's address and version: an update in place (a copy into the
  // weights or codes) changes the version, a new tensor the address.
  std::vector<int64_t> key;
  const auto add = [&key](const torch::Tensor& t) {
    if (!t.defined()) return;
    key.push_back(reinterpret_cast<intptr_t>(t.data_ptr()));
    key.push_back(t._version());
  };
  for (const SwiGLU& e : expert_list_)
    for (const Linear& l : {e->gate, e->up, e->down}) {
      if (adapters) {
        if (const LinearImpl::LowRankAdapter* adapter = l->low_rank_adapter()) {
          add(adapter->a);
          add(adapter->b);
        }
      } else if (const kernels::Fp4Weight* codes = l->codes()) {
        for (const torch::Tensor& t : {codes->packed, codes->scale, codes->global_scale}) add(t);
      } else {
        add(l->weight);
      }
    }
  return key;
}
#endif

const void* SparseMoeImpl::stacked_experts() {
#if QERL_CUDA
  // Eligible: every expert Linear without bias, weight or input hook, all
  // dense bf16 or all codes of one scheme, gate and up of an expert with
  // one global scale. A change of any expert tensor (expert_key) restacks,
  // into the same stacked tensors.
  // LoRA adapters (without active dropout) are allowed, on every expert's
  // gate, up or down or on none of them, all of one rank.
  bool all_codes = true, all_dense = true;
  std::vector<std::vector<const LinearImpl::LowRankAdapter*>> lora(3);  // gate, up, down: one per expert
  for (const SwiGLU& e : expert_list_) {
    int which = 0;
    for (const Linear& l : {e->gate, e->up, e->down}) {
      if (l->has_weight_hook() || l->has_input_hook() || l->bias.defined()) return nullptr;
      const LinearImpl::LowRankAdapter* adapter = l->low_rank_adapter();
      if (l->has_adapter_hook() && (adapter == nullptr || adapter->dropout_active())) return nullptr;
      lora[which++].push_back(adapter);
      if (l->codes() != nullptr) {
        all_dense = false;
      } else {
        all_codes = false;
        if (l->weight.scalar_type() != torch::kBFloat16 || !l->weight.is_cuda()) return nullptr;
      }
    }
  }
  if (!all_codes && !all_dense) return nullptr;
  for (const auto& member : lora) {
    const LinearImpl::LowRankAdapter* first = member.front();
    for (const auto* adapter : member)
      if ((adapter == nullptr) != (first == nullptr) ||
          (adapter != nullptr && adapter->a.size(0) != first->a.size(0)))
        return nullptr;
  }
  // The base and the adapters restack separately: a base stacked tensor
  // saved for a backward must not be rewritten (its version bumped) when
  // only the adapters moved, as they do when grouped training binds them.
  const bool base_current = stacked_ && expert_key(false) == stacked_base_key_;
  const bool adapters_current = stacked_ && expert_key(true) == stacked_adapter_key_;
  if (base_current && adapters_current) return stacked_.get();
  torch::NoGradGuard no_grad;
  auto experts = stacked_ ? std::static_pointer_cast<kernels::cuda::MoeExperts>(stacked_)
                          : std::make_shared<kernels::cuda::MoeExperts>();
  if (!base_current && !restack_base(*experts)) return nullptr;
  if (!adapters_current) {
    const LinearImpl& gate = *expert_list_.front()->gate;
    const LinearImpl& down = *expert_list_.front()->down;
    stack_low_rank(experts->gate_up_lora_a, experts->gate_up_lora_b, {lora[0], lora[1]},
                   {gate.out_features(), gate.out_features()}, gate.in_features());
    stack_low_rank(experts->down_lora_a, experts->down_lora_b, {lora[2]}, {down.out_features()}, down.in_features());
  }
  stacked_ = experts;
  // The experts' tensors may have moved: the keys of what is stacked now.
  stacked_base_key_ = expert_key(false);
  stacked_adapter_key_ = expert_key(true);
  return stacked_.get();
#else
  return nullptr;
#endif
}

#if QERL_CUDA
bool SparseMoeImpl::restack_base(kernels::cuda::MoeExperts& stacked) {
  auto* experts = &stacked;
  const bool all_dense = expert_list_.front()->gate->codes() == nullptr;  // stacked_experts checked: all or none
  // After stacking, every expert's weight (or codes and scales) becomes a
  // view of its rows in the stacked tensors: one copy of the experts, not
  // two, and an update in place (a weight sync, an optimizer step, a
  // repack) writes the stacked tensors directly; restacking then copies
  // nothing.
  const int64_t inner = expert_list_.front()->gate->out_features();
  if (all_dense) {
    std::vector<std::vector<torch::Tensor>> gate_up, down;
    for (const SwiGLU& e : expert_list_) {
      gate_up.push_back({e->gate->weight.detach(), e->up->weight.detach()});
      down.push_back({e->down->weight.detach()});
    }
    experts->gate_up = {};
    experts->down = {};
    stack_rows_into(experts->gate_up_bf16, gate_up);
    stack_rows_into(experts->down_bf16, down);
    for (int64_t e = 0; e < num_experts_; ++e) {
      const SwiGLU& x = expert_list_[e];
      x->gate->weight.set_data(experts->gate_up_bf16[e].narrow(0, 0, inner));
      x->up->weight.set_data(experts->gate_up_bf16[e].narrow(0, inner, inner));
      x->down->weight.set_data(experts->down_bf16[e]);
    }
  } else {
    const bool nvfp4 = expert_list_.front()->gate->codes()->nvfp4();
    std::vector<std::vector<torch::Tensor>> gu_packed, gu_scale, d_packed, d_scale;
    std::vector<torch::Tensor> gu_global, d_global;
    for (const SwiGLU& e : expert_list_) {
      const kernels::Fp4Weight &g = *e->gate->codes(), &u = *e->up->codes(), &d = *e->down->codes();
      if (g.nvfp4() != nvfp4 || u.nvfp4() != nvfp4 || d.nvfp4() != nvfp4 || !g.packed.is_cuda()) return false;
      if (nvfp4 && !torch::equal(g.global_scale.cpu(), u.global_scale.cpu())) return false;
      gu_packed.push_back({g.packed, u.packed});
      // Scales as bytes: the copies need not support float8.
      gu_scale.push_back({g.scale.view(torch::kUInt8), u.scale.view(torch::kUInt8)});
      d_packed.push_back({d.packed});
      d_scale.push_back({d.scale.view(torch::kUInt8)});
      if (nvfp4) {
        gu_global.push_back(g.global_scale.reshape({}).to(torch::kFloat));
        d_global.push_back(d.global_scale.reshape({}).to(torch::kFloat));
      }
    }
    const torch::ScalarType scale_type = nvfp4 ? torch::kFloat8_e4m3fn : torch::kUInt8;
    experts->gate_up_bf16 = torch::Tensor();
    experts->down_bf16 = torch::Tensor();
    stack_rows_into(experts->gate_up.packed, gu_packed);
    stack_rows_into(experts->down.packed, d_packed);
    torch::Tensor gu_raw = experts->gate_up.scale.defined() ? experts->gate_up.scale.view(torch::kUInt8) : torch::Tensor();
    torch::Tensor d_raw = experts->down.scale.defined() ? experts->down.scale.view(torch::kUInt8) : torch::Tensor();
    stack_rows_into(gu_raw, gu_scale);
    stack_rows_into(d_raw, d_scale);
    experts->gate_up.scale = gu_raw.view(scale_type);
    experts->down.scale = d_raw.view(scale_type);
    if (nvfp4) {
      stack_into(experts->gate_up.global_scale, gu_global);
      stack_into(experts->down.global_scale, d_global);
    } else {
      experts->gate_up.global_scale = experts->down.global_scale = torch::Tensor();
    }
    for (int64_t e = 0; e < num_experts_; ++e) {
      SwiGLU x = expert_list_[e];
      kernels::Fp4Weight &g = *x->gate->mutable_codes(), &u = *x->up->mutable_codes(), &d = *x->down->mutable_codes();
      g.packed = experts->gate_up.packed[e].narrow(0, 0, inner);
      u.packed = experts->gate_up.packed[e].narrow(0, inner, inner);
      d.packed = experts->down.packed[e];
      g.scale = gu_raw[e].narrow(0, 0, inner).view(scale_type);
      u.scale = gu_raw[e].narrow(0, inner, inner).view(scale_type);
      d.scale = d_raw[e].view(scale_type);
    }
  }
  return true;
}
#endif

}  // namespace qerl::models
