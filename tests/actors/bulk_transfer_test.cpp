// Tensors beside the message (actors/bulk_transfer): a WeightsUpdate marked
// `beside` and encoded for another process carries only specs and a
// ticket; decoding, on several threads in any order, takes transfers in
// the link's order and gets every update's bytes. Replayed, far-ahead,
// foreign and orphaned tickets are refused with one line; a failed
// transfer breaks its link. The bytes move over an in-memory link here
// (NCCL needs two GPUs: the multi-GPU issue runs it).
#include <doctest/doctest.h>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "actors/bulk_transfer.hpp"
#include "actors/payload_wire.hpp"
#include "actors/payloads.hpp"
#include "common/error.hpp"

using namespace qerl;
using namespace qerl::actors;
namespace wire = qerl::runtime::wire;

namespace {

// One in-memory link: what rank 0 sent, in order, for rank 1 to take. A
// send returns only once its receive took it, as NCCL's do.
struct Pipe {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<std::vector<torch::Tensor>> sent;
  uint64_t pushed = 0, taken = 0;
};

class MemoryLink final : public bulk::Link {
 public:
  MemoryLink(std::shared_ptr<Pipe> pipe, bool fail_receives) : pipe_(std::move(pipe)), fail_(fail_receives) {}
  void send(const std::vector<torch::Tensor>& tensors, const std::shared_ptr<void>&) override {
    std::vector<torch::Tensor> copies;
    for (const auto& t : tensors) copies.push_back(t.clone());
    std::unique_lock<std::mutex> lock(pipe_->mutex);
    pipe_->sent.push_back(std::move(copies));
    const uint64_t mine = ++pipe_->pushed;
    pipe_->ready.notify_all();
    pipe_->ready.wait(lock, [&] { return pipe_->taken >= mine; });
  }
  void receive(const std::vector<torch::Tensor>& into) override {
    std::unique_lock<std::mutex> lock(pipe_->mutex);
    pipe_->ready.wait(lock, [&] { return !pipe_->sent.empty(); });
    std::vector<torch::Tensor> got = std::move(pipe_->sent.front());
    pipe_->sent.pop_front();
    ++pipe_->taken;
    pipe_->ready.notify_all();
    if (fail_) throw Error("the peer went away");
    REQUIRE(got.size() == into.size());
    for (size_t i = 0; i < got.size(); ++i) into[i].copy_(got[i]);
  }

 private:
  std::shared_ptr<Pipe> pipe_;
  bool fail_;
};

class MemoryKind final : public bulk::LinkKind {
 public:
  explicit MemoryKind(bool fail_receives = false) : fail_(fail_receives) {}
  std::string name() const override { return "memory"; }
  std::vector<uint8_t> bootstrap() override { return {++links_, 0x5a}; }
  std::unique_ptr<bulk::Link> join(const std::vector<uint8_t>& bootstrap, int, torch::Device) override {
    const std::lock_guard<std::mutex> lock(mutex_);
    auto& pipe = pipes_[bootstrap];
    if (!pipe) pipe = std::make_shared<Pipe>();
    return std::make_unique<MemoryLink>(pipe, fail_);
  }
  std::shared_ptr<void> ready_marker(const std::vector<torch::Tensor>&) override { return nullptr; }
  torch::Device receive_device() const override { return torch::kCPU; }

 private:
  bool fail_;
  uint8_t links_ = 0;
  std::mutex mutex_;
  std::map<std::vector<uint8_t>, std::shared_ptr<Pipe>> pipes_;
};

std::shared_ptr<WeightsUpdate> random_update(int64_t version, uint64_t seed) {
  torch::manual_seed(seed);
  auto tensors = std::make_shared<TensorMap>();
  (*tensors)["layers.0.mlp.experts.3.up_proj.lora_A"] = torch::randn({16, 96});
  (*tensors)["layers.0.self_attn.q_proj.weight"] = torch::randn({64, 96}).to(torch::kBFloat16);
  (*tensors)["layers.0.self_attn.q_proj.codes"] = torch::randint(0, 256, {64, 48}, torch::kUInt8);
  (*tensors)["layers.1.empty"] = torch::empty({0, 8});
  auto u = std::make_shared<WeightsUpdate>();
  u->version = version;
  u->format = WeightsFormat::packed;
  u->tensors = tensors;
  u->beside = true;
  return u;
}

std::vector<uint8_t> encode_to(const std::string& destination, const WeightsUpdate& u) {
  const wire::DestinationScope to(destination);
  return wire::encode_payload(u);
}

std::shared_ptr<const WeightsUpdate> decode(const std::vector<uint8_t>& bytes) {
  return std::dynamic_pointer_cast<const WeightsUpdate>(wire::decode_payload(bytes.data(), bytes.size(), "message"));
}

void check_same(const WeightsUpdate& a, const WeightsUpdate& b) {
  CHECK(a.version == b.version);
  CHECK(a.format == b.format);
  REQUIRE(a.tensors->size() == b.tensors->size());
  for (const auto& [name, t] : *a.tensors) {
    const torch::Tensor& u = b.tensors->at(name);
    CHECK((u.scalar_type() == t.scalar_type()));
    CHECK(torch::equal(u, t));
  }
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

int64_t tensor_bytes(const WeightsUpdate& u) {
  int64_t bytes = 0;
  for (const auto& [name, t] : *u.tensors) bytes += t.numel() * t.element_size();
  return bytes;
}

}  // namespace

TEST_CASE("bulk: weights beside the message arrive intact, decoded on several threads in any order") {
  register_payload_codecs();
  bulk::set_link_kind(std::make_shared<MemoryKind>());
  constexpr int updates = 6;
  std::vector<std::shared_ptr<WeightsUpdate>> sent;
  std::vector<std::vector<uint8_t>> messages;
  for (int i = 0; i < updates; ++i) {
    sent.push_back(random_update(/*version=*/i + 1, /*seed=*/700 + i));
    messages.push_back(encode_to("node-b", *sent.back()));
    // specs and a ticket only: far fewer bytes than the tensors
    CHECK(static_cast<int64_t>(messages.back().size()) < tensor_bytes(*sent.back()) / 8);
  }
  std::vector<std::shared_ptr<const WeightsUpdate>> got(updates);
  std::vector<std::string> errors(updates);
  std::vector<std::thread> threads;
  for (int i = updates - 1; i >= 0; --i) {  // the last message first
    threads.emplace_back([&, i] { errors[i] = error_of([&] { got[i] = decode(messages[i]); }); });
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < updates; ++i) {
    CHECK_MESSAGE(errors[i].empty(), errors[i]);
    REQUIRE(got[i]);
    check_same(*sent[i], *got[i]);
    CHECK(got[i]->beside);
    CHECK(got[i]->transfer_s > 0.0);
  }
  // The same message again: its transfer was taken already.
  CHECK(error_of([&] { decode(messages[2]); }).find("transfer 2: already received (a repeated message)") !=
        std::string::npos);
}

TEST_CASE("bulk: without a destination or the flag, tensors stay inside the message") {
  register_payload_codecs();
  bulk::set_link_kind(nullptr);  // no link at all: nothing may need one
  auto u = random_update(/*version=*/3, /*seed=*/710);
  const std::vector<uint8_t> in_process = encode_to("", *u);
  CHECK(static_cast<int64_t>(in_process.size()) > tensor_bytes(*u));
  check_same(*u, *decode(in_process));
  u->beside = false;
  const std::vector<uint8_t> unflagged = encode_to("node-b", *u);
  check_same(*u, *decode(unflagged));
  CHECK_FALSE(decode(unflagged)->beside);
  u->beside = true;
  CHECK(error_of([&] { encode_to("node-b", *u); }).find("this build has no link") != std::string::npos);
}

TEST_CASE("bulk: foreign, far-ahead and orphaned tickets are refused with one line") {
  register_payload_codecs();
  bulk::set_link_kind(std::make_shared<MemoryKind>());
  const std::vector<bulk::TensorSpec> specs{{torch::kFloat, {4, 4}}};
  // A link kind this process does not have.
  CHECK(error_of([&] { bulk::receive({"carrier-pigeon", 11, 0, {1}}, specs); })
            .find("sent over 'carrier-pigeon', which this process does not have (it has 'memory')") !=
        std::string::npos);
  // Far ahead of its link: refused at once, not waited for.
  CHECK(error_of([&] { bulk::receive({"memory", 12, 5000, {}}, specs); }).find("transfers ahead of the link, refused") !=
        std::string::npos);
  // A later transfer whose link's first transfer never comes: a timeout naming it.
  bulk::set_receive_timeout_s(0.2);
  const auto start = std::chrono::steady_clock::now();
  CHECK(error_of([&] { bulk::receive({"memory", 13, 1, {}}, specs); })
            .find("bulk link 13, transfer 1: transfer 0 never arrived (waited 0 s)") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  bulk::set_receive_timeout_s(120);
  // A ticket whose first transfer lacks the rendezvous, or a later one that has it.
  for (const auto& [seq, bootstrap] : std::vector<std::pair<uint64_t, std::vector<uint8_t>>>{{0, {}}, {1, {7}}}) {
    wire::Writer w;
    bulk::write_ticket(w, {"memory", 14, seq, bootstrap});
    wire::Reader r(w.bytes().data(), w.bytes().size(), "ticket");
    CHECK(error_of([&] { bulk::read_ticket(r); }).find("expected on the first transfer of a link and only there") !=
          std::string::npos);
  }
}

TEST_CASE("bulk: a failed transfer breaks its link; later tickets name the first error") {
  register_payload_codecs();
  bulk::set_link_kind(std::make_shared<MemoryKind>(/*fail_receives=*/true));
  const auto first = encode_to("node-c", *random_update(1, 720));
  const auto second = encode_to("node-c", *random_update(2, 721));
  CHECK(error_of([&] { decode(first); }).find("transfer 0: the peer went away") != std::string::npos);
  CHECK(error_of([&] { decode(second); }).find("transfer 1: the link failed earlier: the peer went away") !=
        std::string::npos);
  bulk::set_link_kind(nullptr);
}

TEST_CASE("bulk: a message lost on the way breaks its link after one timeout; the tickets after it fail at once") {
  register_payload_codecs();
  bulk::set_link_kind(std::make_shared<MemoryKind>());
  std::vector<std::vector<uint8_t>> messages;
  for (int i = 0; i < 4; ++i) messages.push_back(encode_to("node-d", *random_update(i + 1, 730 + i)));
  check_same(*random_update(1, 730), *decode(messages[0]));
  bulk::set_receive_timeout_s(0.3);
  // messages[1] never arrives: the sender is stuck on it, nothing after it can pair.
  CHECK(error_of([&] { decode(messages[2]); }).find("transfer 2: transfer 1 never arrived (waited 0 s)") !=
        std::string::npos);
  // A second wait would now take 30 s; failing at once takes far less than 5
  // s even on a loaded machine.
  bulk::set_receive_timeout_s(30);
  const auto start = std::chrono::steady_clock::now();
  CHECK(error_of([&] { decode(messages[3]); }).find("transfer 3: the link failed earlier: transfer 1 never arrived") !=
        std::string::npos);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));  // no second wait
  bulk::set_receive_timeout_s(120);
  bulk::set_link_kind(nullptr);
}
