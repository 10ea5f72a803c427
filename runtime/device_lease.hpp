// DeviceLease: how colocated stages time-slice the logical GPU slots they
// share. A stage replica acquires all of its slots at once (so two replicas
// wanting overlapping sets cannot deadlock), holds them for one setup() or
// run(), and releases them. Requests are served first come, first served
// per slot: a later request never overtakes an earlier one it overlaps.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <list>
#include <mutex>
#include <set>
#include <vector>

namespace qerl::runtime {

class DeviceLease {
 public:
  // Blocks until every slot is free and no earlier waiting request shares
  // one; then holds them all. An empty slot list returns at once. Returns
  // false (holding nothing) once the lease is closed.
  bool acquire(const std::vector<int64_t>& slots);
  void release(const std::vector<int64_t>& slots);
  // Wakes every waiter; acquire() fails from now on (the run is stopping).
  void close();
  // Requests currently waiting (diagnostics and tests).
  size_t waiting() const;

 private:
  struct Request {
    uint64_t ticket;
    std::vector<int64_t> slots;
  };
  bool grantable(const Request& request) const;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::set<int64_t> busy_;
  std::list<Request> waiting_;  // in arrival order
  uint64_t next_ticket_ = 0;
  bool closed_ = false;
};

// Holds a replica's slots for one scope.
class LeaseGuard {
 public:
  LeaseGuard(DeviceLease& lease, std::vector<int64_t> slots)
      : lease_(lease), slots_(std::move(slots)), held_(lease_.acquire(slots_)) {}
  ~LeaseGuard() {
    if (held_) lease_.release(slots_);
  }
  LeaseGuard(const LeaseGuard&) = delete;
  LeaseGuard& operator=(const LeaseGuard&) = delete;
  bool held() const { return held_; }

 private:
  DeviceLease& lease_;
  std::vector<int64_t> slots_;
  bool held_;
};

}  // namespace qerl::runtime
