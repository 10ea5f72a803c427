// LossAgg parsing and the three aggregation modes. Everything stays on the
// tensors' device: the counts are 0-dim tensors, clamped to >= 1 so that an
// empty batch divides 0 by 1 instead of 0 by 0.
#include "rl/loss_agg.hpp"

#include "rl/detail/common.hpp"

namespace qerl::rl {
namespace {

// mask: [...] bool or floating -> bool of the same shape.
torch::Tensor as_bool_mask(const torch::Tensor& mask) { return mask.scalar_type() == torch::kBool ? mask : mask != 0; }

// values, mask: [...] -> float32 values with masked-out entries set to 0.
torch::Tensor masked_values(const torch::Tensor& values, const torch::Tensor& mask) {
  const auto v = values.to(torch::kFloat);
  return torch::where(as_bool_mask(mask), v, torch::zeros_like(v));
}

// count: 0-dim float32 (this batch's own count); normalizer as in aggregate().
torch::Tensor divide(const torch::Tensor& numerator, const torch::Tensor& count, double normalizer) {
  if (normalizer > 0) return numerator / normalizer;
  return numerator / count.clamp_min(1);
}

}  // namespace

torch::Tensor aggregate(const torch::Tensor& values, const torch::Tensor& mask, LossAgg agg, double normalizer) {
  const std::string where = std::string("aggregate(") + enum_name(agg) + ")";
  detail::require_dim(values, 2, where, "values");
  detail::require_same_shape(values, mask, where, "values", "mask");
  detail::require_floating(values, where, "values");
  detail::require(normalizer >= 0, where, "normalizer must be >= 0, got " + std::to_string(normalizer));

  const auto v = masked_values(values, mask);           // [B, S] float32
  const auto m = as_bool_mask(mask).to(torch::kFloat);  // [B, S] float32
  if (agg == LossAgg::token_mean) return divide(v.sum(), m.sum(), normalizer);

  const auto row_tokens = m.sum(-1);  // [B]
  const auto row_sum = v.sum(-1);     // [B]
  const auto rows = (row_tokens > 0).sum().to(torch::kFloat);
  // Fully masked rows have row_sum 0, so they add nothing to either numerator.
  const auto per_row = agg == LossAgg::seq_mean_token_mean ? row_sum / row_tokens.clamp_min(1) : row_sum;
  return divide(per_row.sum(), rows, normalizer);
}

torch::Tensor masked_mean(const torch::Tensor& x, const torch::Tensor& mask) {
  detail::require_same_shape(x, mask, "masked_mean", "x", "mask");
  const auto m = as_bool_mask(mask);
  return masked_values(x, m).sum() / m.sum().to(torch::kFloat).clamp_min(1);
}

}  // namespace qerl::rl
