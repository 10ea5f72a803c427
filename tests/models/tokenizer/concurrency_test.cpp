// One Tokenizer shared by several threads (the BPE word cache is shared and
// locked) gives every thread the same ids as a fresh single-threaded
// tokenizer, on the oracle's corpus in a different order per thread.
#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <thread>
#include <vector>

#include "models/tokenizer/tokenizer.hpp"
#include "parity_data.hpp"

using qerl::models::TokenId;
using qerl::models::Tokenizer;

TEST_CASE("concurrent encodes through one shared tokenizer equal single-threaded ones") {
  const auto path = qerl::models::testing::oracle_dir() / "qwen2.json";
  std::vector<std::string> texts;
  for (const auto& flavour : qerl::models::testing::parity_data().at("flavours")) {
    if (flavour.at("name") != "qwen2") continue;
    for (const auto& c : flavour.at("cases")) {
      if (!c.at("text").is_null()) texts.push_back(c.at("text"));
    }
  }
  REQUIRE(texts.size() > 300);
  std::vector<std::vector<TokenId>> expected;
  const Tokenizer reference = Tokenizer::from_file(path);
  for (const std::string& t : texts) expected.push_back(reference.encode(t));

  const Tokenizer shared = Tokenizer::from_file(path);
  constexpr int threads = 4;
  std::vector<int> mismatches(threads, 0);
  std::vector<std::thread> workers;
  for (int w = 0; w < threads; ++w) {
    workers.emplace_back([&, w] {
      std::vector<size_t> order(texts.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), std::mt19937(1234 + w));
      for (int round = 0; round < 3; ++round) {
        for (size_t i : order) mismatches[w] += shared.encode(texts[i]) != expected[i];
      }
    });
  }
  for (auto& t : workers) t.join();
  for (int w = 0; w < threads; ++w) CHECK(mismatches[w] == 0);
}
