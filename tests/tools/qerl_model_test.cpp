// qerl-model end to end on bad input: a config.json whose sizes are bad or
// too large for memory, more tokens than max_position_embeddings, and a
// checkpoint whose logits come out NaN each end in one line on stderr and
// exit 2, with nothing written; the same folder without the defect scores.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "run_tool.hpp"
#include "stored_tensors.hpp"

namespace fs = std::filesystem;
using qerl::test::Outcome;
using qerl::test::slurp;

namespace {

fs::path tiny_moe() { return fs::path(QERL_SOURCE_DIR) / "assets" / "tiny-moe"; }

Outcome qerl_model(const std::string& args, const fs::path& dir) {
  return qerl::test::run_tool(QERL_MODEL_EXE, args, dir);
}

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

size_t count_lines(const std::string& text) {
  size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

// `count` token ids in [0, vocab), seeded, as --tokens wants them.
std::string token_list(int64_t count, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> id(0, vocab - 1);
  std::string out;
  for (int64_t i = 0; i < count; ++i) out += (i ? "," : "") + std::to_string(id(rng));
  return out;
}

// Exit 2, "qerl-model: " + one line containing every part, no internal error.
void check_bad_input(const Outcome& o, const std::vector<std::string>& parts) {
  INFO(o.err);
  CHECK(o.status == 2);
  CHECK(o.err.rfind("qerl-model: ", 0) == 0);
  CHECK(count_lines(o.err) == 1);
  CHECK(o.err.find("internal error") == std::string::npos);
  for (const auto& part : parts) CHECK(o.err.find(part) != std::string::npos);
}

}  // namespace

TEST_CASE("qerl-model: each bad size in config.json is one line naming config.json, the key and the value") {
  const fs::path dir = qerl::test::scratch_dir("qerl_model_test", "bad_config");
  const nlohmann::json base = nlohmann::json::parse(slurp(tiny_moe() / "config.json"));
  struct Case {
    const char* name;
    nlohmann::json edit;  // merged into tiny-moe's config.json; null values erase the key
    std::string message;
  };
  const std::vector<Case> cases{
      {"vocab_1e12", {{"vocab_size", 1000000000000LL}},
       "config.json: \"vocab_size\" = 1000000000000: exceeds qerl's sanity limit 16777216"},
      {"vocab_0", {{"vocab_size", 0}}, "config.json: \"vocab_size\" = 0: expected a positive integer"},
      {"heads_0", {{"num_attention_heads", 0}},
       "config.json: \"num_attention_heads\" = 0: expected a positive integer"},
      {"layers_-1", {{"num_hidden_layers", -1}},
       "config.json: \"num_hidden_layers\" = -1: expected a positive integer"},
      {"6_heads", {{"hidden_size", 64}, {"num_attention_heads", 6}, {"num_key_value_heads", 6}, {"head_dim", nullptr}},
       "config.json: hidden_size 64 is not divisible by num_attention_heads 6 (and config.json has no \"head_dim\")"},
      {"kv_heads", {{"num_key_value_heads", 3}},
       "config.json: \"num_key_value_heads\" = 3: expected a divisor of \"num_attention_heads\" = 4"},
      {"top_k", {{"num_experts_per_tok", 9}}, "config.json: \"num_experts_per_tok\" = 9: exceeds num_experts 8"},
      // Every key within its limit, ~2.6e16 parameters: more than any machine's memory.
      {"memory", {{"hidden_size", 1 << 20}, {"moe_intermediate_size", 1 << 20}, {"num_hidden_layers", 1000}},
       "config.json: the model has "},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.name));
    nlohmann::json config = base;
    config.merge_patch(c.edit);
    fs::create_directories(dir / c.name);
    std::ofstream(dir / c.name / "config.json") << config.dump(2);
    const Outcome o = qerl_model("init --config " + quoted(dir / c.name / "config.json") + " --out " +
                                     quoted(dir / c.name / "out"),
                                 dir);
    check_bad_input(o, {c.message});
    CHECK(!fs::exists(dir / c.name / "out"));
  }
  // The unedited config builds and saves a model.
  fs::create_directories(dir / "valid");
  std::ofstream(dir / "valid" / "config.json") << base.dump(2);
  const Outcome o = qerl_model("init --config " + quoted(dir / "valid" / "config.json") + " --out " +
                                   quoted(dir / "valid" / "out"),
                               dir);
  INFO(o.err);
  CHECK(o.status == 0);
  CHECK(fs::exists(dir / "valid" / "out" / "model.safetensors"));
}

TEST_CASE("qerl-model logits: at most max_position_embeddings tokens (512 for tiny-moe)") {
  const fs::path dir = qerl::test::scratch_dir("qerl_model_test", "positions");
  REQUIRE(nlohmann::json::parse(slurp(tiny_moe() / "config.json")).at("max_position_embeddings") == 512);
  const std::string model = quoted(tiny_moe());
  const Outcome fits =
      qerl_model("logits " + model + " --tokens " + token_list(512, 257, 5) + " --out " + quoted(dir / "512.st"), dir);
  INFO(fits.err);
  CHECK(fits.status == 0);
  CHECK(qerl::test::read_tensors(dir / "512.st").at("logits").shape == std::vector<int64_t>{512, 257});
  const Outcome over =
      qerl_model("logits " + model + " --tokens " + token_list(513, 257, 6) + " --out " + quoted(dir / "513.st"), dir);
  check_bad_input(over, {"--tokens: 513 tokens exceed max_position_embeddings 512 of ", "config.json"});
  CHECK(!fs::exists(dir / "513.st"));
}

TEST_CASE("qerl-model logits: NaN logits are an error naming the weight that holds a NaN, not a result") {
  const fs::path dir = qerl::test::scratch_dir("qerl_model_test", "nan");
  fs::copy(tiny_moe(), dir / "model", fs::copy_options::recursive);
  const std::string tokens = " --tokens " + token_list(16, 257, 7);

  // The intact copy scores: finite logits.
  const Outcome clean =
      qerl_model("logits " + quoted(dir / "model") + tokens + " --out " + quoted(dir / "clean.st"), dir);
  INFO(clean.err);
  REQUIRE(clean.status == 0);
  for (float v : qerl::test::f32_values(qerl::test::read_tensors(dir / "clean.st").at("logits")))
    REQUIRE(std::isfinite(v));

  // One NaN at a seeded position of an attention projection poisons every later position.
  const std::string tensor = "model.layers.1.self_attn.o_proj.weight";
  std::mt19937_64 rng(8);
  const int64_t index = std::uniform_int_distribution<int64_t>(0, 128 * 128 - 1)(rng);
  qerl::test::overwrite_f32(dir / "model" / "model.safetensors", tensor, index,
                            std::numeric_limits<float>::quiet_NaN());
  const Outcome nan = qerl_model("logits " + quoted(dir / "model") + tokens + " --out " + quoted(dir / "nan.st"), dir);
  check_bad_input(nan, {"tensor logits: ", " values are NaN or infinite", "first tensor " + tensor + ": 1 of 16384"});
  CHECK(!fs::exists(dir / "nan.st"));
}
