// DeviceLease: a replica gets all its slots at once, requests are served in
// arrival order per slot (a later request does not overtake an earlier
// overlapping one even when its own slots are free), and close() releases
// every waiter with `false`.
#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <mutex>
#include <thread>

#include "runtime/device_lease.hpp"

using namespace qerl::runtime;
using namespace std::chrono_literals;

TEST_CASE("overlapping requests are served first come, first served; disjoint ones at once") {
  DeviceLease lease;
  REQUIRE(lease.acquire({0}));  // A holds slot 0
  std::mutex order_mutex;
  std::vector<std::string> order;
  auto record = [&](const std::string& who) {
    std::lock_guard<std::mutex> lock(order_mutex);
    order.push_back(who);
  };
  // B wants slots {0, 1}: waits for A.
  auto b = std::async(std::launch::async, [&] {
    REQUIRE(lease.acquire({0, 1}));
    record("B");
    lease.release({0, 1});
  });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (lease.waiting() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  REQUIRE(lease.waiting() == 1);  // B is queued
  // C wants slot 1 only, which is free, but B asked for it first.
  auto c = std::async(std::launch::async, [&] {
    REQUIRE(lease.acquire({1}));
    record("C");
    lease.release({1});
  });
  CHECK(c.wait_for(100ms) == std::future_status::timeout);
  // D wants slot 2: nobody else does, so it is granted at once.
  auto d = std::async(std::launch::async, [&] { return lease.acquire({2}); });
  REQUIRE(d.wait_for(5s) == std::future_status::ready);
  CHECK(d.get());
  lease.release({2});

  lease.release({0});  // A done
  REQUIRE(b.wait_for(5s) == std::future_status::ready);
  REQUIRE(c.wait_for(5s) == std::future_status::ready);
  CHECK(order == std::vector<std::string>{"B", "C"});
}

TEST_CASE("close() wakes waiters with false and refuses new requests; empty slot lists never wait") {
  DeviceLease lease;
  CHECK(lease.acquire({}));  // host stages hold nothing
  REQUIRE(lease.acquire({3}));
  auto waiter = std::async(std::launch::async, [&] { return lease.acquire({3}); });
  CHECK(waiter.wait_for(50ms) == std::future_status::timeout);  // held: it must wait
  lease.close();
  REQUIRE(waiter.wait_for(5s) == std::future_status::ready);
  CHECK_FALSE(waiter.get());
  CHECK_FALSE(lease.acquire({4}));
}
