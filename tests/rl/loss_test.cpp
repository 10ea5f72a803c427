// The GRPO objective: group advantages, loss aggregation, the clipped policy
// loss and the KL estimators match hand-computed values (arithmetic in the
// comments) and straightforward loop references on seeded random inputs;
// padding never matters; micro-batch losses with the mini-batch normalizer
// sum to the mini-batch loss.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <vector>

#include <torch/types.h>
#include <torch/utils.h>

#include "common/error.hpp"
#include "rl/advantages.hpp"
#include "rl/kl.hpp"
#include "rl/loss_agg.hpp"
#include "rl/policy_loss.hpp"

using namespace qerl::rl;

namespace {

using Rows = std::vector<std::vector<double>>;

std::vector<double> rows_to_flat(const Rows& rows) {
  std::vector<double> flat;
  for (const auto& row : rows) flat.insert(flat.end(), row.begin(), row.end());
  return flat;
}

// Rows -> [rows, columns] float64 / float32 tensor.
torch::Tensor f64(const Rows& rows) {
  return torch::tensor(rows_to_flat(rows))
      .reshape({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows.front().size())});
}

torch::Tensor f32(const Rows& rows) { return f64(rows).to(torch::kFloat); }

Rows rows_of(const torch::Tensor& t) {
  const auto d = t.detach().to(torch::kDouble).contiguous();
  const auto a = d.accessor<double, 2>();
  Rows rows(d.size(0), std::vector<double>(d.size(1)));
  for (int64_t i = 0; i < d.size(0); ++i)
    for (int64_t j = 0; j < d.size(1); ++j) rows[i][j] = a[i][j];
  return rows;
}

std::vector<double> vec_of(const torch::Tensor& t) {
  const auto d = t.detach().to(torch::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  REQUIRE(a.sizes() == b.sizes());
  return (a.detach().to(torch::kDouble) - b.detach().to(torch::kDouble)).abs().max().item<double>();
}

double scalar(const torch::Tensor& t) {
  REQUIRE(t.dim() == 0);
  return t.item<double>();
}

// [B, S] float32 mask whose row i has lengths[i] leading ones.
torch::Tensor length_mask(const std::vector<int64_t>& lengths, int64_t seq) {
  auto m = torch::zeros({static_cast<int64_t>(lengths.size()), seq});
  for (size_t i = 0; i < lengths.size(); ++i) m[static_cast<int64_t>(i)].slice(0, 0, lengths[i]).fill_(1);
  return m;
}

std::vector<int64_t> random_lengths(int64_t rows, int64_t seq) {
  const auto t = torch::randint(0, seq + 1, {rows}, torch::kLong);
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + rows);
}

// Loop reference of group_advantages, in double.
std::vector<double> reference_advantages(const std::vector<double>& r, const std::vector<int64_t>& ids,
                                         bool norm_by_std, double eps) {
  std::vector<double> out(r.size());
  for (size_t i = 0; i < r.size(); ++i) {
    std::vector<double> group;
    for (size_t j = 0; j < r.size(); ++j)
      if (ids[j] == ids[i]) group.push_back(r[j]);
    if (group.size() < 2) continue;  // out[i] stays 0
    double mean = 0, ss = 0;
    for (double x : group) mean += x / group.size();
    for (double x : group) ss += (x - mean) * (x - mean);
    const double std_dev = std::sqrt(ss / (group.size() - 1));
    out[i] = norm_by_std ? (r[i] - mean) / (std_dev + eps) : r[i] - mean;
  }
  return out;
}

// Loop reference of aggregate() for one mode, own counts.
double reference_aggregate(const Rows& v, const Rows& m, LossAgg agg) {
  double total = 0, tokens = 0, rows = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    double row_sum = 0, row_tokens = 0;
    for (size_t j = 0; j < v[i].size(); ++j)
      if (m[i][j] != 0) row_sum += v[i][j], row_tokens += 1;
    tokens += row_tokens;
    if (row_tokens == 0) continue;
    rows += 1;
    total += agg == LossAgg::seq_mean_token_mean ? row_sum / row_tokens : row_sum;
  }
  const double count = agg == LossAgg::token_mean ? tokens : rows;
  return count == 0 ? 0 : total / count;
}

const std::vector<LossAgg> kAllAggs{LossAgg::token_mean, LossAgg::seq_mean_token_mean, LossAgg::seq_mean_token_sum};

}  // namespace

// ---------------------------------------------------------------- advantages

TEST_CASE("group_advantages: GRPO and Dr.GRPO by hand, unsorted ids, singleton group") {
  // ids 7: rewards {1, 0, 2}: mean 1, deviations {0, -1, 1}, unbiased var (0+1+1)/2 = 1, std 1.
  // ids 3: rewards {4, 2}:    mean 3, deviations {1, -1},    unbiased var (1+1)/1 = 2, std sqrt(2).
  // id 42: a single response -> 0.
  const auto rewards = torch::tensor({1.f, 4.f, 0.f, 2.f, 2.f, 5.f});
  const auto ids = torch::tensor({7, 3, 7, 3, 7, 42}, torch::kLong);
  const double eps = 1e-6;
  const double s2 = std::sqrt(2.0);
  const auto grpo = group_advantages(rewards, ids, /*norm_by_std=*/true, eps);
  CHECK((grpo.scalar_type() == torch::kFloat));
  // The biased std would be 1 for group 3, giving +-1 instead of +-1/sqrt(2).
  const auto expected = torch::tensor({0.0, 1 / (s2 + eps), -1 / (1 + eps), -1 / (s2 + eps), 1 / (1 + eps), 0.0});
  CHECK(max_abs_diff(grpo, expected) < 1e-6);

  const auto dr = group_advantages(rewards, ids, /*norm_by_std=*/false);
  // r - mean: {1-1, 4-3, 0-1, 2-3, 2-1, 5-5}
  CHECK(max_abs_diff(dr, torch::tensor({0.f, 1.f, -1.f, -1.f, 1.f, 0.f})) < 1e-6);
}

TEST_CASE("group_outcomes: groups with no / every response correct, by hand") {
  // id 4: {0, 0, 0} -> solved by none; id 1: {1, 1} -> by all; id 9: {1, 0, 1} -> mixed;
  // id 2: {0}, a single wrong response -> none.
  const std::vector<int64_t> ids{4, 1, 9, 4, 9, 1, 4, 9, 2};
  const std::vector<uint8_t> correct{0, 1, 1, 0, 0, 1, 0, 1, 0};
  const auto outcomes = group_outcomes(ids, correct);
  CHECK(outcomes.solve_none == doctest::Approx(2.0 / 4));
  CHECK(outcomes.solve_all == doctest::Approx(1.0 / 4));
  CHECK(group_outcomes({}, {}).solve_none == 0);
  CHECK_THROWS_WITH_AS(group_outcomes({1, 2}, {1}), "group_outcomes: 2 group ids for 1 correctness flags",
                       qerl::Error);
}

TEST_CASE("group_advantages: a group of equal rewards gets 0, not NaN") {
  const auto rewards = torch::tensor({3.f, 3.f, 3.f, 1.f, 0.f});
  const auto ids = torch::tensor({5, 5, 5, 9, 9}, torch::kLong);
  const auto a = group_advantages(rewards, ids, /*norm_by_std=*/true);
  CHECK(torch::isfinite(a).all().item<bool>());
  CHECK(max_abs_diff(a.slice(0, 0, 3), torch::zeros({3})) == 0);
  // Group 9: {1, 0}: mean 0.5, std sqrt(0.5) -> +-0.5 / 0.70711 = +-0.70711.
  CHECK(scalar(a[3]) == doctest::Approx(0.5 / std::sqrt(0.5)).epsilon(1e-5));
}

TEST_CASE("group_advantages matches a loop reference on random unsorted, non-contiguous ids") {
  torch::manual_seed(11);
  // 60 responses in up to 10 groups with ids spaced 37 apart (negative ones too), plus two singletons.
  auto ids =
      torch::cat({torch::randint(0, 10, {60}, torch::kLong) * 37 - 100, torch::tensor({9999, -5000}, torch::kLong)});
  const auto order = torch::randperm(ids.size(0), torch::kLong);
  ids = ids.index({order});
  const auto rewards = torch::randn({ids.size(0)}) * 2 + 0.5;
  const auto r = vec_of(rewards);
  const auto id_vec = std::vector<int64_t>(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
  for (bool norm_by_std : {true, false}) {
    CAPTURE(norm_by_std);
    const auto got = group_advantages(rewards, ids, norm_by_std);
    const auto want = torch::tensor(reference_advantages(r, id_vec, norm_by_std, 1e-6));
    CHECK(max_abs_diff(got, want) < 1e-5);
  }
}

TEST_CASE("group_advantages rejects mismatched inputs with qerl::Error") {
  CHECK_THROWS_AS(group_advantages(torch::ones({4}), torch::zeros({3}, torch::kLong), true), qerl::Error);
  CHECK_THROWS_AS(group_advantages(torch::ones({4}), torch::zeros({4}, torch::kInt), true), qerl::Error);
  CHECK_THROWS_AS(group_advantages(torch::ones({2, 2}), torch::zeros({2, 2}, torch::kLong), true), qerl::Error);
}

// --------------------------------------------------------------- aggregation

TEST_CASE("aggregate: token-mean vs seq-mean-token-mean vs seq-mean-token-sum by hand") {
  // Rows of 4, 2 and 1 response tokens, and a fully padded row; 99 marks padding.
  const auto values = f32({{1, 2, 3, 4}, {10, 20, 99, 99}, {6, 99, 99, 99}, {99, 99, 99, 99}});
  const auto mask = length_mask({4, 2, 1, 0}, 4);
  // token-mean: (1+2+3+4 + 10+20 + 6) / 7 = 46 / 7
  CHECK(scalar(aggregate(values, mask, LossAgg::token_mean)) == doctest::Approx(46.0 / 7));
  // seq-mean-token-mean: row means 2.5, 15, 6 over the 3 non-empty rows: 23.5 / 3
  CHECK(scalar(aggregate(values, mask, LossAgg::seq_mean_token_mean)) == doctest::Approx(23.5 / 3));
  // seq-mean-token-sum: row sums 10, 30, 6 over 3 rows: 46 / 3
  CHECK(scalar(aggregate(values, mask, LossAgg::seq_mean_token_sum)) == doctest::Approx(46.0 / 3));
  // A bool mask means the same.
  CHECK(scalar(aggregate(values, mask.to(torch::kBool), LossAgg::token_mean)) == doctest::Approx(46.0 / 7));
  CHECK((aggregate(values, mask, LossAgg::token_mean).scalar_type() == torch::kFloat));
}

TEST_CASE("aggregate matches a loop reference on random rows of different lengths") {
  torch::manual_seed(12);
  const auto values = torch::randn({7, 9});
  const auto lengths = random_lengths(7, 9);
  const auto mask = length_mask(lengths, 9);
  for (LossAgg agg : kAllAggs) {
    CAPTURE(qerl::enum_name(agg));
    CHECK(scalar(aggregate(values, mask, agg)) ==
          doctest::Approx(reference_aggregate(rows_of(values), rows_of(mask), agg)).epsilon(1e-5));
  }
}

TEST_CASE("aggregate: padding never matters, even inf/NaN, nor its gradient") {
  torch::manual_seed(13);
  const auto mask = length_mask({5, 2, 0, 3}, 6);
  const auto base = torch::randn({4, 6});
  auto poisoned = base.clone();
  poisoned.masked_fill_(mask == 0, std::numeric_limits<float>::quiet_NaN());
  poisoned[0][5] = std::numeric_limits<float>::infinity();
  for (LossAgg agg : kAllAggs) {
    CAPTURE(qerl::enum_name(agg));
    auto x = poisoned.clone().requires_grad_(true);
    const auto loss = aggregate(x, mask, agg);
    loss.backward();
    CHECK(scalar(loss) == doctest::Approx(scalar(aggregate(base, mask, agg))));
    CHECK(torch::isfinite(x.grad()).all().item<bool>());
    CHECK(x.grad().masked_select(mask == 0).abs().sum().item<double>() == 0);
  }
}

TEST_CASE("aggregate: a count of 0 gives 0, not NaN") {
  const auto values = torch::randn({3, 4});
  const auto mask = torch::zeros({3, 4});
  for (LossAgg agg : kAllAggs) {
    CAPTURE(qerl::enum_name(agg));
    CHECK(scalar(aggregate(values, mask, agg)) == 0);
    CHECK(scalar(aggregate(values, mask, agg, /*normalizer=*/5)) == 0);
  }
  CHECK(scalar(masked_mean(values, mask)) == 0);
}

TEST_CASE("aggregate: two micro-batches with the mini-batch normalizer sum to the mini-batch loss and gradient") {
  torch::manual_seed(14);
  // Rows of very different lengths (one empty) so that per-half counts differ from the whole's.
  const auto values = torch::randn({8, 10});
  const auto mask = length_mask({10, 1, 7, 0, 3, 10, 2, 5}, 10);
  for (LossAgg agg : kAllAggs) {
    CAPTURE(qerl::enum_name(agg));
    // Whole mini-batch normalizer: 38 tokens, or 7 non-empty rows.
    const double normalizer =
        agg == LossAgg::token_mean ? mask.sum().item<double>() : (mask.sum(1) > 0).sum().item<double>();
    CHECK(normalizer == (agg == LossAgg::token_mean ? 38 : 7));

    auto full_x = values.clone().requires_grad_(true);
    const auto full = aggregate(full_x, mask, agg);
    full.backward();

    auto micro_x = values.clone().requires_grad_(true);
    const auto first = aggregate(micro_x.slice(0, 0, 4), mask.slice(0, 0, 4), agg, normalizer);
    const auto second = aggregate(micro_x.slice(0, 4), mask.slice(0, 4), agg, normalizer);
    (first + second).backward();

    CHECK(scalar(first + second) == doctest::Approx(scalar(full)).epsilon(1e-6));
    CHECK(max_abs_diff(micro_x.grad(), full_x.grad()) < 1e-7);
    // Without the normalizer each half divides by its own count and the sum is not the whole's loss.
    const auto own = aggregate(values.slice(0, 0, 4), mask.slice(0, 0, 4), agg) +
                     aggregate(values.slice(0, 4), mask.slice(0, 4), agg);
    CHECK(std::abs(scalar(own) - scalar(full)) > 1e-3);
  }
}

TEST_CASE("masked_mean by hand and the loss_agg names") {
  // (1 + 3 + 4) / 3 entries
  CHECK(scalar(masked_mean(f32({{1, 2}, {3, 4}}), f32({{1, 0}, {1, 1}}))) == doctest::Approx(8.0 / 3));
  CHECK(qerl::parse_enum<LossAgg>("token-mean") == LossAgg::token_mean);
  CHECK(qerl::parse_enum<LossAgg>("seq-mean-token-mean") == LossAgg::seq_mean_token_mean);
  CHECK(qerl::parse_enum<LossAgg>("seq-mean-token-sum") == LossAgg::seq_mean_token_sum);
  CHECK_FALSE(qerl::parse_enum<LossAgg>("token_mean").has_value());
  CHECK(std::string(qerl::enum_name(LossAgg::seq_mean_token_sum)) == "seq-mean-token-sum");
}

// ------------------------------------------------------------- policy loss

TEST_CASE("clipped_policy_loss by hand: clipped above with A>0, below with A<0, unclipped inside") {
  // clip_low 0.2, clip_high 0.28: ratios are clamped to [0.8, 1.28].
  // Row 0, A = +1: ratios 1.5 (clipped: max(-1.5, -1.28) = -1.28), 1.1 (inside: -1.1),
  //                0.5 (below with A>0: max(-0.5, -0.8) = -0.5, not clipped).
  // Row 1, A = -2: ratios 0.5 (clipped: max(1.0, 1.6) = 1.6), 0.9 (inside: 1.8), then a padded token.
  const auto old = f32({{-1.0, -2.0, -0.5}, {-3.0, -0.7, -1.2}});
  const auto log_ratio = f32({{std::log(1.5), std::log(1.1), std::log(0.5)}, {std::log(0.5), std::log(0.9), 0}});
  const auto mask = f32({{1, 1, 1}, {1, 1, 0}});
  const auto advantages = torch::tensor({1.f, -2.f});
  const double clip_low = 0.2, clip_high = 0.28;

  for (double padded_logprob : {-3.0, 50.0}) {
    CAPTURE(padded_logprob);
    auto logprobs = (old + log_ratio).clone();
    logprobs[1][2] = padded_logprob;
    logprobs.requires_grad_(true);
    const auto terms = clipped_policy_loss(logprobs, old, advantages, mask, clip_low, clip_high, LossAgg::token_mean);
    // token-mean: (-1.28 - 1.1 - 0.5 + 1.6 + 1.8) / 5 = 0.52 / 5
    CHECK(scalar(terms.loss) == doctest::Approx(0.104).epsilon(1e-5));
    // 2 of 5 tokens clipped.
    CHECK(scalar(terms.clipfrac) == doctest::Approx(0.4));
    // mean(old - logprobs) = -(ln 1.5 + ln 1.1 + 2 ln 0.5 + ln 0.9) / 5 = 0.9908793 / 5
    CHECK(scalar(terms.approx_kl) == doctest::Approx(0.19817586).epsilon(1e-5));
    CHECK_FALSE(terms.clipfrac.requires_grad());
    CHECK_FALSE(terms.approx_kl.requires_grad());
    terms.loss.backward();
    // d pg / d logprob = -A * ratio where the unclipped term is active, 0 where clipped; / 5 tokens.
    const auto expected_grad = f32({{0, -1.1 / 5, -0.5 / 5}, {0, 2 * 0.9 / 5, 0}});
    CHECK(max_abs_diff(logprobs.grad(), expected_grad) < 1e-6);
  }

  // [B, S] advantages are the same as [B] broadcast.
  const auto logprobs = old + log_ratio;
  const auto per_token = clipped_policy_loss(logprobs, old, advantages.unsqueeze(1).expand({2, 3}), mask, clip_low,
                                             clip_high, LossAgg::token_mean);
  CHECK(scalar(per_token.loss) == doctest::Approx(0.104).epsilon(1e-5));
}

TEST_CASE("clipped_policy_loss matches a loop reference (loss, clipfrac, approx_kl, gradient)") {
  torch::manual_seed(15);
  const int64_t batch = 6, seq = 11;
  const double clip_low = 0.2, clip_high = 0.28;
  const auto old = -torch::rand({batch, seq}) * 4;
  const auto base_logprobs = old + torch::randn({batch, seq}) * 0.3;
  const auto advantages = torch::randn({batch});
  const auto mask = length_mask(random_lengths(batch, seq), seq);

  const auto lp = rows_of(base_logprobs), o = rows_of(old), m = rows_of(mask);
  const auto a = vec_of(advantages);
  Rows pg(batch, std::vector<double>(seq)),
      dpg(batch, std::vector<double>(seq));  // per-token loss and d loss / d logprob
  double clipped = 0, kl = 0, tokens = 0;
  for (int64_t i = 0; i < batch; ++i) {
    for (int64_t j = 0; j < seq; ++j) {
      const double ratio = std::exp(lp[i][j] - o[i][j]);
      const double unclipped_term = -a[i] * ratio;
      const double clipped_term = -a[i] * std::min(std::max(ratio, 1 - clip_low), 1 + clip_high);
      const bool clips = clipped_term > unclipped_term;
      pg[i][j] = clips ? clipped_term : unclipped_term;
      dpg[i][j] = clips ? 0 : -a[i] * ratio;
      if (m[i][j] == 0) continue;
      clipped += clips, kl += o[i][j] - lp[i][j], tokens += 1;
    }
  }
  REQUIRE(clipped > 0);  // the inputs exercise both branches
  REQUIRE(clipped < tokens);

  for (LossAgg agg : kAllAggs) {
    CAPTURE(qerl::enum_name(agg));
    auto logprobs = base_logprobs.clone().requires_grad_(true);
    const auto terms = clipped_policy_loss(logprobs, old, advantages, mask, clip_low, clip_high, agg);
    terms.loss.backward();
    CHECK(scalar(terms.loss) == doctest::Approx(reference_aggregate(pg, m, agg)).epsilon(1e-5));
    CHECK(scalar(terms.clipfrac) == doctest::Approx(clipped / tokens));
    CHECK(scalar(terms.approx_kl) == doctest::Approx(kl / tokens).epsilon(1e-5));
    if (agg == LossAgg::token_mean) {
      Rows want(batch, std::vector<double>(seq));
      for (int64_t i = 0; i < batch; ++i)
        for (int64_t j = 0; j < seq; ++j) want[i][j] = m[i][j] * dpg[i][j] / tokens;
      CHECK(max_abs_diff(logprobs.grad(), f32(want)) < 1e-6);
    }
  }
}

// ---------------------------------------------------------------------- KL

TEST_CASE("kl_penalty k1 and k3 by hand") {
  const auto logprobs = f32({{-1.0, -2.0}});
  const auto ref = f32({{-1.5, -1.0}});
  // k1 = logprobs - ref = {0.5, -1.0}
  CHECK(max_abs_diff(kl_penalty(logprobs, ref, KlEstimator::k1), f32({{0.5, -1.0}})) < 1e-7);
  // k3: r = ref - logprobs = {-0.5, 1.0}; e^-0.5 + 0.5 - 1 = 0.10653066; e^1 - 1 - 1 = 0.71828183
  CHECK(max_abs_diff(kl_penalty(logprobs, ref, KlEstimator::k3), f32({{0.10653066, 0.71828183}})) < 1e-6);
  CHECK(qerl::parse_enum<KlEstimator>("k1") == KlEstimator::k1);
  CHECK(qerl::parse_enum<KlEstimator>("k3") == KlEstimator::k3);
  CHECK_FALSE(qerl::parse_enum<KlEstimator>("low_var_kl").has_value());
}

TEST_CASE("kl_penalty matches a double-precision reference; k3 >= 0 and accurate for tiny r; gradient 1 - e^r") {
  torch::manual_seed(16);
  const auto ref = -torch::rand({5, 40}) * 5;
  // Differences from large to tiny (down to 1e-7, where exp(r) - r - 1 cancels in float32).
  const auto scale = torch::pow(10.0, -torch::randint(0, 8, {5, 40}).to(torch::kFloat));
  auto logprobs = (ref + torch::randn({5, 40}) * scale).requires_grad_(true);
  const auto k3 = kl_penalty(logprobs, ref, KlEstimator::k3);
  CHECK(k3.min().item<double>() >= 0);
  k3.sum().backward();

  const auto lp = rows_of(logprobs), rf = rows_of(ref);
  Rows want_k1(5, std::vector<double>(40)), want_k3 = want_k1, k3_tolerance = want_k1, want_grad = want_k1;
  for (int i = 0; i < 5; ++i) {
    for (int j = 0; j < 40; ++j) {
      const double r = static_cast<float>(rf[i][j] - lp[i][j]);  // the float32 difference the function sees
      want_k1[i][j] = -r;
      want_k3[i][j] = std::expm1(r) - r;
      // A few float32 ulps of expm1(r): ~1e-11 at r = 1e-4, where exp(r) - r - 1 in float32 is off by ~6e-8.
      k3_tolerance[i][j] = 1e-6 * std::abs(std::expm1(r)) + 1e-30;
      want_grad[i][j] = 1 - std::exp(r);
    }
  }
  CHECK(max_abs_diff(kl_penalty(logprobs, ref, KlEstimator::k1), f32(want_k1)) < 1e-6);
  const auto k3_error = (k3.detach().to(torch::kDouble) - f64(want_k3)).abs();
  CHECK((k3_error / f64(k3_tolerance)).max().item<double>() <= 1);
  CHECK(max_abs_diff(logprobs.grad(), f32(want_grad)) < 1e-5);

  // Far-off log-ratios are clamped to 20: finite, e^-20 + 20 - 1.
  const auto far = kl_penalty(f32({{0.0}}), f32({{-100.0}}), KlEstimator::k3);
  CHECK(scalar(far[0][0]) == doctest::Approx(19.0).epsilon(1e-6));
}
