// Payload types of the test-only text plugin (text_stages_plugin.cpp),
// shared by the plugin and by the test that feeds it: a batch of texts and
// one score per text. Header-only on purpose: the plugin and the test each
// hold a copy of their type info, as an out-of-tree plugin's own payloads
// would, so typed ports are checked across shared objects. Both split by
// rows across consumer replicas and concatenate the parts of producer
// replicas in replica order.
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "runtime/payload.hpp"

namespace qerl::testing_plugins {

// Rows [begin, end) of `rows` for replica `index` of `count` (contiguous, near-equal).
template <class T>
std::vector<T> row_shard(const std::vector<T>& rows, int index, int count) {
  const size_t n = rows.size();
  const size_t begin = n * index / count, end = n * (index + 1) / count;
  return std::vector<T>(rows.begin() + begin, rows.begin() + end);
}

template <class Batch, class T>
std::vector<T> row_gather(const std::vector<runtime::PayloadPtr>& parts, std::vector<T> Batch::*rows) {
  std::vector<T> all;
  for (const auto& part : parts) {
    const auto& p = dynamic_cast<const Batch&>(*part);
    all.insert(all.end(), (p.*rows).begin(), (p.*rows).end());
  }
  return all;
}

// Sampled responses as text.
struct TextBatch : runtime::Payload {
  std::vector<std::string> texts;

  explicit TextBatch(std::vector<std::string> t = {}) : texts(std::move(t)) {}
  runtime::PayloadPtr shard(int index, int count) const override {
    return std::make_shared<TextBatch>(row_shard(texts, index, count));
  }
  runtime::PayloadPtr gather(const std::vector<runtime::PayloadPtr>& parts) const override {
    return std::make_shared<TextBatch>(row_gather(parts, &TextBatch::texts));
  }
};

// One reward per text, in the batch's row order.
struct TextScores : runtime::Payload {
  std::vector<double> scores;

  explicit TextScores(std::vector<double> s = {}) : scores(std::move(s)) {}
  runtime::PayloadPtr shard(int index, int count) const override {
    return std::make_shared<TextScores>(row_shard(scores, index, count));
  }
  runtime::PayloadPtr gather(const std::vector<runtime::PayloadPtr>& parts) const override {
    return std::make_shared<TextScores>(row_gather(parts, &TextScores::scores));
  }
};

}  // namespace qerl::testing_plugins
