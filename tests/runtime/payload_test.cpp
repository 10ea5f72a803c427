// Payload hooks: broadcast by default, gather refuses by default (naming the
// type), one replica skips the hooks, and a row batch round-trips through
// shard + gather. StepInput::get reports absent ports and wrong types.
#include <doctest/doctest.h>

#include <random>

#include "common/error.hpp"
#include "runtime/payload.hpp"
#include "runtime/stage.hpp"
#include "tests/runtime/toy_loop.hpp"

using namespace qerl;
using namespace qerl::runtime;
using testing::Numbers;
using testing::Param;

TEST_CASE("a payload without shard() is broadcast: every consumer replica gets the same object") {
  PayloadPtr p = std::make_shared<Param>(1.5, 0);
  CHECK(shard_for(p, 0, 3).get() == p.get());
  CHECK(shard_for(p, 2, 3).get() == p.get());
}

TEST_CASE("a payload without gather() cannot come from several producer replicas") {
  PayloadPtr a = std::make_shared<Param>(1.0, 0), b = std::make_shared<Param>(2.0, 0);
  CHECK(gather_parts({a}).get() == a.get());  // one replica: no gather needed
  try {
    gather_parts({a, b});
    FAIL("gather of a non-gatherable payload must throw");
  } catch (const Error& e) {
    const std::string what = e.what();
    CHECK(what.find("qerl::runtime::testing::Param") != std::string::npos);
    CHECK(what.find("cannot be gathered from 2 producer replicas") != std::string::npos);
  }
}

TEST_CASE("row shards of a batch, gathered in replica order, equal the batch") {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> dist(-1, 1);
  for (int rows : {1, 5, 12}) {
    std::vector<double> values(rows);
    for (auto& v : values) v = dist(rng);
    const PayloadPtr whole = std::make_shared<Numbers>(values);
    for (int count : {1, 2, 3}) {
      std::vector<PayloadPtr> parts;
      size_t total = 0;
      for (int i = 0; i < count; ++i) {
        parts.push_back(shard_for(whole, i, count));
        total += dynamic_cast<const Numbers&>(*parts.back()).values.size();
      }
      CHECK(total == values.size());
      const auto back = std::dynamic_pointer_cast<const Numbers>(gather_parts(parts));
      REQUIRE(back.get() != nullptr);
      CHECK(back->values == values);
    }
  }
}

TEST_CASE("StepInput::get names the port when it is absent or carries another payload type") {
  StepInput in;
  in.step = 4;
  in.ports["samples"] = std::make_shared<Param>(0.0, 0);
  CHECK(in.has("samples"));
  CHECK_FALSE(in.has("weights"));
  CHECK_THROWS_WITH_AS(in.get<Param>("weights"), "input port 'weights' has no message at step 4",
                       Error);
  try {
    in.get<Numbers>("samples");
    FAIL("wrong payload type must throw");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("input port 'samples' carries qerl::runtime::testing::Param") !=
          std::string::npos);
  }
  CHECK(in.get<Param>("samples")->made_at_step == 0);
}
