// Payloads across processes (actors/payload_wire, runtime/wire): every
// built-in payload survives encode -> decode field for field on fresh
// random contents; truncated, corrupted, oversized or foreign messages are
// refused with one line naming the field (never a crash or a huge
// allocation).
#include <doctest/doctest.h>

#include <torch/torch.h>

#include <algorithm>
#include <random>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include "actors/payload_wire.hpp"
#include "actors/payloads.hpp"
#include "common/error.hpp"
#include "runtime/detail/stage_actor.hpp"
#include "tests/actors/test_batches.hpp"

using namespace qerl;
using namespace qerl::actors;
namespace wire = qerl::runtime::wire;

namespace {

std::shared_ptr<RolloutBatch> random_rollout(uint64_t seed) {
  auto b = testing::grouped_batch(3, 4, 7, 50, seed, [](int64_t g) { return 2 + g; },
                                  [](int64_t r) { return 1 + r % 7; });
  const int64_t B = b->size(), W = b->tokens.size(1);
  b->rollout_logprobs = -torch::rand({B, 7});
  b->routing = torch::randint(0, 8, {B, W, 2, 2}, torch::kLong).to(torch::kShort);
  b->pad_token_id = 1;
  for (int64_t r = 0; r < B; ++r) {
    b->responses.push_back("answer #" + std::to_string(r * 7919 % 97) + (r % 3 ? "\n#### 4" : ""));
    b->truncated.push_back(r % 2);
  }
  b->temperature = 0.7;
  b->weight_version = 12;
  return b;
}

template <class T>
std::shared_ptr<const T> round_trip(const T& p) {
  const std::vector<uint8_t> bytes = wire::encode_payload(p);
  auto back = std::dynamic_pointer_cast<const T>(wire::decode_payload(bytes.data(), bytes.size(), "test message"));
  REQUIRE(back);
  return back;
}

bool same(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.defined() != b.defined()) return false;
  return !a.defined() || (a.scalar_type() == b.scalar_type() && torch::equal(a, b));
}

// The decode error for `bytes` (empty when it decodes).
std::string decode_error(const std::vector<uint8_t>& bytes) {
  try {
    wire::decode_payload(bytes.data(), bytes.size(), "test message");
  } catch (const qerl::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("wire: every built-in payload round-trips field for field") {
  register_payload_codecs();
  const auto b = random_rollout(31);
  const auto rb = round_trip(*b);
  CHECK(same(rb->tokens, b->tokens));
  CHECK(same(rb->attention_mask, b->attention_mask));
  CHECK(same(rb->response_mask, b->response_mask));
  CHECK(same(rb->rollout_logprobs, b->rollout_logprobs));
  CHECK(same(rb->routing, b->routing));
  CHECK(rb->prompt_width == b->prompt_width);
  CHECK(rb->pad_token_id == 1);
  CHECK(rb->responses == b->responses);
  CHECK(rb->answers == b->answers);
  CHECK(rb->group_ids == b->group_ids);
  CHECK(rb->truncated == b->truncated);
  CHECK(rb->temperature == 0.7);
  CHECK(rb->weight_version == 12);

  PromptBatch p;
  p.prompt_ids = {{5, 6, 7}, {}, {9}};
  p.answers = {1, -2, 3};
  p.group_ids = {0, 0, 1};
  p.problem_ids = {10, 10, 11};
  const auto pb = round_trip(p);
  CHECK(pb->prompt_ids == p.prompt_ids);
  CHECK(pb->answers == p.answers);
  CHECK(pb->group_ids == p.group_ids);
  CHECK(pb->problem_ids == p.problem_ids);

  Scores s;
  s.rewards = torch::randn({5});
  s.correct = {1, 0, 0, 1, 1};
  s.formatted = {1, 1, 0, 1, 0};
  const auto sb = round_trip(s);
  CHECK(same(sb->rewards, s.rewards));
  CHECK(sb->correct == s.correct);
  CHECK(sb->formatted == s.formatted);

  RefLogprobs ref;
  CHECK_FALSE(round_trip(ref)->logprobs.defined());
  ref.logprobs = -torch::rand({4, 9});
  CHECK(same(round_trip(ref)->logprobs, ref.logprobs));

  WeightsUpdate u;
  u.version = 7;
  u.format = WeightsFormat::packed;
  auto map = std::make_shared<TensorMap>();
  (*map)["model.layers.0.mlp.down_proj.weight_packed"] = torch::randint(0, 256, {8, 16}, torch::kLong).to(torch::kUInt8);
  (*map)["model.layers.0.mlp.down_proj.weight_scale"] = torch::rand({8, 2}).to(torch::kFloat8_e4m3fn);
  (*map)["model.norm.weight"] = torch::randn({32}).to(torch::kBFloat16);
  (*map)["scalar"] = torch::tensor(3.5, torch::kDouble);
  (*map)["empty"] = torch::empty({0, 4});
  u.tensors = map;
  const auto ub = round_trip(u);
  CHECK(ub->version == 7);
  CHECK((ub->format == WeightsFormat::packed));
  REQUIRE(ub->tensors->size() == map->size());
  for (const auto& [name, t] : *map) {
    CAPTURE(name);
    const torch::Tensor& got = ub->tensors->at(name);
    CHECK((got.sizes() == t.sizes()));
    CHECK((got.scalar_type() == t.scalar_type()));
    CHECK(torch::equal(got.reshape({-1}).view(torch::kUInt8), t.reshape({-1}).view(torch::kUInt8)));
  }
  PolicyUpdate none;
  CHECK(round_trip(none)->tensors == nullptr);
}

TEST_CASE("wire: every truncation of a message is refused, naming a field") {
  register_payload_codecs();
  const std::vector<uint8_t> bytes = wire::encode_payload(*random_rollout(32));
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    const std::string error = decode_error(std::vector<uint8_t>(bytes.begin(), bytes.begin() + cut));
    if (error.empty() || error.find("test message: ") != 0) {
      FAIL_CHECK("a message cut to " << cut << " of " << bytes.size() << " bytes: '" << error << "'");
      break;
    }
  }
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  CHECK(decode_error(longer).find("1 unexpected bytes after the payload") != std::string::npos);
}

TEST_CASE("wire: corrupted messages decode to a consistent payload or fail cleanly") {
  register_payload_codecs();
  const std::vector<uint8_t> bytes = wire::encode_payload(*random_rollout(33));
  std::mt19937_64 rng(34);
  int refused = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::vector<uint8_t> bad = bytes;
    for (int flips = 1 + trial % 4; flips > 0; --flips) bad[rng() % bad.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    try {
      const auto p = std::dynamic_pointer_cast<const RolloutBatch>(wire::decode_payload(bad.data(), bad.size(), "m"));
      REQUIRE(p);  // decoded: the shapes the codec checks still agree
      CHECK(p->tokens.size(0) == p->size());
      CHECK(p->prompt_width + p->response_width() == p->tokens.size(1));
    } catch (const qerl::Error&) {
      ++refused;
    }
  }
  CHECK(refused > 300);  // most flips land in tensor bytes, which decode
}

TEST_CASE("wire: hostile and foreign messages get one clear line") {
  register_payload_codecs();
  auto error_of = [](std::vector<uint8_t> bytes) { return decode_error(bytes); };
  CHECK(error_of({'G', 'E', 'T', ' ', '/'}).find("magic: not a qerl payload message") != std::string::npos);

  wire::Writer w;
  w.raw("QRLW", 4);
  w.u32(99);
  CHECK(error_of(w.bytes()).find("format version: version 99, this build reads 1") != std::string::npos);

  wire::Writer unknown;
  unknown.raw("QRLW", 4);
  unknown.u32(wire::format_version);
  unknown.str("EvilPayload");
  CHECK(error_of(unknown.bytes()).find("unknown payload type 'EvilPayload'") != std::string::npos);

  // A tensor claiming 2^39 x 2^39 values, and one claiming more bytes than sent: refused before allocating.
  auto scores_with = [](const std::function<void(wire::Writer&)>& tensor) {
    wire::Writer m;
    m.raw("QRLW", 4);
    m.u32(wire::format_version);
    m.str("Scores");
    tensor(m);
    return m.take();
  };
  CHECK(error_of(scores_with([](wire::Writer& m) {
          m.u8(1), m.u8(9), m.u8(2), m.i64(int64_t(1) << 39), m.i64(int64_t(1) << 39);
        })).find("more than 2^40 values") != std::string::npos);
  CHECK(error_of(scores_with([](wire::Writer& m) {
          m.u8(1), m.u8(9), m.u8(1), m.i64(1000000), m.u64(4000000);
        })).find("message truncated: needs 4000000 bytes") != std::string::npos);
  CHECK(error_of(scores_with([](wire::Writer& m) { m.u8(1), m.u8(200); })).find("unknown dtype code 200") !=
        std::string::npos);
  CHECK(error_of(scores_with([](wire::Writer& m) {
          m.u8(1), m.u8(1), m.u8(1), m.i64(2), m.u64(2), m.u8(0), m.u8(7);
        })).find("a bool tensor holds the byte 7") != std::string::npos);

  // Consistent bytes, inconsistent payload: 3 rewards for 2 rows.
  Scores s;
  s.rewards = torch::randn({3});
  s.correct = {1, 0};
  s.formatted = {1, 0};
  const std::vector<uint8_t> bytes = wire::encode_payload(s);
  CHECK(error_of(bytes).find("rewards: expected a 1-D Float tensor of 2 rows") != std::string::npos);
}

TEST_CASE("wire: a payload type without a codec cannot leave its process") {
  struct Local final : runtime::Payload {};
  try {
    wire::encode_payload(Local());
    FAIL("encoded a payload without a codec");
  } catch (const qerl::Error& e) {
    CHECK(std::string(e.what()).find("has no wire codec") != std::string::npos);
  }
}

TEST_CASE("wire: a PortMessage carrying a RolloutBatch through CAF's binary serializer, intact and corrupted") {
  register_payload_codecs();
  runtime::detail::PortMessage msg;
  msg.port = "samples";
  msg.producer_replica = 1;
  msg.step = 41;
  msg.weight_version = 40;
  const auto batch = random_rollout(35);
  msg.payload = batch;
  std::vector<char> buf;
  caf::binary_serializer sink{static_cast<caf::execution_unit*>(nullptr), buf};
  REQUIRE_FALSE(sink(msg));

  runtime::detail::PortMessage back;
  caf::binary_deserializer source{static_cast<caf::execution_unit*>(nullptr), buf};
  REQUIRE_FALSE(source(back));
  CHECK(back.port == "samples");
  CHECK(back.producer_replica == 1);
  CHECK(back.step == 41);
  CHECK(back.weight_version == 40);
  const auto got = std::dynamic_pointer_cast<const RolloutBatch>(back.payload);
  REQUIRE(got);
  CHECK(same(got->tokens, batch->tokens));
  CHECK(got->responses == batch->responses);

  runtime::detail::PortMessage empty;  // no payload for this step (resumed runs)
  std::vector<char> ebuf;
  caf::binary_serializer esink{static_cast<caf::execution_unit*>(nullptr), ebuf};
  REQUIRE_FALSE(esink(empty));
  runtime::detail::PortMessage eback;
  eback.payload = batch;
  caf::binary_deserializer esource{static_cast<caf::execution_unit*>(nullptr), ebuf};
  REQUIRE_FALSE(esource(eback));
  CHECK(eback.payload == nullptr);

  // The payload's magic overwritten: a CAF error naming the port and the field, no exception.
  std::vector<char> bad = buf;
  const std::string marker = "QRLW";
  auto at = std::search(bad.begin(), bad.end(), marker.begin(), marker.end());
  REQUIRE(at != bad.end());
  *at = 'X';
  runtime::detail::PortMessage refused;
  caf::binary_deserializer bad_source{static_cast<caf::execution_unit*>(nullptr), bad};
  const caf::error err = bad_source(refused);
  REQUIRE(err);
  const std::string text = caf::to_string(err) + caf::to_string(err.context());
  CHECK(text.find("message for port 'samples': magic: not a qerl payload message") != std::string::npos);
}
