// The worker handshake (issue 17): a coordinator of the same build that
// holds the run's secret is accepted; another build, another secret or
// another pipeline is refused with one line naming both sides; a Hello and
// the driver's messages survive CAF's binary serialisation (the path they
// take between processes), and a truncated one is refused, not misread.
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <doctest/doctest.h>

#include <random>

#include "runtime/build_id.hpp"
#include "runtime/cluster_secret.hpp"
#include "runtime/detail/stage_actor.hpp"
#include "runtime/detail/worker_protocol.hpp"

using namespace qerl::runtime;
using namespace qerl::runtime::detail;

namespace {

Hello hello_for(const std::string& secret, const std::string& text) {
  Hello h;
  h.build_id = build_id();
  h.secret_proof = secret_proof(secret);
  h.pipeline_text = text;
  h.pipeline_hash = pipeline_hash(text);
  h.pipeline_version = pipeline_hash(text + "#v");
  h.plugins = {"/x/libp.so"};
  h.worker_index = 2;
  h.out_dir = "/runs/a";
  h.start_step = 4;
  h.resume_from = "/runs/a/checkpoints/step_000004";
  return h;
}

template <class T>
std::vector<char> to_bytes(T& value) {
  std::vector<char> buf;
  caf::binary_serializer sink{static_cast<caf::execution_unit*>(nullptr), buf};
  REQUIRE(!sink(value));
  return buf;
}

template <class T>
caf::error from_bytes(const std::vector<char>& buf, T& value) {
  caf::binary_deserializer source{static_cast<caf::execution_unit*>(nullptr), buf};
  return source(value);
}

}  // namespace

TEST_CASE("handshake: same build and secret accepted; another build, secret or pipeline refused naming both") {
  const std::string secret = generate_cluster_secret();
  CHECK(secret.size() == 64);
  CHECK(secret != generate_cluster_secret());
  const Hello h = hello_for(secret, "[run]\nsteps = 3\n");
  const WorkerIdentity worker{build_id(), secret_proof(secret), ""};
  CHECK(check_hello(h, worker) == "");
  CHECK(check_hello(h, WorkerIdentity{build_id(), secret_proof(secret), h.pipeline_version}) == "");

  const std::string wrong_build = check_hello(h, WorkerIdentity{"qerl 0000000 built yesterday", worker.secret_proof, ""});
  CHECK(wrong_build.find("different qerl builds") != std::string::npos);
  CHECK(wrong_build.find(build_id()) != std::string::npos);
  CHECK(wrong_build.find("qerl 0000000 built yesterday") != std::string::npos);

  const std::string wrong_secret = check_hello(h, WorkerIdentity{build_id(), secret_proof(secret + "x"), ""});
  CHECK(wrong_secret.find("cluster secret") != std::string::npos);
  CHECK(wrong_secret.find(secret) == std::string::npos);  // never in a line

  const std::string wrong_pipeline = check_hello(h, WorkerIdentity{build_id(), worker.secret_proof, "0123456789abcdef"});
  CHECK(wrong_pipeline.find("different pipelines") != std::string::npos);
  CHECK(wrong_pipeline.find(h.pipeline_version) != std::string::npos);
  CHECK(wrong_pipeline.find("0123456789abcdef") != std::string::npos);

  Hello damaged = h;
  damaged.pipeline_text += " ";
  CHECK(check_hello(damaged, worker).find("does not match its hash") != std::string::npos);
}

TEST_CASE("secret proofs: deterministic, differ for different secrets, compared in constant time") {
  CHECK(secret_proof("abc") == secret_proof("abc"));
  CHECK(secret_proof("abc").size() == 32);
  CHECK(secret_proof("abc") != secret_proof("abd"));
  CHECK(secret_proof("abc").find("abc") == std::string::npos);
  CHECK(equal_in_constant_time("abc", "abc"));
  CHECK_FALSE(equal_in_constant_time("abc", "abd"));
  CHECK_FALSE(equal_in_constant_time("abc", "abcd"));
  CHECK_FALSE(equal_in_constant_time("", "a"));
}

TEST_CASE("a Hello, a FiringReport and a Route round-trip through CAF's binary serialiser; truncations are refused") {
  Hello h = hello_for("s3cret", "[run]\nname = \"x\"\n");
  const std::vector<char> bytes = to_bytes(h);
  Hello back;
  REQUIRE(!from_bytes(bytes, back));
  CHECK(back.build_id == h.build_id);
  CHECK(back.secret_proof == h.secret_proof);
  CHECK(back.pipeline_text == h.pipeline_text);
  CHECK(back.pipeline_version == h.pipeline_version);
  CHECK(back.plugins == h.plugins);
  CHECK(back.worker_index == 2);
  CHECK(back.start_step == 4);
  CHECK(back.resume_from == h.resume_from);
  for (size_t cut = 0; cut < bytes.size(); cut += 7) {
    CAPTURE(cut);
    Hello partial;
    CHECK(from_bytes(std::vector<char>(bytes.begin(), bytes.begin() + cut), partial));
  }

  std::mt19937 rng(17);
  std::uniform_real_distribution<double> value(-5, 5);
  FiringReport report{3, 1, 41, value(rng), 7, {{"critic/rewards/mean", value(rng)}, {"actor/entropy", value(rng)}}};
  const auto report_bytes = to_bytes(report);
  FiringReport report_back;
  REQUIRE(!from_bytes(report_bytes, report_back));
  CHECK(report_back.node == 3);
  CHECK(report_back.replica == 1);
  CHECK(report_back.step == 41);
  CHECK(report_back.wall_s == report.wall_s);
  CHECK(report_back.weight_version == 7);
  CHECK(report_back.metrics == report.metrics);

  for (std::optional<int64_t> staleness : {std::optional<int64_t>{}, std::optional<int64_t>{0}, std::optional<int64_t>{2}}) {
    Route route{"params", "weights", {}, staleness};
    const auto route_bytes = to_bytes(route);
    Route route_back;
    REQUIRE(!from_bytes(route_bytes, route_back));
    CHECK(route_back.producer_port == "params");
    CHECK(route_back.consumer_port == "weights");
    CHECK(route_back.staleness == staleness);
  }
}
