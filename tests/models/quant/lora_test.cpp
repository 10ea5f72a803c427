// LoRA adapters on tiny random MoEs: a fresh adapter (B = 0) changes
// nothing; with random A and B the model equals one whose weights are
// W + (alpha / r) B A (merged by hand); gradients reach only A and B when
// the base is frozen; adapters over a packed NVFP4 base add to the
// dequantized weights; tensors() / load() round-trip and reject bad input;
// PEFT adapter folders round-trip bit for bit (target lists and "re:"
// patterns selecting the same modules) and every folder qerl cannot apply
// exactly (NaN values, tensors on modules target_modules does not select
// by PEFT's rules) is a one-line error naming the file and key.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>

#include "common/error.hpp"
#include "models/io/safetensors.hpp"
#include "models/quant/lora.hpp"
#include "models/quant/peft_adapter.hpp"
#include "models/quant/quantize_model.hpp"
#include "tests/models/nn/tiny_model.hpp"

using namespace qerl;
using namespace qerl::models;

namespace {

torch::Tensor logits_for(CausalLMImpl& lm, const torch::Tensor& ids) {
  ForwardArgs args;
  args.input_ids = ids;
  return lm.forward(args).logits;
}

// Random B (A is already random) so that the adapters do something.
void randomize(LoraAdapters& lora, uint64_t seed) {
  torch::manual_seed(seed);
  auto tensors = lora.tensors();
  for (auto& [name, t] : tensors) t = torch::randn(t.sizes()) * 0.1;
  lora.load(tensors);
}

}  // namespace

TEST_CASE("LoRA: fresh adapters change nothing; trained ones equal merged weights W + scale * B A") {
  auto lm = testing::tiny_model("qwen3_moe", /*seed=*/8);
  auto merged = testing::tiny_model("qwen3_moe", /*seed=*/8);
  const auto ids = torch::randint(3, 97, {2, 6}, torch::kLong);
  const auto before = logits_for(*lm, ids).detach();
  LoraConfig config;
  config.rank = 4;
  config.alpha = 8;
  LoraAdapters lora(*lm, config, /*seed=*/3);
  // Default targets: 3 layers x (4 attention projections + 6 experts x 3), not the routers.
  CHECK(lora.num_adapters() == 3 * (4 + 6 * 3));
  CHECK(torch::equal(logits_for(*lm, ids).detach(), before));

  randomize(lora, 11);
  const auto tensors = lora.tensors();
  {
    torch::NoGradGuard no_grad;
    for (auto& item : merged->named_modules("", false)) {
      auto* linear = item.value()->as<LinearImpl>();
      const auto a = tensors.find(item.key() + ".lora_A.weight");
      if (linear == nullptr || a == tensors.end()) continue;
      const auto& b = tensors.at(item.key() + ".lora_B.weight");
      linear->weight.add_(torch::matmul(b, a->second) * lora.scale());
    }
  }
  const auto adapted = logits_for(*lm, ids);
  CHECK_FALSE(torch::allclose(adapted, before, 1e-4, 1e-4));
  CHECK(torch::allclose(adapted, logits_for(*merged, ids), 1e-4, 1e-5));
}

TEST_CASE("LoRA on a frozen packed base: gradients reach only the adapters; the base is the dequantized one") {
  auto lm = testing::tiny_model("qwen3_moe", /*seed=*/9);
  QuantSpec spec;
  spec.scheme = QuantScheme::nvfp4;
  PackedBase base(*lm, spec);
  for (auto& p : lm->parameters()) p.requires_grad_(false);
  LoraConfig config;
  config.rank = 2;
  LoraAdapters lora(*lm, config, /*seed=*/4);
  randomize(lora, 12);
  const auto ids = torch::randint(3, 97, {2, 5}, torch::kLong);
  logits_for(*lm, ids).square().sum().backward();
  for (const auto& p : lm->parameters()) CHECK_FALSE(p.grad().defined());
  double grads = 0;
  for (const auto& t : lora.parameters()) grads += t.grad().defined() ? t.grad().abs().sum().item<double>() : 0.0;
  CHECK(grads > 0);
  auto& q = *lm->model->layers[1]->as<DecoderLayerImpl>()->self_attn->q_proj;
  const auto x = torch::randn({3, q.in_features()});
  const auto& t = lora.tensors();
  const auto a = t.at("model.layers.1.self_attn.q_proj.lora_A.weight");
  const auto b = t.at("model.layers.1.self_attn.q_proj.lora_B.weight");
  torch::NoGradGuard no_grad;
  const auto want = torch::matmul(x, q.effective_weight().t()) + torch::matmul(torch::matmul(x, a.t()), b.t()) * lora.scale();
  CHECK(torch::allclose(q.forward(x), want, 1e-5, 1e-6));
  CHECK_FALSE(torch::equal(q.effective_weight(), q.weight));  // the base really is the quantized one
}

TEST_CASE("LoRA: tensors round-trip; a missing or mis-shaped tensor and an empty target list are errors") {
  auto lm = testing::tiny_model("qwen3_moe", /*seed=*/10);
  LoraConfig config;
  config.rank = 3;
  config.target_modules = {"re:.*self_attn\\.(q|v)_proj$"};
  LoraAdapters lora(*lm, config, 5);
  CHECK(lora.num_adapters() == 3 * 2);
  randomize(lora, 13);
  const auto saved = lora.tensors();
  auto other = testing::tiny_model("qwen3_moe", /*seed=*/10);
  LoraAdapters copy(*other, config, 6);
  copy.load(saved);
  for (const auto& [name, t] : copy.tensors()) CHECK(torch::equal(t, saved.at(name)));
  auto missing = saved;
  missing.erase(missing.begin());
  CHECK_THROWS_AS(copy.load(missing), qerl::Error);
  auto wrong = saved;
  wrong.begin()->second = torch::zeros({1, 1});
  CHECK_THROWS_AS(copy.load(wrong), qerl::Error);
  config.target_modules = {"nothing_like_this"};
  CHECK_THROWS_AS(LoraAdapters(*lm, config, 1), qerl::Error);
}

namespace {

// An empty folder <tmp>/qerl_peft_<pid>/<name>.
std::filesystem::path peft_test_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("qerl_peft_" + std::to_string(::getpid())) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string file_text(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("PEFT adapter folders round-trip: tensors bit for bit, config, and targets that select the same modules") {
  for (const std::vector<std::string>& targets :
       {std::vector<std::string>{"q_proj", "experts.3.down_proj"},
        std::vector<std::string>{"re:.*self_attn\\.(q|v)_proj$", "up_proj", "re:model\\.layers\\.2\\.mlp\\.experts"}}) {
    CAPTURE(targets.front());
    auto lm = testing::tiny_model("qwen3_moe", /*seed=*/14);
    LoraConfig config;
    config.rank = 3;
    config.alpha = 6.5;
    config.dropout = 0.1;
    config.target_modules = targets;
    LoraAdapters lora(*lm, config, /*seed=*/7);
    randomize(lora, 15);
    const auto dir = peft_test_dir("round_trip");
    write_peft_adapter(dir, config, lora.tensors(), "org/base-model");

    // PEFT's names on disk, PEFT's fields in the config.
    const auto stored = read_safetensors(dir / "adapter_model.safetensors");
    CHECK(stored.metadata.at("format") == "pt");
    for (const auto& [key, t] : stored.tensors) CHECK(key.rfind("base_model.model.model.layers.", 0) == 0);
    const auto json = nlohmann::json::parse(file_text(dir / "adapter_config.json"));
    CHECK(json.at("peft_type") == "LORA");
    CHECK(json.at("r") == 3);
    CHECK(json.at("lora_alpha") == 6.5);
    CHECK(json.at("bias") == "none");
    CHECK(json.at("use_dora") == false);
    CHECK(json.at("target_modules").is_string() == (targets.front().rfind("re:", 0) == 0));

    const PeftAdapter read = read_peft_adapter(dir);
    CHECK(read.config.rank == 3);
    CHECK(read.config.alpha == 6.5);
    CHECK(read.config.dropout == 0.1);
    CHECK(read.base_model == "org/base-model");
    const auto saved = lora.tensors();
    REQUIRE(read.tensors.size() == saved.size());
    for (const auto& [name, t] : saved) {
      CAPTURE(name);
      REQUIRE(read.tensors.count(name) == 1);
      CHECK((read.tensors.at(name).scalar_type() == torch::kFloat));
      CHECK(torch::equal(read.tensors.at(name), t));
    }
    // The targets read back select the same modules: the adapters load into them.
    auto other = testing::tiny_model("qwen3_moe", /*seed=*/14);
    LoraAdapters again(*other, read.config, /*seed=*/8);
    CHECK(again.num_adapters() == lora.num_adapters());
    again.load(read.tensors);
    if (targets.front() == "q_proj") CHECK(read.config.target_modules == targets);
  }
}

TEST_CASE("PEFT target_modules: a list for leaf names, one regex otherwise; a back-reference cannot be joined") {
  CHECK(peft_target_modules({"q_proj", "v_proj"}) == nlohmann::json::array({"q_proj", "v_proj"}));
  CHECK(peft_target_modules({"re:.*\\.q_proj$"}) == ".*\\.q_proj$");
  CHECK(peft_target_modules({"re:model\\.layers\\.1"}) == "(?:model\\.layers\\.1).*");
  CHECK(peft_target_modules({"re:.*q_proj$", "v.proj"}) == "(?:.*q_proj$)|(?:(?:.*\\.)?v\\.proj)");
  CHECK_THROWS_AS(peft_target_modules({"re:(a)\\1", "q_proj"}), qerl::Error);
  CHECK_THROWS_AS(peft_target_modules({}), qerl::Error);
}

TEST_CASE("read_peft_adapter: each folder qerl cannot apply exactly is one line naming the file and key") {
  auto lm = testing::tiny_model("qwen3_moe", /*seed=*/16);
  LoraConfig config;
  config.rank = 2;
  config.target_modules = {"q_proj"};
  LoraAdapters lora(*lm, config, /*seed=*/9);
  randomize(lora, 17);
  const auto good = lora.tensors();
  const std::string a_name = "model.layers.0.self_attn.q_proj.lora_A.weight";
  const std::string b_name = "model.layers.0.self_attn.q_proj.lora_B.weight";

  using Edit = std::function<void(nlohmann::json&, TensorMap&)>;
  const auto expect_error = [&](const std::string& what, const Edit& edit, const std::string& message) {
    CAPTURE(what);
    const auto dir = peft_test_dir("bad");
    write_peft_adapter(dir, config, good, "");
    auto json = nlohmann::json::parse(file_text(dir / "adapter_config.json"));
    TensorMap stored = read_safetensors(dir / "adapter_model.safetensors").tensors;
    for (auto& [key, t] : stored) t = t.clone();  // unmap before rewriting the file
    edit(json, stored);
    std::ofstream(dir / "adapter_config.json") << json.dump();
    write_safetensors(dir / "adapter_model.safetensors", stored);
    try {
      read_peft_adapter(dir);
      FAIL_CHECK("no error");
    } catch (const qerl::Error& e) {
      const std::string text = e.what();
      CHECK(text.find(message) != std::string::npos);
      CHECK(text.find('\n') == std::string::npos);
      CHECK(text.find(dir.string()) == 0);
    }
  };
  const auto key = [](const std::string& name) { return "base_model.model." + name; };
  expect_error("peft_type", [](auto& j, auto&) { j["peft_type"] = "IA3"; }, "\"peft_type\" is \"IA3\", expected \"LORA\"");
  expect_error("DoRA", [](auto& j, auto&) { j["use_dora"] = true; }, "adapter_config.json: \"use_dora\" is true: DoRA");
  expect_error("rsLoRA", [](auto& j, auto&) { j["use_rslora"] = true; }, "\"use_rslora\" is true: rank-stabilized");
  expect_error("bias", [](auto& j, auto&) { j["bias"] = "all"; }, "\"bias\" is \"all\", expected \"none\"");
  expect_error("fan_in_fan_out", [](auto& j, auto&) { j["fan_in_fan_out"] = true; }, "\"fan_in_fan_out\" is true");
  expect_error("rank_pattern", [](auto& j, auto&) { j["rank_pattern"] = {{"q_proj", 4}}; }, "per-module ranks");
  expect_error("fused experts", [](auto& j, auto&) { j["target_parameters"] = {"gate_up_proj"}; },
               "\"target_parameters\" is [\"gate_up_proj\"]");
  expect_error("r", [](auto& j, auto&) { j["r"] = "two"; }, "\"r\" is \"two\", expected a positive integer");
  expect_error("no r", [](auto& j, auto&) { j.erase("r"); }, "\"r\" is missing");
  expect_error("rank", [](auto& j, auto&) { j["r"] = 3; },
               "adapter_model.safetensors: " + a_name + " has shape [2, 32], expected [r, in] with r = 3");
  expect_error("A without B", [&](auto&, auto& t) { t.erase(key(b_name)); }, a_name + " has no " + b_name);
  expect_error("B without A", [&](auto&, auto& t) { t.erase(key(a_name)); }, b_name + " has no " + a_name);
  expect_error("adapter name", [&](auto&, auto& t) {
    t["base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"] = t.at(key(a_name));
    t.erase(key(a_name));
  }, "carries the adapter name \"default\"");
  expect_error("no prefix", [&](auto&, auto& t) {
    t[a_name] = t.at(key(a_name));
    t.erase(key(a_name));
  }, "tensor " + a_name + ": expected base_model.model.<module>.lora_A.weight or .lora_B.weight");
  expect_error("DoRA magnitude", [&](auto&, auto& t) {
    t["base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector"] = torch::ones({32});
  }, "lora_magnitude_vector: expected base_model.model.<module>.lora_A.weight");

  // NaN or infinite values, at seeded positions, name the stored tensor.
  std::mt19937_64 rng(18);
  const auto plant = [&](torch::Tensor& t, float value) {
    t.view(-1)[std::uniform_int_distribution<int64_t>(0, t.numel() - 1)(rng)] = value;
  };
  expect_error("NaN in A", [&](auto&, auto& t) { plant(t.at(key(a_name)), std::nanf("")); },
               "adapter_model.safetensors: tensor " + key(a_name) + ": 1 of 64 values are NaN or infinite");
  expect_error("inf in B", [&](auto&, auto& t) {
    plant(t.at(key("model.layers.2.self_attn.q_proj.lora_B.weight")), -INFINITY);
    plant(t.at(key("model.layers.2.self_attn.q_proj.lora_B.weight")), INFINITY);
  }, "tensor " + key("model.layers.2.self_attn.q_proj.lora_B.weight") + ": ");
  // Modules target_modules does not select (PEFT's suffix / re.fullmatch rules).
  const std::string all_q = "model.layers.0.self_attn.q_proj, model.layers.1.self_attn.q_proj, "
                            "model.layers.2.self_attn.q_proj of adapter_model.safetensors";
  expect_error("other module", [](auto& j, auto&) { j["target_modules"] = {"gate_proj"}; },
               "adapter_config.json: \"target_modules\" is [\"gate_proj\"], which does not select modules " + all_q +
                   " (PEFT would not load their lora_A / lora_B)");
  expect_error("not a dotted suffix", [](auto& j, auto&) { j["target_modules"] = {"_proj"}; }, all_q);
  expect_error("one layer", [](auto& j, auto&) { j["target_modules"] = {"layers.0.self_attn.q_proj", "k_proj"}; },
               "which does not select modules model.layers.1.self_attn.q_proj, model.layers.2.self_attn.q_proj of");
  expect_error("regex prefix", [](auto& j, auto&) { j["target_modules"] = "model\\.layers\\.\\d\\.self_attn"; }, all_q);
  expect_error("regex two layers", [](auto& j, auto&) { j["target_modules"] = ".*layers\\.[01]\\.self_attn\\.q_proj"; },
               "which does not select module model.layers.2.self_attn.q_proj of adapter_model.safetensors (PEFT would "
               "not load its lora_A / lora_B)");

  const auto dir = peft_test_dir("files");
  CHECK_THROWS_WITH_AS(read_peft_adapter(dir), doctest::Contains("adapter_config.json: no such file"), qerl::Error);
  std::ofstream(dir / "adapter_config.json") << "{\"peft_type\": \"LORA\", ";
  CHECK_THROWS_WITH_AS(read_peft_adapter(dir), doctest::Contains("adapter_config.json: bad JSON"), qerl::Error);
  write_peft_adapter(dir, config, good, "");
  std::filesystem::remove(dir / "adapter_model.safetensors");
  CHECK_THROWS_WITH_AS(read_peft_adapter(dir), doctest::Contains("adapter_model.safetensors: no such file"),
                       qerl::Error);
}

TEST_CASE("read_peft_adapter accepts every target_modules that selects each adapted module, as PEFT matches") {
  auto lm = testing::tiny_model("qwen3_moe", /*seed=*/19);
  LoraConfig config;
  config.rank = 2;
  config.target_modules = {"q_proj", "experts.1.up_proj"};
  LoraAdapters lora(*lm, config, /*seed=*/10);
  randomize(lora, 20);
  const auto dir = peft_test_dir("targets");
  write_peft_adapter(dir, config, lora.tensors(), "");
  auto json = nlohmann::json::parse(file_text(dir / "adapter_config.json"));
  for (const nlohmann::json& targets :
       {nlohmann::json{"q_proj", "up_proj"}, nlohmann::json{"self_attn.q_proj", "mlp.experts.1.up_proj", "v_proj"},
        nlohmann::json(".*\\.(q_proj|experts\\.1\\.up_proj)"), nlohmann::json("all-linear")}) {
    CAPTURE(targets.dump());
    json["target_modules"] = targets;
    std::ofstream(dir / "adapter_config.json") << json.dump();
    const PeftAdapter read = read_peft_adapter(dir);
    CHECK(read.tensors.size() == 2 * 3 * 2);
  }
}
