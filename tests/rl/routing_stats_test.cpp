// Router-replay diagnostics: the top-k set mismatch ignores slot order and
// invalid positions and equals a loop over sets on random routes; the load
// imbalance is 0 for an even load, E - 1 when one expert takes every slot,
// and equals a counting loop on random routes.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <vector>

#include <torch/types.h>

#include "common/error.hpp"
#include "rl/routing_stats.hpp"

using namespace qerl::rl;

TEST_CASE("routing_mismatch_per_layer: sets, not slot order; invalid positions ignored (by hand)") {
  // B = 1, S = 3, L = 2, K = 2.
  auto a = torch::tensor({0, 1, 2, 3, /**/ 4, 5, 6, 7, /**/ 1, 2, 3, 4}, torch::kShort).reshape({1, 3, 2, 2});
  auto b = torch::tensor({1, 0, 2, 4, /**/ 4, 5, 7, 6, /**/ 0, 0, 0, 0}, torch::kLong).reshape({1, 3, 2, 2});
  // Position 0: layer 0 same set {0,1}; layer 1 {2,3} vs {2,4} differs.
  // Position 1: both layers the same set. Position 2: differs everywhere, but invalid.
  const auto valid = torch::tensor({true, true, false}).reshape({1, 3});
  const auto rate = routing_mismatch_per_layer(a, b, valid);
  REQUIRE(rate.size(0) == 2);
  CHECK(rate[0].item<float>() == doctest::Approx(0.0));
  CHECK(rate[1].item<float>() == doctest::Approx(0.5));
  CHECK(routing_mismatch_per_layer(a, b, torch::zeros({1, 3}, torch::kBool)).sum().item<float>() == 0);
  CHECK_THROWS_AS(routing_mismatch_per_layer(a, b.slice(1, 0, 2), valid), qerl::Error);
}

TEST_CASE("routing_mismatch_per_layer equals a loop over top-k sets on random routes") {
  torch::manual_seed(5);
  const int64_t B = 3, S = 7, L = 4, K = 2, E = 4;  // few experts: many equal sets by chance
  const auto a = torch::randint(0, E, {B, S, L, K}, torch::kLong);
  const auto b = torch::randint(0, E, {B, S, L, K}, torch::kLong);
  const auto valid = torch::rand({B, S}) > 0.3;
  const auto got = routing_mismatch_per_layer(a, b, valid);
  std::vector<double> differs(L, 0);
  double count = 0;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t s = 0; s < S; ++s) {
      if (!valid[i][s].item<bool>()) continue;
      ++count;
      for (int64_t l = 0; l < L; ++l) {
        std::multiset<int64_t> sa, sb;
        for (int64_t k = 0; k < K; ++k) {
          sa.insert(a[i][s][l][k].item<int64_t>());
          sb.insert(b[i][s][l][k].item<int64_t>());
        }
        differs[l] += sa != sb ? 1 : 0;
      }
    }
  REQUIRE(count > 0);
  for (int64_t l = 0; l < L; ++l) CHECK(got[l].item<float>() == doctest::Approx(differs[l] / count));
  CHECK(got.sum().item<float>() > 0);  // random routes over 4 experts do differ somewhere
}

TEST_CASE("expert_load_imbalance: even load 0, one expert everywhere E - 1, random equals counting") {
  const int64_t E = 4;
  // Layer 0: slots over 2 positions use experts {0,1},{2,3}: even. Layer 1: expert 2 in every slot.
  const auto even = torch::tensor({0, 1, 2, 2, /**/ 2, 3, 2, 2}, torch::kShort).reshape({1, 2, 2, 2});
  const auto all = torch::ones({1, 2}, torch::kBool);
  const auto got = expert_load_imbalance(even, all, E);
  CHECK(got[0].item<float>() == doctest::Approx(0.0));
  CHECK(got[1].item<float>() == doctest::Approx(E - 1.0));
  CHECK_THROWS_AS(expert_load_imbalance(even + 10, all, E), qerl::Error);

  torch::manual_seed(9);
  const int64_t B = 2, S = 9, L = 3, K = 2, E8 = 8;
  const auto routes = torch::randint(0, E8, {B, S, L, K}, torch::kLong);
  const auto valid = torch::rand({B, S}) > 0.25;
  const auto random = expert_load_imbalance(routes, valid, E8);
  for (int64_t l = 0; l < L; ++l) {
    std::vector<double> load(E8, 0);
    double total = 0;
    for (int64_t i = 0; i < B; ++i)
      for (int64_t s = 0; s < S; ++s)
        if (valid[i][s].item<bool>())
          for (int64_t k = 0; k < K; ++k) {
            ++load[routes[i][s][l][k].item<int64_t>()];
            ++total;
          }
    CHECK(random[l].item<float>() == doctest::Approx(*std::max_element(load.begin(), load.end()) * E8 / total - 1));
  }
}
