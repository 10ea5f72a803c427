// The one LibTorch translation unit of qerl_kernels: checks shapes and dtypes
// at the boundary, widens bf16 to float (exact), calls the plain C++ core and
// wraps its bytes in tensors. bf16 results are rounded from the fp32 values
// with torch's RTNE cast, as compressed-tensors does. In QERL_CUDA builds,
// CUDA tensors go to the CUDA kernels (kernels/cuda/), which compute the
// same bytes on the device.
#include "kernels/quantize_tensor.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include <torch/autograd.h>

#include "common/error.hpp"
#include "kernels/nvfp4.hpp"
#if QERL_CUDA
#include "kernels/cuda/fp4_cuda_torch.hpp"
#endif

namespace qerl::kernels {
namespace {

std::string shape_of(const torch::Tensor& t) {
  std::ostringstream out;
  out << t.sizes();
  return out.str();
}

std::string dtype_of(const torch::Tensor& t) { return std::string(c10::toString(t.scalar_type())); }

// w must be [out, in] float32/bfloat16 with in % group == 0.
void check_weight(const char* what, const torch::Tensor& w, int64_t group) {
  if (!w.defined()) throw Error(std::string(what) + ": weight is an undefined tensor");
  if (w.dim() != 2) {
    throw Error(std::string(what) + ": expected a 2-D weight [out, in], got " + std::to_string(w.dim()) +
                "-D " + shape_of(w));
  }
  if (w.scalar_type() != torch::kFloat32 && w.scalar_type() != torch::kBFloat16) {
    throw Error(std::string(what) + ": expected a Float or BFloat16 weight, got " + dtype_of(w) + " " +
                shape_of(w));
  }
  if (w.size(1) % group != 0) {
    throw Error(std::string(what) + ": weight " + shape_of(w) + " has in = " + std::to_string(w.size(1)) +
                ", expected a multiple of the group size " + std::to_string(group));
  }
}

void check_tensor(const char* what, const char* name, const torch::Tensor& t, torch::Dtype dtype,
                  const std::vector<int64_t>& shape) {
  if (!t.defined() || t.scalar_type() != dtype || t.sizes() != c10::IntArrayRef(shape)) {
    std::ostringstream expected;
    expected << c10::toString(dtype) << " " << c10::IntArrayRef(shape);
    throw Error(std::string(what) + ": " + name + " is " +
                (t.defined() ? dtype_of(t) + " " + shape_of(t) : std::string("undefined")) + ", expected " +
                expected.str());
  }
}

void check_result_dtype(const char* what, torch::Dtype dtype) {
  if (dtype != torch::kFloat32 && dtype != torch::kBFloat16) {
    throw Error(std::string(what) + ": result dtype " + std::string(c10::toString(dtype)) +
                " is not supported, expected Float or BFloat16");
  }
}

WeightDtype weight_dtype(const torch::Tensor& w) {
  return w.scalar_type() == torch::kBFloat16 ? WeightDtype::bf16 : WeightDtype::f32;
}

// Contiguous CPU float32 copy of w (exact for bf16).
torch::Tensor as_cpu_float(const torch::Tensor& w) { return w.to(torch::kCPU, torch::kFloat32).contiguous(); }

torch::Tensor cpu_bytes(int64_t rows, int64_t cols) {
  return torch::empty({rows, cols}, torch::TensorOptions().dtype(torch::kUInt8));
}

// packed: [out, in/2] uint8 on the CPU, contiguous.
torch::Tensor checked_packed(const char* what, const torch::Tensor& packed) {
  if (!packed.defined() || packed.dim() != 2 || packed.scalar_type() != torch::kUInt8) {
    throw Error(std::string(what) + ": packed is " +
                (packed.defined() ? dtype_of(packed) + " " + shape_of(packed) : std::string("undefined")) +
                ", expected Byte [out, in / 2]");
  }
  return packed.to(torch::kCPU).contiguous();
}

}  // namespace

float nvfp4_global_scale(const torch::Tensor& w) {
  check_weight("nvfp4_global_scale", w, nvfp4_group_size);
#if QERL_CUDA
  if (w.is_cuda()) return cuda::nvfp4_global_scale(w);
#endif
  const torch::Tensor x = as_cpu_float(w);
  return nvfp4_global_scale(x.data_ptr<float>(), x.numel(), weight_dtype(w));
}

std::vector<float> nvfp4_global_scales(const std::vector<torch::Tensor>& ws) {
#if QERL_CUDA
  const bool all_cuda = !ws.empty() && std::all_of(ws.begin(), ws.end(), [&](const torch::Tensor& w) {
    return w.defined() && w.is_cuda() && w.device() == ws.front().device();
  });
  if (all_cuda) {
    for (const torch::Tensor& w : ws) check_weight("nvfp4_global_scales", w, nvfp4_group_size);
    return cuda::nvfp4_global_scales(ws);
  }
#endif
  std::vector<float> out;
  for (const torch::Tensor& w : ws) out.push_back(nvfp4_global_scale(w));
  return out;
}

Nvfp4Weight nvfp4_quantize(const torch::Tensor& w, std::optional<float> global_scale) {
  check_weight("nvfp4_quantize", w, nvfp4_group_size);
#if QERL_CUDA
  if (w.is_cuda()) return cuda::nvfp4_quantize(w, global_scale);
#endif
  const torch::Tensor x = as_cpu_float(w);
  const WeightDtype dtype = weight_dtype(w);
  const float g = global_scale ? *global_scale : nvfp4_global_scale(x.data_ptr<float>(), x.numel(), dtype);
  if (!std::isfinite(g) || g <= 0.0f) {
    throw Error("nvfp4_quantize: global scale " + std::to_string(g) + " given, expected a finite value > 0");
  }
  const int64_t rows = w.size(0), cols = w.size(1);
  torch::Tensor packed = cpu_bytes(rows, cols / 2);
  torch::Tensor scale_bits = cpu_bytes(rows, cols / nvfp4_group_size);
  nvfp4_quantize(x.data_ptr<float>(), rows, cols, g, dtype, packed.data_ptr<uint8_t>(),
                 scale_bits.data_ptr<uint8_t>());
  return {packed.to(w.device()), scale_bits.view(torch::kFloat8_e4m3fn).to(w.device()),
          torch::full({1}, g, torch::TensorOptions().dtype(torch::kFloat32)).to(w.device())};
}

torch::Tensor nvfp4_dequantize(const torch::Tensor& packed, const torch::Tensor& block_scale,
                               const torch::Tensor& global_scale, torch::Dtype dtype) {
  const char* what = "nvfp4_dequantize";
  check_result_dtype(what, dtype);
#if QERL_CUDA
  if (packed.is_cuda()) return cuda::nvfp4_dequantize(packed, block_scale, global_scale, dtype);
#endif
  const torch::Tensor bytes = checked_packed(what, packed);
  const int64_t rows = bytes.size(0), cols = bytes.size(1) * 2;
  if (cols % nvfp4_group_size != 0) {
    throw Error(std::string(what) + ": packed " + shape_of(packed) +
                " unpacks to in = " + std::to_string(cols) + ", expected a multiple of the group size 16");
  }
  check_tensor(what, "block_scale", block_scale, torch::kFloat8_e4m3fn, {rows, cols / nvfp4_group_size});
  check_tensor(what, "global_scale", global_scale, torch::kFloat32, {1});
  const torch::Tensor scale_bits = block_scale.to(torch::kCPU).contiguous().view(torch::kUInt8);
  const float g = global_scale.to(torch::kCPU).item<float>();
  torch::Tensor out = torch::empty({rows, cols}, torch::TensorOptions().dtype(torch::kFloat32));
  nvfp4_dequantize(bytes.data_ptr<uint8_t>(), scale_bits.data_ptr<uint8_t>(), g, rows, cols,
                   out.data_ptr<float>());
  return out.to(dtype).to(packed.device());
}

torch::Tensor nvfp4_fake_quantize(const torch::Tensor& w, std::optional<float> global_scale) {
#if QERL_CUDA
  if (w.is_cuda()) return cuda::nvfp4_fake_quantize(w, global_scale);
#endif
  const Nvfp4Weight q = nvfp4_quantize(w, global_scale);
  return nvfp4_dequantize(q.packed, q.block_scale, q.global_scale, w.scalar_type());
}

Mxfp4Weight mxfp4_quantize(const torch::Tensor& w, MxScaleRule rule) {
  check_weight("mxfp4_quantize", w, mxfp4_group_size);
#if QERL_CUDA
  if (w.is_cuda()) return cuda::mxfp4_quantize(w, rule);
#endif
  const torch::Tensor x = as_cpu_float(w);
  const int64_t rows = w.size(0), cols = w.size(1);
  torch::Tensor packed = cpu_bytes(rows, cols / 2);
  torch::Tensor scale = cpu_bytes(rows, cols / mxfp4_group_size);
  mxfp4_quantize(x.data_ptr<float>(), rows, cols, rule, weight_dtype(w), packed.data_ptr<uint8_t>(),
                 scale.data_ptr<uint8_t>());
  return {packed.to(w.device()), scale.to(w.device())};
}

torch::Tensor mxfp4_dequantize(const torch::Tensor& packed, const torch::Tensor& scale, torch::Dtype dtype) {
  const char* what = "mxfp4_dequantize";
  check_result_dtype(what, dtype);
#if QERL_CUDA
  if (packed.is_cuda()) return cuda::mxfp4_dequantize(packed, scale, dtype);
#endif
  const torch::Tensor bytes = checked_packed(what, packed);
  const int64_t rows = bytes.size(0), cols = bytes.size(1) * 2;
  if (cols % mxfp4_group_size != 0) {
    throw Error(std::string(what) + ": packed " + shape_of(packed) +
                " unpacks to in = " + std::to_string(cols) + ", expected a multiple of the group size 32");
  }
  check_tensor(what, "scale", scale, torch::kUInt8, {rows, cols / mxfp4_group_size});
  const torch::Tensor codes = scale.to(torch::kCPU).contiguous();
  torch::Tensor out = torch::empty({rows, cols}, torch::TensorOptions().dtype(torch::kFloat32));
  mxfp4_dequantize(bytes.data_ptr<uint8_t>(), codes.data_ptr<uint8_t>(), rows, cols, out.data_ptr<float>());
  return out.to(dtype).to(packed.device());
}

torch::Tensor mxfp4_fake_quantize(const torch::Tensor& w, MxScaleRule rule) {
#if QERL_CUDA
  if (w.is_cuda()) return cuda::mxfp4_fake_quantize(w, rule);
#endif
  const Mxfp4Weight q = mxfp4_quantize(w, rule);
  return mxfp4_dequantize(q.packed, q.scale, w.scalar_type());
}

namespace {

// forward: the fake-quantized value; backward: identity to w.
struct FakeQuantSte : torch::autograd::Function<FakeQuantSte> {
  static torch::Tensor forward(torch::autograd::AutogradContext*, const torch::Tensor& w, bool nvfp4,
                               double global_scale) {
    torch::NoGradGuard no_grad;
    return nvfp4 ? nvfp4_fake_quantize(w, static_cast<float>(global_scale)) : mxfp4_fake_quantize(w);
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext*,
                                               torch::autograd::tensor_list grads) {
    return {grads[0], torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor nvfp4_fake_quantize_ste(const torch::Tensor& w, float global_scale) {
  return FakeQuantSte::apply(w, true, static_cast<double>(global_scale));
}

torch::Tensor mxfp4_fake_quantize_ste(const torch::Tensor& w) { return FakeQuantSte::apply(w, false, 0.0); }

}  // namespace qerl::kernels
