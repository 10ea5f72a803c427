// LibTorch bindings of the fused decoder kernels; see decoder_ops_torch.hpp.
#include "kernels/cuda/decoder_ops_torch.hpp"

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "common/error.hpp"
#include "kernels/cuda/decoder_ops.hpp"

namespace qerl::kernels::cuda {
namespace {

void check_bf16_cuda(const char* what, const torch::Tensor& t) {
  if (!t.defined() || !t.is_cuda() || t.scalar_type() != torch::kBFloat16)
    throw Error(std::string(what) + ": expected a bf16 CUDA tensor, got " +
                (t.defined() ? std::string(c10::toString(t.scalar_type())) + " " + c10::str(t.sizes()) + " on " +
                                   t.device().str()
                             : std::string("undefined")));
}

__nv_bfloat16* bf16(const torch::Tensor& t) { return reinterpret_cast<__nv_bfloat16*>(t.data_ptr()); }

// 16-byte aligned and contiguous (a copy when it is not).
torch::Tensor aligned(const torch::Tensor& t) {
  torch::Tensor c = t.contiguous();
  return reinterpret_cast<uintptr_t>(c.data_ptr()) % 16 == 0 ? c : c.clone();
}

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error(std::string(what) + ": " + cudaGetErrorString(status));
}

std::atomic<int>& fused_decode_flag() {
  static std::atomic<int> flag{[] {
    const char* env = std::getenv("QERL_FUSED_DECODE");
    return env != nullptr && std::string(env) == "0" ? 0 : 1;
  }()};
  return flag;
}

}  // namespace

bool fused_decode_enabled() { return fused_decode_flag().load() != 0; }
void set_fused_decode(bool on) { fused_decode_flag().store(on ? 1 : 0); }

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  check_bf16_cuda("rms_norm", x);
  check_bf16_cuda("rms_norm weight", weight);
  const int64_t dim = x.size(-1);
  if (weight.dim() != 1 || weight.size(0) != dim)
    throw Error("rms_norm: weight " + c10::str(weight.sizes()) + " for rows of " + std::to_string(dim));
  const c10::cuda::CUDAGuard guard(x.device());
  const torch::Tensor rows = aligned(x), w = aligned(weight);
  torch::Tensor out = torch::empty_like(rows);
  check(rms_norm_bf16(bf16(rows), bf16(w), static_cast<float>(eps), rows.numel() / dim, dim, bf16(out),
                      c10::cuda::getCurrentCUDAStream()),
        "rms_norm_bf16");
  return out;
}

std::pair<torch::Tensor, torch::Tensor> add_rms_norm(const torch::Tensor& x, const torch::Tensor& residual,
                                                     const torch::Tensor& weight, double eps) {
  check_bf16_cuda("add_rms_norm", x);
  check_bf16_cuda("add_rms_norm residual", residual);
  check_bf16_cuda("add_rms_norm weight", weight);
  const int64_t dim = x.size(-1);
  if (residual.sizes() != x.sizes() || weight.dim() != 1 || weight.size(0) != dim)
    throw Error("add_rms_norm: x " + c10::str(x.sizes()) + ", residual " + c10::str(residual.sizes()) +
                ", weight " + c10::str(weight.sizes()));
  const c10::cuda::CUDAGuard guard(x.device());
  const torch::Tensor a = aligned(x), b = aligned(residual), w = aligned(weight);
  torch::Tensor sum = torch::empty_like(a), out = torch::empty_like(a);
  check(add_rms_norm_bf16(bf16(a), bf16(b), bf16(w), static_cast<float>(eps), a.numel() / dim, dim, bf16(sum),
                          bf16(out), c10::cuda::getCurrentCUDAStream()),
        "add_rms_norm_bf16");
  return {sum, out};
}

torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  check_bf16_cuda("rotary", x);
  check_bf16_cuda("rotary cos", cos);
  check_bf16_cuda("rotary sin", sin);
  if (x.dim() != 4 || cos.dim() != 3 || cos.sizes() != sin.sizes() || cos.size(0) != x.size(0) ||
      cos.size(1) != x.size(1) || cos.size(2) != x.size(3))
    throw Error("rotary: x " + c10::str(x.sizes()) + " with tables " + c10::str(cos.sizes()));
  const c10::cuda::CUDAGuard guard(x.device());
  const torch::Tensor in = x.contiguous(), c = cos.contiguous(), s = sin.contiguous();
  const int64_t batch = x.size(0), seq = x.size(1), heads = x.size(2), dim = x.size(3);
  torch::Tensor out = torch::empty({batch, heads, seq, dim}, x.options());
  check(rotary_bf16(bf16(in), bf16(c), bf16(s), batch, seq, heads, dim, bf16(out), c10::cuda::getCurrentCUDAStream()),
        "rotary_bf16");
  return out;
}

void rotary_into_cache(const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& cos,
                       const torch::Tensor& sin, const torch::Tensor& slot, const torch::Tensor& k_cache,
                       const torch::Tensor& v_cache) {
  for (const auto& [what, t] : {std::pair<const char*, const torch::Tensor*>{"rotary_into_cache k", &k},
                                {"rotary_into_cache v", &v},
                                {"rotary_into_cache cos", &cos},
                                {"rotary_into_cache sin", &sin},
                                {"rotary_into_cache k_cache", &k_cache},
                                {"rotary_into_cache v_cache", &v_cache}})
    check_bf16_cuda(what, *t);
  const bool shapes = k.dim() == 4 && k.size(1) == 1 && v.sizes() == k.sizes() && cos.dim() == 3 &&
                      cos.sizes() == sin.sizes() && cos.size(0) == k.size(0) && cos.size(1) == 1 &&
                      cos.size(2) == k.size(3) && k_cache.dim() == 4 && k_cache.sizes() == v_cache.sizes() &&
                      k_cache.size(0) == k.size(0) && k_cache.size(1) == k.size(2) && k_cache.size(3) == k.size(3) &&
                      k_cache.is_contiguous() && v_cache.is_contiguous();
  if (!shapes || !slot.is_cuda() || slot.scalar_type() != torch::kLong || slot.numel() != 1)
    throw Error("rotary_into_cache: k " + c10::str(k.sizes()) + ", v " + c10::str(v.sizes()) + ", tables " +
                c10::str(cos.sizes()) + ", caches " + c10::str(k_cache.sizes()) + " (contiguous: " +
                std::to_string(k_cache.is_contiguous() && v_cache.is_contiguous()) + "), slot " +
                c10::str(slot.sizes()) + " (expected [B, 1, H, D], [B, 1, D], [B, H, S, D], [1] int64 on the GPU)");
  const c10::cuda::CUDAGuard guard(k.device());
  const torch::Tensor kc = k.contiguous(), vc = v.contiguous(), c = cos.contiguous(), s = sin.contiguous();
  check(rotary_kv_cache_bf16(bf16(kc), bf16(vc), bf16(c), bf16(s), k.size(0), k.size(2), k.size(3),
                             slot.data_ptr<int64_t>(), k_cache.size(2), bf16(k_cache), bf16(v_cache),
                             c10::cuda::getCurrentCUDAStream()),
        "rotary_kv_cache_bf16");
}

namespace {

// A 2-D [rows, cols] reading of t (cols = its last dim) with contiguous
// columns: (t itself or a contiguous copy, its row stride).
std::pair<torch::Tensor, int64_t> row_view(const torch::Tensor& t) {
  const int64_t cols = t.size(-1);
  if (t.dim() == 2 && (t.stride(1) == 1 || cols == 1)) return {t, t.stride(0)};
  return {t.contiguous().view({-1, cols}), cols};
}

}  // namespace

torch::Tensor silu_mul(const torch::Tensor& gate, const torch::Tensor& up) {
  check_bf16_cuda("silu_mul gate", gate);
  check_bf16_cuda("silu_mul up", up);
  if (gate.sizes() != up.sizes() || gate.dim() < 1)
    throw Error("silu_mul: gate " + c10::str(gate.sizes()) + " and up " + c10::str(up.sizes()) + " differ");
  const c10::cuda::CUDAGuard guard(gate.device());
  const auto [g, g_stride] = row_view(gate);
  const auto [u, u_stride] = row_view(up);
  torch::Tensor out = torch::empty(gate.sizes(), gate.options());
  const int64_t cols = gate.size(-1);
  check(silu_mul_bf16(bf16(g), g_stride, bf16(u), u_stride, cols == 0 ? 0 : gate.numel() / cols, cols, bf16(out),
                      c10::cuda::getCurrentCUDAStream()),
        "silu_mul_bf16");
  return out;
}

torch::Tensor shared_expert_add(const torch::Tensor& moe, const torch::Tensor& gate, const torch::Tensor& shared) {
  check_bf16_cuda("shared_expert_add moe", moe);
  check_bf16_cuda("shared_expert_add gate", gate);
  check_bf16_cuda("shared_expert_add shared", shared);
  if (moe.dim() != 2 || shared.sizes() != moe.sizes() || gate.dim() != 2 || gate.size(0) != moe.size(0) ||
      gate.size(1) != 1)
    throw Error("shared_expert_add: moe " + c10::str(moe.sizes()) + ", gate " + c10::str(gate.sizes()) +
                ", shared " + c10::str(shared.sizes()) + " (expected [T, H], [T, 1], [T, H])");
  const c10::cuda::CUDAGuard guard(moe.device());
  const torch::Tensor m = moe.contiguous(), s = shared.contiguous();
  torch::Tensor out = torch::empty_like(m);
  check(shared_expert_add_bf16(bf16(m), bf16(gate), gate.stride(0), bf16(s), m.size(0), m.size(1), bf16(out),
                               c10::cuda::getCurrentCUDAStream()),
        "shared_expert_add_bf16");
  return out;
}

std::pair<torch::Tensor, torch::Tensor> moe_route(const torch::Tensor& logits, int64_t top_k, bool normalize,
                                                  bool bf16_weights) {
  check_bf16_cuda("moe_route logits", logits);
  if (logits.dim() != 2 || logits.size(1) < 1 || logits.size(1) > route_max_experts || top_k < 1 ||
      top_k > logits.size(1) || top_k > 32)
    throw Error("moe_route: logits " + c10::str(logits.sizes()) + " with top-k " + std::to_string(top_k) +
                " (experts 1.." + std::to_string(route_max_experts) + ", top-k 1..min(experts, 32))");
  const c10::cuda::CUDAGuard guard(logits.device());
  const torch::Tensor l = logits.contiguous();
  const int64_t tokens = l.size(0);
  torch::Tensor indices = torch::empty({tokens, top_k}, l.options().dtype(torch::kLong));
  torch::Tensor weights =
      torch::empty({tokens, top_k}, l.options().dtype(bf16_weights ? torch::kBFloat16 : torch::kFloat));
  check(moe_route_bf16(bf16(l), tokens, l.size(1), top_k, normalize, indices.data_ptr<int64_t>(), weights.data_ptr(),
                       bf16_weights, c10::cuda::getCurrentCUDAStream()),
        "moe_route_bf16");
  return {indices, weights};
}

}  // namespace qerl::kernels::cuda
