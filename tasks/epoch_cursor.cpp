// EpochCursor: the order of epoch e is items permuted by stream e of the
// seed's epoch domain, so any epoch's order can be rebuilt from (seed, e)
// alone — which is what makes restore() exact.
#include "tasks/epoch_cursor.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include "common/error.hpp"
#include "tasks/split.hpp"

namespace qerl::tasks {
namespace {

constexpr uint64_t kEpochDomain = 0x65706f6368ULL;  // "epoch"

}  // namespace

EpochCursor::EpochCursor(std::vector<int64_t> items, uint64_t seed, bool shuffle)
    : items_(std::move(items)), seed_(seed), shuffle_(shuffle) {
  if (items_.empty()) throw Error("EpochCursor: no training items to iterate over");
  order_ = epoch_order(0);
}

std::vector<int64_t> EpochCursor::epoch_order(int64_t epoch) const {
  if (!shuffle_) return items_;
  const std::vector<int64_t> perm =
      seeded_permutation(epoch_size(), seed_ ^ kEpochDomain, static_cast<uint64_t>(epoch));
  std::vector<int64_t> order(items_.size());
  for (size_t i = 0; i < perm.size(); ++i) order[i] = items_[static_cast<size_t>(perm[i])];
  return order;
}

int64_t EpochCursor::next() {
  const int64_t item = order_[static_cast<size_t>(position_.offset)];
  if (++position_.offset == epoch_size()) {
    position_ = {position_.epoch + 1, 0};
    order_ = epoch_order(position_.epoch);
  }
  return item;
}

std::vector<int64_t> EpochCursor::take(int64_t count) {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(std::max<int64_t>(count, 0)));
  for (int64_t i = 0; i < count; ++i) out.push_back(next());
  return out;
}

void EpochCursor::restore(CursorPosition position) {
  if (position.epoch < 0 || position.offset < 0 || position.offset >= epoch_size()) {
    throw Error("EpochCursor: position (epoch " + std::to_string(position.epoch) + ", offset " +
                std::to_string(position.offset) + ") is outside " + std::to_string(epoch_size()) +
                " training items per epoch");
  }
  if (position.epoch != position_.epoch) order_ = epoch_order(position.epoch);
  position_ = position;
}

}  // namespace qerl::tasks
