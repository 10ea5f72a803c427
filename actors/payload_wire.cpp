// Wire codecs of the RL payloads (see payload_wire.hpp).
#include "actors/payload_wire.hpp"

#include <chrono>
#include <cstring>

#include "actors/bulk_transfer.hpp"
#include "actors/payloads.hpp"
#include "common/error.hpp"

namespace qerl::actors {
namespace {

using runtime::wire::Reader;
using runtime::wire::Writer;

constexpr int max_rank = 8;

// Dtype codes on the wire (never renumber: they are the format).
constexpr std::pair<uint8_t, torch::ScalarType> dtype_codes[] = {
    {1, torch::kBool},  {2, torch::kUInt8},    {3, torch::kInt8},  {4, torch::kInt16},
    {5, torch::kInt32}, {6, torch::kInt64},    {7, torch::kHalf},  {8, torch::kBFloat16},
    {9, torch::kFloat}, {10, torch::kDouble}, {11, torch::kFloat8_e4m3fn},
};

uint8_t code_of(torch::ScalarType type) {
  for (const auto& [code, t] : dtype_codes)
    if (t == type) return code;
  throw Error(std::string("wire: tensors of dtype ") + c10::toString(type) + " cannot be sent");
}

void write_tensors(Writer& w, const std::shared_ptr<const TensorMap>& tensors) {
  w.u8(tensors ? 1 : 0);
  if (!tensors) return;
  w.u64(tensors->size());
  for (const auto& [name, t] : *tensors) {
    w.str(name);
    write_tensor(w, t);
  }
}

std::shared_ptr<const TensorMap> read_tensors(Reader& r) {
  if (r.u8("tensors present") == 0) return nullptr;
  const uint64_t n = r.count("tensor count", 2 * sizeof(uint64_t));
  auto map = std::make_shared<TensorMap>();
  for (uint64_t i = 0; i < n; ++i) {
    std::string name = r.str("tensor name");
    if (map->count(name)) r.fail("tensor name", "'" + name.substr(0, 80) + "' appears twice");
    map->emplace(std::move(name), read_tensor(r, "tensor"));
  }
  return map;
}

WeightsFormat read_format(Reader& r) {
  const uint8_t f = r.u8("weights format");
  if (f > static_cast<uint8_t>(WeightsFormat::lora_only)) r.fail("weights format", "unknown code " + std::to_string(f));
  return static_cast<WeightsFormat>(f);
}

// Checks that tensor `t` (named `field`) is [rows, ...] of `type` with rank `rank`.
void expect(Reader& r, const char* field, const torch::Tensor& t, torch::ScalarType type, int64_t rank,
            int64_t rows) {
  if (!t.defined()) r.fail(field, "missing");
  if (t.scalar_type() != type || t.dim() != rank || t.size(0) != rows)
    r.fail(field, std::string("expected a ") + std::to_string(rank) + "-D " + c10::toString(type) + " tensor of " +
                      std::to_string(rows) + " rows, got " + c10::toString(t.scalar_type()) + " " +
                      c10::str(t.sizes()));
}

template <class V>
void expect_size(Reader& r, const char* field, const V& v, size_t rows) {
  if (v.size() != rows)
    r.fail(field, std::to_string(v.size()) + " entries for a batch of " + std::to_string(rows) + " rows");
}

void encode_prompts(const PromptBatch& p, Writer& w) {
  w.u64(p.prompt_ids.size());
  for (const auto& ids : p.prompt_ids) w.i64s(ids);
  w.i64s(p.answers);
  w.i64s(p.group_ids);
  w.i64s(p.problem_ids);
}

std::shared_ptr<const PromptBatch> decode_prompts(Reader& r) {
  auto p = std::make_shared<PromptBatch>();
  const uint64_t rows = r.count("prompt_ids", sizeof(uint64_t));
  for (uint64_t i = 0; i < rows; ++i) p->prompt_ids.push_back(r.i64s("prompt_ids"));
  p->answers = r.i64s("answers");
  p->group_ids = r.i64s("group_ids");
  p->problem_ids = r.i64s("problem_ids");
  expect_size(r, "answers", p->answers, rows);
  expect_size(r, "group_ids", p->group_ids, rows);
  expect_size(r, "problem_ids", p->problem_ids, rows);
  return p;
}

void encode_rollout(const RolloutBatch& b, Writer& w) {
  write_tensor(w, b.tokens);
  write_tensor(w, b.attention_mask);
  write_tensor(w, b.response_mask);
  write_tensor(w, b.rollout_logprobs);
  write_tensor(w, b.routing);
  w.i64(b.prompt_width);
  w.i64(b.pad_token_id);
  w.strs(b.responses);
  w.i64s(b.answers);
  w.i64s(b.group_ids);
  w.u8s(b.truncated);
  w.f64(b.temperature);
  w.i64(b.weight_version);
}

std::shared_ptr<const RolloutBatch> decode_rollout(Reader& r) {
  auto b = std::make_shared<RolloutBatch>();
  b->tokens = read_tensor(r, "tokens");
  b->attention_mask = read_tensor(r, "attention_mask");
  b->response_mask = read_tensor(r, "response_mask");
  b->rollout_logprobs = read_tensor(r, "rollout_logprobs");
  b->routing = read_tensor(r, "routing");
  b->prompt_width = r.i64("prompt_width");
  b->pad_token_id = r.i64("pad_token_id");
  b->responses = r.strs("responses");
  b->answers = r.i64s("answers");
  b->group_ids = r.i64s("group_ids");
  b->truncated = r.u8s("truncated");
  b->temperature = r.f64("temperature");
  b->weight_version = r.i64("weight_version");
  const int64_t rows = static_cast<int64_t>(b->answers.size());
  expect(r, "tokens", b->tokens, torch::kLong, 2, rows);
  expect(r, "attention_mask", b->attention_mask, torch::kBool, 2, rows);
  expect(r, "response_mask", b->response_mask, torch::kBool, 2, rows);
  const int64_t width = b->tokens.size(1), response = b->response_mask.size(1);
  if (b->attention_mask.size(1) != width) r.fail("attention_mask", "width differs from tokens'");
  if (b->prompt_width < 0 || b->prompt_width + response != width)
    r.fail("prompt_width", std::to_string(b->prompt_width) + " + response width " + std::to_string(response) +
                               " != token width " + std::to_string(width));
  if (b->rollout_logprobs.defined()) {
    expect(r, "rollout_logprobs", b->rollout_logprobs, torch::kFloat, 2, rows);
    if (b->rollout_logprobs.size(1) != response) r.fail("rollout_logprobs", "width differs from response_mask's");
  }
  if (b->routing.defined()) {
    expect(r, "routing", b->routing, torch::kShort, 4, rows);
    if (b->routing.size(1) != width) r.fail("routing", "length differs from tokens'");
  }
  expect_size(r, "responses", b->responses, rows);
  expect_size(r, "group_ids", b->group_ids, rows);
  expect_size(r, "truncated", b->truncated, rows);
  return b;
}

void encode_scores(const Scores& s, Writer& w) {
  write_tensor(w, s.rewards);
  w.u8s(s.correct);
  w.u8s(s.formatted);
}

std::shared_ptr<const Scores> decode_scores(Reader& r) {
  auto s = std::make_shared<Scores>();
  s->rewards = read_tensor(r, "rewards");
  s->correct = r.u8s("correct");
  s->formatted = r.u8s("formatted");
  expect(r, "rewards", s->rewards, torch::kFloat, 1, static_cast<int64_t>(s->correct.size()));
  expect_size(r, "formatted", s->formatted, s->correct.size());
  return s;
}

template <class Update>
void encode_update(const Update& u, Writer& w) {
  w.i64(u.version);
  w.u8(static_cast<uint8_t>(u.format));
  write_tensors(w, u.tensors);
}

template <class Update>
std::shared_ptr<const Update> decode_update(Reader& r) {
  auto u = std::make_shared<Update>();
  u->version = r.i64("version");
  u->format = read_format(r);
  u->tensors = read_tensors(r);
  return u;
}

// A WeightsUpdate with `beside` set, to another process: names, dtypes and
// shapes here, the bytes over a bulk link (the ticket says which transfer).
void encode_weights(const WeightsUpdate& u, Writer& w) {
  w.i64(u.version);
  w.u8(static_cast<uint8_t>(u.format));
  const bool beside = u.beside && u.tensors && !runtime::wire::destination().empty();
  w.u8(beside ? 1 : 0);
  if (!beside) return write_tensors(w, u.tensors);
  std::vector<torch::Tensor> tensors;
  w.u64(u.tensors->size());
  for (const auto& [name, t] : *u.tensors) {
    w.str(name);
    write_tensor_spec(w, t);
    tensors.push_back(t.contiguous());
  }
  bulk::write_ticket(w, bulk::send(runtime::wire::destination(), std::move(tensors), u.ready));
}

std::shared_ptr<const WeightsUpdate> decode_weights(Reader& r) {
  auto u = std::make_shared<WeightsUpdate>();
  u->version = r.i64("version");
  u->format = read_format(r);
  const uint8_t beside = r.u8("tensors beside");
  if (beside > 1) r.fail("tensors beside", "bad flag " + std::to_string(beside));
  if (beside == 0) {
    u->tensors = read_tensors(r);
    return u;
  }
  const uint64_t n = r.count("tensor count", 2 * sizeof(uint64_t));
  std::vector<std::string> names;
  std::vector<bulk::TensorSpec> specs;
  for (uint64_t i = 0; i < n; ++i) {
    names.push_back(r.str("tensor name"));
    specs.push_back(read_tensor_spec(r, "tensor"));
  }
  const bulk::Ticket ticket = bulk::read_ticket(r);
  std::vector<torch::Tensor> tensors;
  const auto start = std::chrono::steady_clock::now();
  try {
    tensors = bulk::receive(ticket, specs);
  } catch (const std::exception& e) {
    r.fail("tensors beside", e.what());
  }
  auto map = std::make_shared<TensorMap>();
  for (uint64_t i = 0; i < n; ++i)
    if (!map->emplace(std::move(names[i]), tensors[i]).second) r.fail("tensor name", "a name appears twice");
  u->tensors = std::move(map);
  u->beside = true;
  u->transfer_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return u;
}

struct Registration {
  Registration() { register_payload_codecs(); }
} registration;  // when qerl_payloads is loaded

}  // namespace

void write_tensor_spec(Writer& w, const torch::Tensor& t) {
  w.u8(code_of(t.scalar_type()));
  if (t.dim() > max_rank) throw Error("wire: a tensor of rank " + std::to_string(t.dim()) + " cannot be sent");
  w.u8(static_cast<uint8_t>(t.dim()));
  for (const int64_t s : t.sizes()) w.i64(s);
}

bulk::TensorSpec read_tensor_spec(Reader& r, const char* field) {
  bulk::TensorSpec spec;
  const uint8_t code = r.u8(field);
  bool known = false;
  for (const auto& [c, t] : dtype_codes)
    if (c == code) spec.dtype = t, known = true;
  if (!known) r.fail(field, "unknown dtype code " + std::to_string(code));
  const uint8_t rank = r.u8(field);
  if (rank > max_rank) r.fail(field, "rank " + std::to_string(rank) + " exceeds " + std::to_string(max_rank));
  spec.sizes.resize(rank);
  uint64_t numel = 1;
  for (auto& s : spec.sizes) {
    s = r.i64(field);
    if (s < 0 || static_cast<uint64_t>(s) > runtime::wire::max_length) r.fail(field, "bad size " + std::to_string(s));
    numel = s == 0 ? 0 : (numel > runtime::wire::max_length / static_cast<uint64_t>(s) ? runtime::wire::max_length + 1
                                                                                         : numel * s);
    if (numel > runtime::wire::max_length) r.fail(field, "shape holds more than 2^40 values");
  }
  return spec;
}

void write_tensor(Writer& w, const torch::Tensor& t) {
  w.u8(t.defined() ? 1 : 0);
  if (!t.defined()) return;
  write_tensor_spec(w, t);
  const torch::Tensor host = t.to(torch::kCPU).contiguous();
  const uint64_t bytes = static_cast<uint64_t>(host.numel()) * host.element_size();
  w.u64(bytes);
  w.raw(host.data_ptr(), bytes);
}

torch::Tensor read_tensor(Reader& r, const char* field) {
  const uint8_t present = r.u8(field);
  if (present == 0) return torch::Tensor();
  if (present != 1) r.fail(field, "bad presence flag " + std::to_string(present));
  const bulk::TensorSpec spec = read_tensor_spec(r, field);
  const torch::ScalarType type = spec.dtype;
  const std::vector<int64_t>& sizes = spec.sizes;
  uint64_t numel = 1;
  for (const int64_t s : sizes) numel *= static_cast<uint64_t>(s);
  const uint64_t element = c10::elementSize(type);
  const uint64_t bytes = r.u64(field);
  if (bytes != numel * element)
    r.fail(field, "holds " + std::to_string(bytes) + " bytes, its shape and dtype need " +
                      std::to_string(numel * element));
  const uint8_t* data = r.take(field, bytes);
  if (type == torch::kBool) {
    for (uint64_t i = 0; i < bytes; ++i)
      if (data[i] > 1) r.fail(field, "a bool tensor holds the byte " + std::to_string(data[i]));
  }
  torch::Tensor t = torch::empty(sizes, torch::TensorOptions().dtype(type));
  if (bytes > 0) std::memcpy(t.data_ptr(), data, bytes);
  return t;
}

void register_payload_codecs() {
  using runtime::wire::register_payload_codec;
  register_payload_codec<PromptBatch>("PromptBatch", encode_prompts, decode_prompts);
  register_payload_codec<RolloutBatch>("RolloutBatch", encode_rollout, decode_rollout);
  register_payload_codec<Scores>("Scores", encode_scores, decode_scores);
  register_payload_codec<RefLogprobs>(
      "RefLogprobs", [](const RefLogprobs& p, Writer& w) { write_tensor(w, p.logprobs); },
      [](Reader& r) {
        auto p = std::make_shared<RefLogprobs>();
        p->logprobs = read_tensor(r, "logprobs");
        if (p->logprobs.defined() && (p->logprobs.scalar_type() != torch::kFloat || p->logprobs.dim() != 2))
          r.fail("logprobs", "expected a 2-D Float tensor, got " + c10::str(p->logprobs.sizes()));
        return std::shared_ptr<const RefLogprobs>(p);
      });
  register_payload_codec<PolicyUpdate>("PolicyUpdate", encode_update<PolicyUpdate>, decode_update<PolicyUpdate>);
  register_payload_codec<WeightsUpdate>("WeightsUpdate", encode_weights, decode_weights);
}

}  // namespace qerl::actors
