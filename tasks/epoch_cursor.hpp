// Epoch iteration over the training indices: epoch e visits every item once,
// in a seeded shuffle of its own (or in the given order when shuffle is off).
// The position (epoch, offset) is all the state there is, so a checkpoint
// stores two integers and restore() continues the exact same sequence.
#pragma once

#include <cstdint>
#include <vector>

namespace qerl::tasks {

struct CursorPosition {
  int64_t epoch = 0;
  int64_t offset = 0;  // items of `epoch` already handed out, < epoch size
};

inline bool operator==(const CursorPosition& a, const CursorPosition& b) {
  return a.epoch == b.epoch && a.offset == b.offset;
}

class EpochCursor {
 public:
  // Throws qerl::Error if `items` is empty.
  EpochCursor(std::vector<int64_t> items, uint64_t seed, bool shuffle);

  int64_t next();                            // the next item; crosses epochs
  std::vector<int64_t> take(int64_t count);  // `count` calls of next()

  CursorPosition position() const { return position_; }
  // Throws qerl::Error if epoch < 0 or offset is outside [0, epoch_size()).
  void restore(CursorPosition position);

  int64_t epoch_size() const { return static_cast<int64_t>(items_.size()); }
  // The full visiting order of `epoch` (what next() yields during it).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  std::vector<int64_t> items_;
  uint64_t seed_;
  bool shuffle_;
  CursorPosition position_;
  std::vector<int64_t> order_;  // epoch_order(position_.epoch)
};

}  // namespace qerl::tasks
