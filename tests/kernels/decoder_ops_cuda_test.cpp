// The fused decoder kernels (kernels/cuda/decoder_ops.hpp) against the
// composed LibTorch ops of models/nn (HF's formulas) on the same GPU, on
// seeded random inputs of several shapes (rows not a multiple of a block,
// head dims 8 to 256, strided inputs): the rotary embedding bit for bit,
// RMSNorm within one bf16 step on at most 1 % of values (only the fp32 sum
// of squares is ordered differently); silu * up and the shared expert's
// sum within one bf16 step on at most 0.1 % of values (the same formulas;
// exp may come from another CUDA math library); the router's top-k exactly
// and its weights to fp32 rounding; the sort by expert exactly against a
// CPU construction. Skipped, saying so, without a GPU.
#include "torch_doctest.hpp"  // first: see there

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/cuda/decoder_ops_torch.hpp"
#include "kernels/cuda/fp4_cuda_torch.hpp"

namespace {

bool gpu_visible() { return qerl::kernels::test::cuda_visible("the fused decoder kernels"); }

// models/nn/rms_norm.cpp's formula.
torch::Tensor composed_rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto x32 = x.to(torch::kFloat);
  x32 = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * x32.to(x.scalar_type());
}

// models/nn/rotary_embedding.cpp's apply_rotary on x [B, H, S, D].
torch::Tensor composed_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  const auto rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1);
}

}  // namespace

TEST_CASE("fused RMSNorm == the composed ops within one bf16 step") {
  if (!gpu_visible()) return;
  torch::manual_seed(61);
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{37, 2048}, {3, 5, 4, 128}, {1, 8}, {130, 64}, {2, 9000}}) {
    CAPTURE(c10::str(torch::IntArrayRef(shape)));
    const torch::Tensor x = torch::randn(shape, bf16) * 3;
    const torch::Tensor weight = torch::randn({shape.back()}, bf16);
    const torch::Tensor fused = qerl::kernels::cuda::rms_norm(x, weight, 1e-6).to(torch::kFloat).cpu();
    const torch::Tensor composed = composed_rms_norm(x, weight, 1e-6).to(torch::kFloat).cpu();
    const torch::Tensor step = composed.abs() * std::ldexp(1.0, -7) + 1e-30;
    CHECK((fused - composed).abs().le(step).all().item<bool>());
    CHECK(fused.ne(composed).to(torch::kFloat).mean().item<double>() <= 0.01);
  }
  // The residual sum and its norm in one kernel: the sum bit for bit.
  for (const auto& shape : std::vector<std::vector<int64_t>>{{37, 2048}, {2, 3, 64}, {2, 9000}}) {
    const torch::Tensor x = torch::randn(shape, bf16) * 2, residual = torch::randn(shape, bf16);
    const torch::Tensor weight = torch::randn({shape.back()}, bf16);
    const auto [sum, normed] = qerl::kernels::cuda::add_rms_norm(x, residual, weight, 1e-6);
    CHECK(torch::equal(sum, x + residual));
    const torch::Tensor composed = composed_rms_norm(x + residual, weight, 1e-6).to(torch::kFloat).cpu();
    const torch::Tensor fused = normed.to(torch::kFloat).cpu();
    CHECK((fused - composed).abs().le(composed.abs() * std::ldexp(1.0, -7) + 1e-30).all().item<bool>());
    CHECK(fused.ne(composed).to(torch::kFloat).mean().item<double>() <= 0.01);
  }
  // A strided input goes through a contiguous copy.
  const torch::Tensor wide = torch::randn({6, 256}, bf16);
  const torch::Tensor weight = torch::randn({128}, bf16);
  const torch::Tensor strided = wide.narrow(1, 64, 128);
  const torch::Tensor fused = qerl::kernels::cuda::rms_norm(strided, weight, 1e-5).to(torch::kFloat).cpu();
  const torch::Tensor composed = composed_rms_norm(strided, weight, 1e-5).to(torch::kFloat).cpu();
  CHECK((fused - composed).abs().le(composed.abs() * std::ldexp(1.0, -7) + 1e-30).all().item<bool>());
  CHECK_THROWS_AS(qerl::kernels::cuda::rms_norm(wide, weight, 1e-6), qerl::Error);  // 256 values, 128 weights
  CHECK_THROWS_AS(qerl::kernels::cuda::rms_norm(strided.to(torch::kFloat), weight, 1e-6), qerl::Error);
}

TEST_CASE("fused rotary embedding == the composed ops bit for bit, [B, S, H, D] in, [B, H, S, D] out") {
  if (!gpu_visible()) return;
  torch::manual_seed(62);
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{32, 1, 16, 128}, {3, 13, 4, 8}, {2, 7, 5, 256}, {1, 1, 1, 2}}) {
    CAPTURE(c10::str(torch::IntArrayRef(shape)));
    const int64_t batch = shape[0], seq = shape[1], dim = shape[3];
    const torch::Tensor x = torch::randn(shape, bf16) * 2;
    // Tables as RotaryEmbedding makes them: cos/sin of position * inverse frequency.
    const torch::Tensor positions = torch::randint(0, 4096, {batch, seq}, bf16.dtype(torch::kLong));
    const torch::Tensor inv_freq =
        1.0 / torch::pow(10000.0, torch::arange(0, dim, 2, bf16.dtype(torch::kFloat)) / static_cast<double>(dim));
    const torch::Tensor freqs = positions.to(torch::kFloat).unsqueeze(-1) * inv_freq;
    const torch::Tensor angles = torch::cat({freqs, freqs}, -1);
    const torch::Tensor cos = angles.cos().to(torch::kBFloat16), sin = angles.sin().to(torch::kBFloat16);
    const torch::Tensor fused = qerl::kernels::cuda::rotary(x, cos, sin);
    CHECK(fused.sizes() == torch::IntArrayRef{batch, shape[2], seq, dim});
    CHECK(torch::equal(fused, composed_rotary(x.transpose(1, 2), cos, sin)));
  }
  // A non-contiguous input (a narrowed projection output) gives the same.
  const torch::Tensor wide = torch::randn({2, 3, 4, 64}, bf16);
  const torch::Tensor x = wide.narrow(3, 0, 32);
  const torch::Tensor cos = torch::randn({2, 3, 32}, bf16), sin = torch::randn({2, 3, 32}, bf16);
  CHECK(torch::equal(qerl::kernels::cuda::rotary(x, cos, sin), composed_rotary(x.transpose(1, 2), cos, sin)));
  CHECK_THROWS_AS(qerl::kernels::cuda::rotary(x, cos.narrow(2, 0, 16), sin.narrow(2, 0, 16)), qerl::Error);
}

TEST_CASE("fused rotary + KV cache write == rotary, then index_copy_ of k and v at the slot") {
  if (!gpu_visible()) return;
  torch::manual_seed(67);
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  for (const auto& [batch, heads, dim, capacity, slot] :
       std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>>{
           {32, 16, 128, 192, 70}, {3, 2, 8, 5, 0}, {5, 4, 64, 9, 8}}) {
    CAPTURE(batch);
    CAPTURE(heads);
    CAPTURE(dim);
    CAPTURE(slot);
    const torch::Tensor k = torch::randn({batch, 1, heads, dim}, bf16) * 2, v = torch::randn({batch, 1, heads, dim}, bf16);
    const torch::Tensor cos = torch::randn({batch, 1, dim}, bf16), sin = torch::randn({batch, 1, dim}, bf16);
    torch::Tensor k_cache = torch::randn({batch, heads, capacity, dim}, bf16), v_cache = torch::randn_like(k_cache);
    torch::Tensor k_expected = k_cache.clone(), v_expected = v_cache.clone();
    const torch::Tensor at = torch::full({1}, slot, bf16.dtype(torch::kLong));
    k_expected.index_copy_(2, at, qerl::kernels::cuda::rotary(k, cos, sin));
    v_expected.index_copy_(2, at, v.transpose(1, 2));
    qerl::kernels::cuda::rotary_into_cache(k, v, cos, sin, at, k_cache, v_cache);
    CHECK(torch::equal(k_cache, k_expected));
    CHECK(torch::equal(v_cache, v_expected));
  }
  torch::Tensor cache = torch::zeros({2, 2, 4, 8}, bf16), other = torch::zeros({2, 2, 4, 8}, bf16);
  const torch::Tensor k = torch::randn({2, 1, 2, 8}, bf16), tables = torch::randn({2, 1, 8}, bf16);
  // A slot past the capacity writes nothing; a wrong shape is refused.
  qerl::kernels::cuda::rotary_into_cache(k, k, tables, tables, torch::full({1}, 4, bf16.dtype(torch::kLong)), cache,
                                         other);
  CHECK(cache.abs().sum().item<double>() == 0.0);
  CHECK_THROWS_AS(qerl::kernels::cuda::rotary_into_cache(k, k, tables, tables, torch::zeros({1}, bf16.dtype(torch::kLong)),
                                                         cache, cache.narrow(2, 0, 3)),
                  qerl::Error);
}

namespace {

// Where a and b (bf16 of one shape) differ: every difference at most one
// bf16 step of the larger magnitude, and the share of values that differ.
double differing_share(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor x = a.to(torch::kFloat).cpu(), y = b.to(torch::kFloat).cpu();
  const torch::Tensor step = torch::maximum(x.abs(), y.abs()) * std::ldexp(1.0, -7) + 1e-30;
  CHECK((x - y).abs().le(step).all().item<bool>());
  return x.ne(y).to(torch::kFloat).mean().item<double>();
}

// At most 0.1 % of the values (and at least one may) differ by one step.
bool nearly_all_equal(const torch::Tensor& a, const torch::Tensor& b) {
  const double share = differing_share(a, b);
  return share * static_cast<double>(a.numel()) <= std::max(1.0, 1e-3 * static_cast<double>(a.numel()));
}

}  // namespace

TEST_CASE("fused silu(gate) * up == the composed ops, contiguous and strided halves") {
  if (!gpu_visible()) return;
  torch::manual_seed(63);
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{37, 1408}, {2, 5, 96}, {1, 1}, {130, 5632}}) {
    CAPTURE(c10::str(torch::IntArrayRef(shape)));
    const torch::Tensor gate = torch::randn(shape, bf16) * 4, up = torch::randn(shape, bf16);
    const torch::Tensor fused = qerl::kernels::cuda::silu_mul(gate, up);
    CHECK(fused.sizes() == gate.sizes());
    MESSAGE("silu_mul " << c10::str(torch::IntArrayRef(shape)) << ": "
                        << differing_share(fused, torch::silu(gate) * up) * 100 << " % of values differ");
    CHECK(nearly_all_equal(fused, torch::silu(gate) * up));
  }
  // The two halves of one [rows, 2I] output, read in place.
  const torch::Tensor h = torch::randn({29, 2 * 200}, bf16) * 3;
  const torch::Tensor g = h.narrow(1, 0, 200), u = h.narrow(1, 200, 200);
  CHECK(nearly_all_equal(qerl::kernels::cuda::silu_mul(g, u), torch::silu(g) * u));
  CHECK_THROWS_AS(qerl::kernels::cuda::silu_mul(g, u.narrow(1, 0, 100)), qerl::Error);
}

TEST_CASE("fused shared-expert sum == moe + sigmoid(gate) * shared composed") {
  if (!gpu_visible()) return;
  torch::manual_seed(64);
  const auto bf16 = torch::TensorOptions().dtype(torch::kBFloat16).device(torch::kCUDA);
  for (const auto& [tokens, hidden] : std::vector<std::pair<int64_t, int64_t>>{{32, 2048}, {7, 24}, {1, 8}}) {
    CAPTURE(tokens);
    CAPTURE(hidden);
    const torch::Tensor moe = torch::randn({tokens, hidden}, bf16), shared = torch::randn({tokens, hidden}, bf16);
    // The gate as a column of a wider tensor: its rows are 2 values apart.
    const torch::Tensor gate = (torch::randn({tokens, 2}, bf16) * 3).narrow(1, 1, 1);
    const torch::Tensor fused = qerl::kernels::cuda::shared_expert_add(moe, gate, shared);
    CHECK(nearly_all_equal(fused, moe + torch::sigmoid(gate) * shared));
  }
  const torch::Tensor x = torch::randn({4, 16}, bf16);
  CHECK_THROWS_AS(qerl::kernels::cuda::shared_expert_add(x, torch::randn({4, 2}, bf16), x), qerl::Error);
}

TEST_CASE("fused router: softmax + top-k == LibTorch's softmax, topk, gather (and renormalization)") {
  if (!gpu_visible()) return;
  torch::manual_seed(65);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  struct Shape {
    int64_t tokens, experts, top_k;
  };
  for (const Shape& s : std::vector<Shape>{{32, 60, 4}, {37, 8, 2}, {130, 256, 8}, {5, 33, 1}, {1, 128, 32}}) {
    for (const bool normalize : {false, true}) {
      for (const bool bf16_weights : {false, true}) {
        CAPTURE(s.tokens);
        CAPTURE(s.experts);
        CAPTURE(s.top_k);
        CAPTURE(normalize);
        CAPTURE(bf16_weights);
        // Distinct logits per row (multiples of 1/8, exact in bf16): no
        // ties, so the top-k is unique and must match exactly.
        std::vector<torch::Tensor> rows;
        for (int64_t t = 0; t < s.tokens; ++t)
          rows.push_back((torch::randperm(s.experts, torch::kLong).to(torch::kFloat) - s.experts / 2.0) / 8.0);
        const torch::Tensor logits = torch::stack(rows).to(cuda.dtype(torch::kBFloat16));
        const auto [indices, weights] = qerl::kernels::cuda::moe_route(logits, s.top_k, normalize, bf16_weights);
        const torch::Tensor probs = torch::softmax(logits.to(torch::kFloat), -1);
        const torch::Tensor expected_indices = std::get<1>(probs.topk(s.top_k, -1));
        torch::Tensor expected = probs.gather(-1, expected_indices);
        if (normalize) expected = expected / expected.sum(-1, /*keepdim=*/true);
        CHECK(torch::equal(indices, expected_indices));
        CHECK((weights.scalar_type() == (bf16_weights ? torch::kBFloat16 : torch::kFloat)));
        if (bf16_weights) {
          CHECK(differing_share(weights, expected.to(torch::kBFloat16)) <= 0.02);
        } else {
          CHECK(torch::allclose(weights, expected, /*rtol=*/1e-6, /*atol=*/1e-9));
        }
      }
    }
  }
  // Ties: the k-th weight is the k-th largest probability, and among equal
  // probabilities the lower expert ids come first (a stable descending sort).
  const torch::Tensor tied = torch::randint(0, 3, {50, 60}, cuda.dtype(torch::kLong)).to(torch::kBFloat16);
  const auto [indices, weights] = qerl::kernels::cuda::moe_route(tied, 4, false, false);
  const torch::Tensor probs = torch::softmax(tied.to(torch::kFloat), -1);
  CHECK(torch::allclose(weights, std::get<0>(probs.topk(4, -1)), 1e-6, 1e-9));
  CHECK(torch::allclose(probs.gather(-1, indices), weights, 1e-6, 1e-9));
  const torch::Tensor stable = std::get<1>(probs.cpu().sort(/*stable=*/true, /*dim=*/-1, /*descending=*/true));
  CHECK(torch::equal(indices.cpu(), stable.narrow(1, 0, 4)));
  const torch::Tensor sorted = std::get<0>(indices.sort(-1));  // each row's experts distinct
  CHECK(sorted.narrow(1, 1, 3).ne(sorted.narrow(1, 0, 3)).all().item<bool>());
  CHECK_THROWS_AS(qerl::kernels::cuda::moe_route(tied, 61, false, false), qerl::Error);
  // NaN logits: valid, distinct ids and NaN weights (never an id past the experts).
  const auto [nan_indices, nan_weights] =
      qerl::kernels::cuda::moe_route(torch::full({3, 60}, NAN, cuda.dtype(torch::kBFloat16)), 4, true, false);
  CHECK(torch::equal(nan_indices.cpu(), torch::arange(4, torch::kLong).expand({3, 4})));
  CHECK(torch::isnan(nan_weights).all().item<bool>());
}

TEST_CASE("fused sort of assignments by expert == a stable sort, counts and inverse on the CPU") {
  if (!gpu_visible()) return;
  torch::manual_seed(66);
  struct Shape {
    int64_t tokens, top_k, experts;
  };
  // Decode sizes (one kernel), zero tokens, and past sort_max_assignments
  // (LibTorch's ops): both give what the CPU computes independently.
  for (const Shape& s : std::vector<Shape>{{32, 4, 60}, {37, 2, 8}, {1, 1, 1}, {0, 4, 60}, {128, 8, 256}, {5000, 4, 60}}) {
    CAPTURE(s.tokens);
    CAPTURE(s.top_k);
    CAPTURE(s.experts);
    // Every third expert gets nothing; experts [0, experts / 2) more often.
    torch::Tensor ids = torch::randint(0, std::max<int64_t>(1, s.experts / 3), {s.tokens, s.top_k}, torch::kLong) * 3;
    ids = torch::where(torch::rand({s.tokens, s.top_k}).lt(0.5), ids % std::max<int64_t>(1, s.experts / 2), ids);
    ids = ids.clamp_max(s.experts - 1);
    const qerl::kernels::cuda::ExpertRouting r = qerl::kernels::cuda::sort_by_expert(ids.cuda(), s.experts);
    const torch::Tensor flat = ids.reshape({-1});
    const torch::Tensor order = std::get<1>(flat.sort(/*stable=*/true, 0, false));
    const torch::Tensor counts = torch::bincount(flat, {}, s.experts);
    const torch::Tensor offsets = torch::cat({torch::zeros({1}, torch::kLong), counts.cumsum(0)}).to(torch::kInt);
    torch::Tensor position = torch::empty_like(order);
    for (int64_t d = 0; d < order.numel(); ++d) position[order[d].item<int64_t>()] = d;
    CHECK(torch::equal(r.order.cpu(), order));
    CHECK(torch::equal(r.rows.cpu(), torch::floor_divide(order, s.top_k)));
    CHECK(torch::equal(r.offsets.cpu(), offsets));
    CHECK(torch::equal(r.position.cpu(), position));
  }
  // An id outside [0, experts) goes to no expert and points at row 0.
  const torch::Tensor ids = torch::tensor({2, 9, 0, 2, -1, 1}, torch::kLong).view({3, 2});
  const qerl::kernels::cuda::ExpertRouting r = qerl::kernels::cuda::sort_by_expert(ids.cuda(), 3);
  CHECK(torch::equal(r.offsets.cpu(), torch::tensor({0, 1, 2, 4}, torch::kInt)));
  CHECK(torch::equal(r.order.cpu().narrow(0, 0, 4), torch::tensor({2, 5, 0, 3}, torch::kLong)));
  CHECK(r.position.cpu()[1].item<int64_t>() == 0);
  CHECK(r.position.cpu()[4].item<int64_t>() == 0);
}
