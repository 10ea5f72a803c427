// LibTorch bindings of the CUDA fp4 kernels (see fp4_cuda_torch.hpp).
#include "kernels/cuda/fp4_cuda_torch.hpp"

#include <ATen/ops/_grouped_mm.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/autograd.h>
#include <torch/nn/functional/activation.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/error.hpp"
#include "kernels/cuda/decoder_ops.hpp"
#include "kernels/cuda/decoder_ops_torch.hpp"
#include "kernels/cuda/fp4_cuda.hpp"
#include "kernels/nvfp4.hpp"

namespace qerl::kernels::cuda {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw Error(std::string(what) + ": " + cudaGetErrorString(status));
}

cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream(); }

std::string describe(const torch::Tensor& t) {
  return t.defined() ? std::string(c10::toString(t.scalar_type())) + " " + c10::str(t.sizes()) + " on " +
                           t.device().str()
                     : std::string("undefined");
}

// w as a contiguous, 16-byte aligned CUDA tensor of fp32 or bf16 with a
// last dimension that is a multiple of `group`.
torch::Tensor checked_weight(const char* what, const torch::Tensor& w, int64_t group, int64_t dims = 2) {
  if (!w.defined() || !w.is_cuda() || w.dim() != dims ||
      (w.scalar_type() != torch::kFloat && w.scalar_type() != torch::kBFloat16) || w.size(-1) % group != 0)
    throw Error(std::string(what) + ": expected a " + std::to_string(dims) +
                "-D CUDA Float or BFloat16 weight with the last dimension a multiple of " + std::to_string(group) +
                ", got " + describe(w));
  torch::Tensor c = w.contiguous();
  if (reinterpret_cast<uintptr_t>(c.data_ptr()) % 16 != 0) c = c.clone();
  return c;
}

const uint8_t* bytes(const torch::Tensor& t) { return reinterpret_cast<const uint8_t*>(t.data_ptr()); }
uint8_t* mutable_bytes(torch::Tensor& t) { return reinterpret_cast<uint8_t*>(t.data_ptr()); }
const __nv_bfloat16* bf16_ptr(const torch::Tensor& t) {
  return reinterpret_cast<const __nv_bfloat16*>(t.data_ptr());
}

// The amax of w (one slice per leading index when batched) as uint32 bits on the device.
torch::Tensor amax_bits(const torch::Tensor& w, int64_t batch) {
  torch::Tensor bits = torch::zeros({batch}, w.options().dtype(torch::kInt));
  check(fp4_amax(w.data_ptr(), w.scalar_type() == torch::kBFloat16, batch, w.numel() / batch,
                 reinterpret_cast<uint32_t*>(bits.data_ptr()), stream()),
        "fp4_amax");
  return bits;
}

struct NvResult {
  torch::Tensor packed, scale, global, fake;
};

// NVFP4 pack or fake-quant of w [batch, rows, cols] (batch 1 for a 2-D w).
NvResult nvfp4_run(const torch::Tensor& w, int64_t batch, std::optional<float> given, bool fake) {
  const c10::cuda::CUDAGuard guard(w.device());
  const int64_t cols = w.size(-1), rows = w.numel() / cols / batch;
  NvResult r;
  torch::Tensor given_t, bits;
  if (given) {
    if (!std::isfinite(*given) || *given <= 0.0f)
      throw Error("nvfp4_quantize: global scale " + std::to_string(*given) + " given, expected a finite value > 0");
    given_t = torch::full({batch}, *given, w.options().dtype(torch::kFloat));
    r.global = given_t;
  } else {
    bits = amax_bits(w, batch);
    r.global = torch::empty({batch}, w.options().dtype(torch::kFloat));
  }
  if (fake) {
    r.fake = torch::empty_like(w);
  } else {
    r.packed = torch::empty({batch * rows, cols / 2}, w.options().dtype(torch::kUInt8));
    r.scale = torch::empty({batch * rows, cols / 16}, w.options().dtype(torch::kUInt8));
  }
  check(nvfp4_quantize(w.data_ptr(), w.scalar_type() == torch::kBFloat16, batch, rows, cols,
                       given ? given_t.data_ptr<float>() : nullptr,
                       given ? nullptr : reinterpret_cast<const uint32_t*>(bits.data_ptr()),
                       given ? nullptr : r.global.data_ptr<float>(), fake ? nullptr : mutable_bytes(r.packed),
                       fake ? nullptr : mutable_bytes(r.scale), fake ? r.fake.data_ptr() : nullptr, stream()),
        "nvfp4_quantize");
  return r;
}

// Autograd of the quantized Linear on the GPU: forward through the kernel,
// backward to x (and bias) through dequant(W) and cuBLAS; W is frozen.
// A C++ autograd Function records every tensor argument and rejects an
// undefined one, so the bias is added outside it and an MXFP4 weight's absent
// global scale travels as an empty tensor.
struct Fp4LinearFunction : torch::autograd::Function<Fp4LinearFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& packed, const torch::Tensor& scale, const torch::Tensor& global) {
    ctx->save_for_backward({packed, scale, global});
    torch::NoGradGuard no_grad;
    return fp4_linear_bf16(x, weight_of(packed, scale, global), torch::Tensor());
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor dx = torch::matmul(grads[0], fp4_dequantize_bf16(weight_of(saved[0], saved[1], saved[2])));
    return {dx, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
  static Fp4Weight weight_of(const torch::Tensor& packed, const torch::Tensor& scale, const torch::Tensor& global) {
    return {packed, scale, global.numel() == 0 ? torch::Tensor() : global};
  }
};

}  // namespace

float nvfp4_global_scale(const torch::Tensor& w) {
  const torch::Tensor c = checked_weight("nvfp4_global_scale", w, kernels::nvfp4_group_size);
  const c10::cuda::CUDAGuard guard(c.device());
  const torch::Tensor bits = amax_bits(c, 1).cpu();
  const float amax = c10::bit_cast<float>(static_cast<uint32_t>(bits.data_ptr<int32_t>()[0]));
  return kernels::nvfp4_global_scale(&amax, 1,
                                     c.scalar_type() == torch::kBFloat16 ? WeightDtype::bf16 : WeightDtype::f32);
}

std::vector<float> nvfp4_global_scales(const std::vector<torch::Tensor>& ws) {
  if (ws.empty()) return {};
  const c10::cuda::CUDAGuard guard(ws.front().device());
  torch::Tensor bits = torch::zeros({static_cast<int64_t>(ws.size())},
                                    ws.front().options().dtype(torch::kInt));
  for (size_t i = 0; i < ws.size(); ++i) {
    const torch::Tensor c = checked_weight("nvfp4_global_scales", ws[i], kernels::nvfp4_group_size);
    if (c.device() != bits.device())
      throw Error("nvfp4_global_scales: weights on " + bits.device().str() + " and " + c.device().str());
    check(fp4_amax(c.data_ptr(), c.scalar_type() == torch::kBFloat16, 1, c.numel(),
                   reinterpret_cast<uint32_t*>(bits.data_ptr<int32_t>()) + i, stream()),
          "fp4_amax");
  }
  const torch::Tensor host = bits.cpu();
  std::vector<float> out;
  for (size_t i = 0; i < ws.size(); ++i) {
    const float amax = c10::bit_cast<float>(static_cast<uint32_t>(host.data_ptr<int32_t>()[i]));
    out.push_back(kernels::nvfp4_global_scale(
        &amax, 1, ws[i].scalar_type() == torch::kBFloat16 ? WeightDtype::bf16 : WeightDtype::f32));
  }
  return out;
}

torch::Tensor fp4_error_sums(const torch::Tensor& w, const Fp4Weight& codes) {
  const torch::Tensor c = checked_weight("fp4_error_sums", w, codes.nvfp4() ? 16 : 32);
  check_fp4_weight(codes);
  if (codes.packed.device() != c.device() || codes.out_features() != c.size(0) || codes.in_features() != c.size(1))
    throw Error("fp4_error_sums: weight " + describe(c) + " and codes " + describe(codes.packed) + " do not match");
  const c10::cuda::CUDAGuard guard(c.device());
  torch::Tensor sums = torch::zeros({2}, c.options().dtype(torch::kDouble));
  const torch::Tensor packed = codes.packed.contiguous(), scale = codes.scale.contiguous();
  const torch::Tensor global = codes.nvfp4() ? codes.global_scale.to(torch::kFloat).contiguous() : torch::Tensor();
  check(fp4_quant_error(c.data_ptr(), c.scalar_type() == torch::kBFloat16, bytes(packed), bytes(scale),
                        codes.nvfp4() ? global.data_ptr<float>() : nullptr, c.size(0), c.size(1),
                        sums.data_ptr<double>(), stream()),
        "fp4_quant_error");
  return sums;
}

Nvfp4Weight nvfp4_quantize(const torch::Tensor& w, std::optional<float> global_scale) {
  const torch::Tensor c = checked_weight("nvfp4_quantize", w, kernels::nvfp4_group_size);
  NvResult r = nvfp4_run(c, 1, global_scale, false);
  return {r.packed, r.scale.view(torch::kFloat8_e4m3fn), r.global};
}

torch::Tensor nvfp4_fake_quantize(const torch::Tensor& w, std::optional<float> global_scale) {
  const torch::Tensor c = checked_weight("nvfp4_fake_quantize", w, kernels::nvfp4_group_size);
  return nvfp4_run(c, 1, global_scale, true).fake;
}

Mxfp4Weight mxfp4_quantize(const torch::Tensor& w, MxScaleRule rule) {
  const torch::Tensor c = checked_weight("mxfp4_quantize", w, kernels::mxfp4_group_size);
  const c10::cuda::CUDAGuard guard(c.device());
  const int64_t rows = c.size(0), cols = c.size(1);
  torch::Tensor packed = torch::empty({rows, cols / 2}, c.options().dtype(torch::kUInt8));
  torch::Tensor scale = torch::empty({rows, cols / 32}, c.options().dtype(torch::kUInt8));
  check(mxfp4_quantize(c.data_ptr(), c.scalar_type() == torch::kBFloat16, rows, cols, rule == MxScaleRule::ocp,
                       mutable_bytes(packed), mutable_bytes(scale), nullptr, stream()),
        "mxfp4_quantize");
  return {packed, scale};
}

torch::Tensor mxfp4_fake_quantize(const torch::Tensor& w, MxScaleRule rule) {
  const torch::Tensor c = checked_weight("mxfp4_fake_quantize", w, kernels::mxfp4_group_size);
  const c10::cuda::CUDAGuard guard(c.device());
  torch::Tensor fake = torch::empty_like(c);
  check(mxfp4_quantize(c.data_ptr(), c.scalar_type() == torch::kBFloat16, c.size(0), c.size(1),
                       rule == MxScaleRule::ocp, nullptr, nullptr, fake.data_ptr(), stream()),
        "mxfp4_fake_quantize");
  return fake;
}

namespace {

torch::Tensor dequantize(const Fp4Weight& w, torch::Dtype dtype, const char* what) {
  check_fp4_weight(w);
  if (!w.packed.is_cuda()) throw Error(std::string(what) + ": the codes must be a CUDA tensor, got " + describe(w.packed));
  if (dtype != torch::kBFloat16 && dtype != torch::kFloat)
    throw Error(std::string(what) + ": result dtype " + c10::toString(dtype) + " is not Float or BFloat16");
  const c10::cuda::CUDAGuard guard(w.packed.device());
  const torch::Tensor packed = w.packed.contiguous(), scale = w.scale.to(packed.device()).contiguous();
  const torch::Tensor global =
      w.nvfp4() ? w.global_scale.to(packed.device(), torch::kFloat).contiguous() : torch::Tensor();
  torch::Tensor out = torch::empty({w.out_features(), w.in_features()}, packed.options().dtype(dtype));
  check(fp4_dequantize(bytes(packed), bytes(scale), w.nvfp4() ? global.data_ptr<float>() : nullptr, 1,
                       w.out_features(), w.in_features(), dtype == torch::kBFloat16, out.data_ptr(), stream()),
        what);
  return out;
}

}  // namespace

torch::Tensor nvfp4_dequantize(const torch::Tensor& packed, const torch::Tensor& block_scale,
                               const torch::Tensor& global_scale, torch::Dtype dtype) {
  return dequantize(Fp4Weight{packed, block_scale, global_scale}, dtype, "nvfp4_dequantize");
}

torch::Tensor mxfp4_dequantize(const torch::Tensor& packed, const torch::Tensor& scale, torch::Dtype dtype) {
  return dequantize(Fp4Weight{packed, scale, torch::Tensor()}, dtype, "mxfp4_dequantize");
}

torch::Tensor fp4_dequantize_bf16(const Fp4Weight& w) { return dequantize(w, torch::kBFloat16, "fp4_dequantize_bf16"); }

namespace {
// The choice environment variable `var` names (the first when unset or
// empty); any other name throws, listing the choices.
template <class T, size_t N>
T from_environment(const char* var, const std::pair<const char*, T> (&choices)[N]) {
  const char* v = std::getenv(var);
  if (v == nullptr || *v == '\0') return choices[0].second;
  std::string names;
  for (const auto& [name, choice] : choices) {
    if (std::string(v) == name) return choice;
    names += (names.empty() ? "" : ", ") + std::string(name);
  }
  throw Error(std::string(var) + ": expected one of " + names + ", got '" + v + "'");
}

const std::pair<const char*, PrefillPath> prefill_paths[] = {{"dequantize", PrefillPath::dequantize},
                                                             {"in_register", PrefillPath::in_register}};
PrefillPath chosen_prefill_path = from_environment("QERL_FP4_PREFILL", prefill_paths);

// QERL_FP4_DECODE picks the decode kernel at start (fp4_select_decode_kernel).
const std::pair<const char*, DecodeKernel> decode_kernels[] = {
    {"automatic", DecodeKernel::automatic}, {"narrow", DecodeKernel::narrow},   {"wide", DecodeKernel::wide},
    {"compact", DecodeKernel::compact},     {"general", DecodeKernel::general}, {"stream", DecodeKernel::stream}};
const bool decode_kernel_chosen = [] {
  fp4_select_decode_kernel(from_environment("QERL_FP4_DECODE", decode_kernels));
  return true;
}();

const std::pair<const char*, Bf16ExpertsKernel> bf16_experts_kernels[] = {
    {"stream", Bf16ExpertsKernel::stream}, {"grouped_mm", Bf16ExpertsKernel::grouped_mm}};
Bf16ExpertsKernel chosen_bf16_experts_kernel = from_environment("QERL_BF16_EXPERTS", bf16_experts_kernels);
}  // namespace

void set_bf16_experts_kernel(Bf16ExpertsKernel kernel) { chosen_bf16_experts_kernel = kernel; }
Bf16ExpertsKernel bf16_experts_kernel() { return chosen_bf16_experts_kernel; }

void set_prefill_path(PrefillPath path) { chosen_prefill_path = path; }
PrefillPath prefill_path() { return chosen_prefill_path; }

torch::Tensor fp4_linear_bf16(const torch::Tensor& x, const Fp4Weight& w, const torch::Tensor& bias) {
  check_fp4_weight(w);
  if (!w.packed.is_cuda() || x.scalar_type() != torch::kBFloat16 || x.device() != w.packed.device())
    throw Error("fp4_linear_bf16: x must be bf16 on the codes' CUDA device, got " + describe(x) + " and codes " +
                describe(w.packed));
  const int64_t K = w.in_features(), N = w.out_features();
  if (x.size(-1) != K)
    throw Error("fp4_linear_bf16: input " + describe(x) + " has " + std::to_string(x.size(-1)) +
                " features, the weight takes " + std::to_string(K));
  if (torch::GradMode::is_enabled() && (x.requires_grad() || (bias.defined() && bias.requires_grad()))) {
    const torch::Tensor global =
        w.global_scale.defined() ? w.global_scale : torch::empty({0}, w.packed.options().dtype(torch::kFloat));
    const torch::Tensor y = Fp4LinearFunction::apply(x, w.packed, w.scale, global);
    return bias.defined() ? y + bias.to(y.scalar_type()) : y;
  }
  const c10::cuda::CUDAGuard guard(x.device());
  torch::Tensor rows = x.reshape({-1, K}).contiguous();
  if (reinterpret_cast<uintptr_t>(rows.data_ptr()) % 16 != 0) rows = rows.clone();
  const int64_t M = rows.size(0);
  auto shape = x.sizes().vec();
  shape.back() = N;
  const torch::Tensor b = bias.defined() ? bias.to(torch::kBFloat16).contiguous() : torch::Tensor();
  if (M > decode_rows_max && prefill_path() == PrefillPath::dequantize) {
    const torch::Tensor dense = fp4_dequantize_bf16(w);
    return (b.defined() ? torch::addmm(b, rows, dense.t()) : torch::mm(rows, dense.t())).reshape(shape);
  }
  torch::Tensor y = torch::empty({M, N}, x.options());
  const torch::Tensor packed = w.packed.contiguous(), scale = w.scale.contiguous();
  const torch::Tensor global = w.nvfp4() ? w.global_scale.to(torch::kFloat).contiguous() : torch::Tensor();
  const float* global_ptr = w.nvfp4() ? global.data_ptr<float>() : nullptr;
  const __nv_bfloat16* bias_ptr = b.defined() ? bf16_ptr(b) : nullptr;
  auto* out = reinterpret_cast<__nv_bfloat16*>(y.data_ptr());
  if (M > decode_rows_max) {
    const int splits = fp4_prefill_splits(M, K, N);
    const torch::Tensor workspace =
        splits > 1 ? torch::zeros({M, N}, rows.options().dtype(torch::kFloat)) : torch::Tensor();
    check(fp4_prefill_matmul_bf16(bf16_ptr(rows), nullptr, 1, M, K, bytes(packed), bytes(scale), global_ptr, N,
                                  bias_ptr, out, stream(), splits > 1 ? workspace.data_ptr<float>() : nullptr,
                                  splits),
          "fp4_prefill_matmul_bf16");
  } else {
    check(fp4_matmul_bf16(bf16_ptr(rows), M, K, bytes(packed), bytes(scale), global_ptr, N, bias_ptr, out, stream()),
          "fp4_matmul_bf16");
  }
  return y.reshape(shape);
}

Fp4Experts quantize_experts(const torch::Tensor& w, bool nvfp4) {
  const torch::Tensor c = checked_weight("quantize_experts", w, nvfp4 ? 16 : 32, 3);
  const c10::cuda::CUDAGuard guard(c.device());
  const int64_t E = c.size(0), N = c.size(1), K = c.size(2);
  if (nvfp4) {
    NvResult r = nvfp4_run(c, E, std::nullopt, false);
    return {r.packed.view({E, N, K / 2}), r.scale.view(torch::kFloat8_e4m3fn).view({E, N, K / 16}), r.global};
  }
  torch::Tensor packed = torch::empty({E, N, K / 2}, c.options().dtype(torch::kUInt8));
  torch::Tensor scale = torch::empty({E, N, K / 32}, c.options().dtype(torch::kUInt8));
  check(mxfp4_quantize(c.data_ptr(), c.scalar_type() == torch::kBFloat16, E * N, K, false, mutable_bytes(packed),
                       mutable_bytes(scale), nullptr, stream()),
        "mxfp4_quantize");
  return {packed, scale, torch::Tensor()};
}

ExpertRouting sort_by_expert(const torch::Tensor& indices, int64_t experts) {
  const torch::Tensor flat = indices.reshape({-1}).to(torch::kLong).contiguous();
  const int64_t top_k = indices.dim() == 2 ? indices.size(1) : 1;
  ExpertRouting r;
  if (flat.is_cuda() && flat.numel() <= sort_max_assignments && experts <= route_max_experts &&
      fused_decode_enabled()) {
    const c10::cuda::CUDAGuard guard(flat.device());
    r.order = torch::empty_like(flat);
    r.rows = torch::empty_like(flat);
    r.position = torch::empty_like(flat);
    r.offsets = torch::empty({experts + 1}, flat.options().dtype(torch::kInt));
    check(moe_sort_by_expert(flat.data_ptr<int64_t>(), flat.numel(), experts, top_k, r.order.data_ptr<int64_t>(),
                             r.rows.data_ptr<int64_t>(), r.offsets.data_ptr<int32_t>(), r.position.data_ptr<int64_t>(),
                             stream()),
          "moe_sort_by_expert");
    return r;
  }
  r.order = std::get<1>(flat.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false));
  r.rows = torch::floor_divide(r.order, top_k);
  const torch::Tensor counts = torch::zeros({experts}, flat.options()).scatter_add_(0, flat, torch::ones_like(flat));
  r.offsets = torch::cat({torch::zeros({1}, flat.options()), counts.cumsum(0)}).to(torch::kInt);
  r.position = torch::empty_like(r.order).scatter_(0, r.order, torch::arange(flat.numel(), flat.options()));
  return r;
}

torch::Tensor fp4_grouped_linear(const torch::Tensor& x_sorted, const ExpertRouting& routing, const Fp4Experts& w,
                                 int64_t rows_hint) {
  const int64_t E = w.packed.size(0), N = w.packed.size(1), K = w.packed.size(2) * 2;
  if (x_sorted.dim() != 2 || x_sorted.size(1) != K || x_sorted.scalar_type() != torch::kBFloat16)
    throw Error("fp4_grouped_linear: x " + describe(x_sorted) + " does not match experts of in = " +
                std::to_string(K));
  const c10::cuda::CUDAGuard guard(x_sorted.device());
  torch::Tensor x = x_sorted.contiguous();
  if (reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 != 0) x = x.clone();
  torch::Tensor y = torch::empty({x.size(0), N}, x.options());
  const torch::Tensor packed = w.packed.contiguous(), scale = w.scale.contiguous();
  const float* global_ptr = w.nvfp4() ? w.global_scale.data_ptr<float>() : nullptr;
  auto* out = reinterpret_cast<__nv_bfloat16*>(y.data_ptr());
  if (rows_hint > decode_rows_max)
    check(fp4_prefill_matmul_bf16(bf16_ptr(x), routing.offsets.data_ptr<int32_t>(), E, x.size(0), K, bytes(packed),
                                  bytes(scale), global_ptr, N, nullptr, out, stream()),
          "fp4_prefill_matmul_bf16");
  else
    check(fp4_grouped_matmul_bf16(bf16_ptr(x), routing.offsets.data_ptr<int32_t>(), E, rows_hint, K, bytes(packed),
                                  bytes(scale), global_ptr, N, out, stream()),
          "fp4_grouped_matmul_bf16");
  return y;
}

torch::Tensor bf16_grouped_linear(const torch::Tensor& x_sorted, const ExpertRouting& routing, const torch::Tensor& w,
                                  int64_t rows_hint) {
  if (w.dim() != 3 || w.scalar_type() != torch::kBFloat16 || !w.is_cuda())
    throw Error("bf16_grouped_linear: experts must be [E, N, K] bf16 on the GPU, got " + describe(w));
  const int64_t E = w.size(0), N = w.size(1), K = w.size(2);
  if (x_sorted.dim() != 2 || x_sorted.size(1) != K || x_sorted.scalar_type() != torch::kBFloat16)
    throw Error("bf16_grouped_linear: x " + describe(x_sorted) + " does not match experts of in = " +
                std::to_string(K));
  if (routing.offsets.numel() != E + 1)
    throw Error("bf16_grouped_linear: " + std::to_string(routing.offsets.numel()) + " offsets for " +
                std::to_string(E) + " experts");
  const c10::cuda::CUDAGuard guard(x_sorted.device());
  torch::Tensor x = x_sorted.contiguous();
  if (reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 != 0) x = x.clone();
  const torch::Tensor weights = w.contiguous();
  const int64_t rows = rows_hint <= 8 ? 8 : 16;
  if (!bf16_grouped_decode_fits(rows, K, N, x.data_ptr(), weights.data_ptr()))
    throw Error("bf16_grouped_linear: in = " + std::to_string(K) + " is not a multiple of 64 (or misaligned experts)");
  torch::Tensor y = torch::empty({x.size(0), N}, x.options());
  check(bf16_grouped_decode_bf16(bf16_ptr(x), routing.offsets.data_ptr<int32_t>(), E, rows, bf16_ptr(weights), N, K,
                                 reinterpret_cast<__nv_bfloat16*>(y.data_ptr()), stream()),
        "bf16_grouped_decode_bf16");
  return y;
}

torch::Tensor dequantize_experts_bf16(const Fp4Experts& w) {
  const int64_t E = w.packed.size(0), N = w.packed.size(1), K = w.packed.size(2) * 2;
  const torch::Tensor packed = w.packed.contiguous(), scale = w.scale.contiguous();
  torch::Tensor out = torch::empty({E, N, K}, packed.options().dtype(torch::kBFloat16));
  check(fp4_dequantize(bytes(packed), bytes(scale), w.nvfp4() ? w.global_scale.data_ptr<float>() : nullptr, E, N, K,
                       true, out.data_ptr(), stream()),
        "dequantize_experts");
  return out;
}

namespace {

// One grouped projection of the sorted rows: the W4A16 decode kernel while
// experts get few rows each; past decode_rows_max rows per expert the
// prefill path (fp4_grouped_linear's prefill kernel, or with
// PrefillPath::dequantize the experts dequantized once for LibTorch's
// grouped GEMM).
torch::Tensor grouped_projection(const torch::Tensor& rows, const ExpertRouting& routing, const Fp4Experts& codes,
                                 const torch::Tensor& dense, int64_t hint) {
  const int64_t E = routing.offsets.size(0) - 1;
  if (dense.defined()) {
    const bool no_grad = !torch::GradMode::is_enabled() || !(rows.requires_grad() || dense.requires_grad());
    // (x is copied to an aligned buffer if it needs to be; the experts never are)
    if (bf16_experts_kernel() == Bf16ExpertsKernel::stream && hint <= 16 && no_grad && dense.is_contiguous() &&
        bf16_grouped_decode_fits(16, dense.size(2), dense.size(1), dense.data_ptr(), dense.data_ptr()))
      return bf16_grouped_linear(rows, routing, dense, hint);
    return at::_grouped_mm(rows, dense.transpose(1, 2), routing.offsets.narrow(0, 1, E));
  }
  if (hint > decode_rows_max && prefill_path() == PrefillPath::dequantize)
    return at::_grouped_mm(rows, dequantize_experts_bf16(codes).transpose(1, 2), routing.offsets.narrow(0, 1, E));
  return fp4_grouped_linear(rows, routing, codes, hint);
}

// The experts' LoRA terms of the sorted rows: (x A_e^T) B_e^T per expert,
// two grouped GEMMs. a: [E, R, K], b: [E, N, R] bf16 -> [rows, N].
torch::Tensor grouped_low_rank(const torch::Tensor& rows, const ExpertRouting& routing, const torch::Tensor& a,
                               const torch::Tensor& b) {
  const torch::Tensor ends = routing.offsets.narrow(0, 1, routing.offsets.size(0) - 1);
  return at::_grouped_mm(at::_grouped_mm(rows, a.transpose(1, 2), ends), b.transpose(1, 2), ends);
}

// frozen_experts_projection's autograd node: saves the routing offsets
// and the codes, never a dense copy.
class FrozenExpertsFunction : public torch::autograd::Function<FrozenExpertsFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& rows,
                               const torch::Tensor& offsets, const torch::Tensor& packed, const torch::Tensor& scale,
                               const torch::Tensor& global) {
    ctx->save_for_backward({offsets, packed, scale, global});
    ExpertRouting routing;
    routing.offsets = offsets;
    const int64_t experts = packed.size(0);
    return grouped_projection(rows, routing, codes_of(packed, scale, global), torch::Tensor(),
                              (rows.size(0) + experts - 1) / experts);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor dense = dequantize_experts_bf16(codes_of(saved[1], saved[2], saved[3]));  // [E, N, K]
    const torch::Tensor d_rows =
        at::_grouped_mm(grads[0].contiguous(), dense, saved[0].narrow(0, 1, saved[1].size(0)));
    return {d_rows, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
  static Fp4Experts codes_of(const torch::Tensor& packed, const torch::Tensor& scale, const torch::Tensor& global) {
    return {packed, scale, global.numel() == 0 ? torch::Tensor() : global};
  }
};

}  // namespace

torch::Tensor frozen_experts_projection(const torch::Tensor& rows, const ExpertRouting& routing,
                                        const Fp4Experts& codes) {
  const c10::cuda::CUDAGuard guard(rows.device());
  const torch::Tensor global =
      codes.nvfp4() ? codes.global_scale : torch::empty({0}, codes.packed.options().dtype(torch::kFloat));
  return FrozenExpertsFunction::apply(rows, routing.offsets, codes.packed, codes.scale, global);
}

torch::Tensor moe_experts_forward(const torch::Tensor& x, const torch::Tensor& indices, const torch::Tensor& weights,
                                  const MoeExperts& experts) {
  if (x.dim() != 2 || x.scalar_type() != torch::kBFloat16 || !x.is_cuda())
    throw Error("moe_experts_forward: x must be [tokens, hidden] bf16 on a CUDA device, got " + describe(x));
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t T = x.size(0), H = x.size(1), top_k = indices.size(1);
  const int64_t E = experts.fp4() ? experts.gate_up.packed.size(0) : experts.gate_up_bf16.size(0);
  const ExpertRouting routing = sort_by_expert(indices, E);
  const torch::Tensor x_sorted = x.index_select(0, routing.rows);
  const int64_t hint = (2 * T * top_k + E - 1) / E;
  torch::Tensor h = grouped_projection(x_sorted, routing, experts.gate_up, experts.gate_up_bf16, hint);
  if (experts.gate_up_lora_a.defined())
    h = h + grouped_low_rank(x_sorted, routing, experts.gate_up_lora_a, experts.gate_up_lora_b);
  const int64_t I = h.size(1) / 2;
  const torch::Tensor act = fused_decode_enabled() ? silu_mul(h.narrow(1, 0, I), h.narrow(1, I, I))
                                                   : torch::silu(h.narrow(1, 0, I)) * h.narrow(1, I, I);
  torch::Tensor out_sorted = grouped_projection(act, routing, experts.down, experts.down_bf16, hint);
  if (experts.down_lora_a.defined())
    out_sorted = out_sorted + grouped_low_rank(act, routing, experts.down_lora_a, experts.down_lora_b);
  if (out_sorted.size(1) != H) throw Error("moe_experts_forward: down projection gives " + describe(out_sorted));
  torch::Tensor out = torch::empty({T, H}, x.options());
  const bool bf16_weights = weights.scalar_type() == torch::kBFloat16;
  const torch::Tensor w = (bf16_weights ? weights : weights.to(torch::kFloat)).contiguous();
  check(moe_mix_bf16(bf16_ptr(out_sorted.contiguous()), routing.position.data_ptr<int64_t>(), w.data_ptr(),
                     bf16_weights, T, top_k, H, reinterpret_cast<__nv_bfloat16*>(out.data_ptr()), stream()),
        "moe_mix_bf16");
  return out;
}

}  // namespace qerl::kernels::cuda
