// DeviceLease: a mutex + condition variable over the set of busy slots and
// the queue of waiting requests.
#include "runtime/device_lease.hpp"

#include <algorithm>

namespace qerl::runtime {
namespace {

bool overlaps(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  return std::any_of(a.begin(), a.end(),
                     [&](int64_t s) { return std::find(b.begin(), b.end(), s) != b.end(); });
}

}  // namespace

bool DeviceLease::grantable(const Request& request) const {
  for (int64_t s : request.slots)
    if (busy_.count(s)) return false;
  for (const Request& earlier : waiting_) {
    if (earlier.ticket == request.ticket) break;
    if (overlaps(earlier.slots, request.slots)) return false;
  }
  return true;
}

bool DeviceLease::acquire(const std::vector<int64_t>& slots) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (closed_) return false;
  if (slots.empty()) return true;
  auto me = waiting_.insert(waiting_.end(), Request{next_ticket_++, slots});
  changed_.wait(lock, [&] { return closed_ || grantable(*me); });
  waiting_.erase(me);
  if (closed_) {
    changed_.notify_all();
    return false;
  }
  busy_.insert(slots.begin(), slots.end());
  return true;
}

void DeviceLease::release(const std::vector<int64_t>& slots) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (int64_t s : slots) busy_.erase(s);
  }
  changed_.notify_all();
}

void DeviceLease::close() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

size_t DeviceLease::waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return waiting_.size();
}

}  // namespace qerl::runtime
