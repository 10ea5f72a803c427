// qerl-merge end to end, with PEFT 0.21.2 as the judge (peft_merge_peer.py
// run with QERL_PYTHON): qerl writes a random adapter for tiny-moe (seeded
// A, random non-zero B, every attention projection and expert) with
// write_peft_adapter, qerl-merge folds it, and PEFT's merge_and_unload of
// the same folder on transformers' model must give the same tensors
// (fp32: to 1e-6 relative; bf16: one rounding of the fp32 merge) and the
// same logits, in transformers and in qerl's model of the merged folder.
// PEFT's own save_pretrained folder goes through qerl-merge the same way.
// Bad input exits 2 with one line and writes nothing: among it NaN or
// infinite adapter and base values, merged weights beyond the output dtype,
// and tensors on modules adapter_config.json's target_modules does not select.
#include <doctest/doctest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "models/io/safetensors.hpp"
#include "models/nn/causal_lm.hpp"
#include "models/nn/weights.hpp"
#include "kernels/quantize_tensor.hpp"
#include "models/quant/lora.hpp"
#include "models/quant/peft_adapter.hpp"

#include "run_tool.hpp"
#include "stored_tensors.hpp"

namespace fs = std::filesystem;
using namespace qerl::test;
namespace models = qerl::models;

namespace {

fs::path tiny_moe() { return fs::path(QERL_SOURCE_DIR) / "assets" / "tiny-moe"; }

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

Outcome merge(const std::string& args, const fs::path& dir) { return run_tool(QERL_MERGE_EXE, args, dir); }

Outcome peer(const std::string& args, const fs::path& dir) {
  return run_tool(std::string("'") + QERL_PYTHON + "' '" + QERL_TOOLS_TEST_DIR + "/peft_merge_peer.py' " + args, "",
                  dir);
}

int count_lines(const std::string& text) {
  int lines = 0;
  for (char c : text) lines += c == '\n';
  return lines;
}

// LoraAdapters on tiny-moe pick the modules and draw A (seeded); B, zero
// in a fresh adapter, is drawn too so that merging changes the weights.
std::map<std::string, torch::Tensor> random_adapter(const models::LoraConfig& config, uint64_t seed) {
  models::CausalLM lm = models::load_causal_lm(tiny_moe());
  models::LoraAdapters lora(*lm, config, seed);
  auto generator = at::detail::createCPUGenerator(seed + 1000);
  auto tensors = lora.tensors();
  for (auto& [name, t] : tensors)
    if (name.find(".lora_B.") != std::string::npos) t = torch::randn(t.sizes(), generator, torch::kFloat) * 0.1;
  return tensors;
}

// qerl's model of MERGED_DIR on the peer's ids: max |logits - PEFT's logits|.
double qerl_logits_diff(const fs::path& merged, const fs::path& logits_file) {
  const auto saved = models::read_safetensors(logits_file).tensors;
  models::CausalLM lm = models::load_causal_lm(merged, {/*dtype=*/torch::kFloat32});
  models::ForwardArgs args;
  args.input_ids = saved.at("input_ids");
  torch::NoGradGuard no_grad;
  return (lm->forward(args).logits - saved.at("logits")).abs().max().item<double>();
}

// qerl-merge BASE ADAPTER OUT [extra], then the PEFT comparison; returns qerl-merge's stdout.
std::string merge_and_compare(const fs::path& adapter, const fs::path& dir, const std::string& dtype) {
  const fs::path out = dir / ("merged_" + dtype), logits = dir / ("peft_logits_" + dtype + ".safetensors");
  const Outcome m = merge(quoted(tiny_moe()) + " " + quoted(adapter) + " " + quoted(out) +
                              (dtype == "fp32" ? "" : " --dtype " + dtype),
                          dir);
  INFO(m.err);
  REQUIRE(m.status == 0);
  CHECK(count_lines(m.out) == 1);
  const Outcome p = peer("compare " + quoted(tiny_moe()) + " " + quoted(adapter) + " " + quoted(out) + " " +
                             quoted(logits) + " --dtype " + dtype,
                         dir);
  INFO(p.out);
  INFO(p.err);
  REQUIRE(p.status == 0);
  MESSAGE("qerl-merge: " << m.out << "peer: " << p.out);

  // Everything but the weights is the base folder's; config.json's dtype is the output's.
  nlohmann::json config = nlohmann::json::parse(slurp(out / "config.json"));
  CHECK(config.at("dtype") == (dtype == "fp32" ? "float32" : "bfloat16"));
  config["dtype"] = "float32";
  CHECK(config == nlohmann::json::parse(slurp(tiny_moe() / "config.json")));
  for (const char* file : {"tokenizer.json", "tokenizer_config.json", "README.md"}) {
    CAPTURE(file);
    CHECK(slurp(out / file) == slurp(tiny_moe() / file));
  }
  if (dtype == "fp32") {
    const double diff = qerl_logits_diff(out, logits);
    MESSAGE("qerl's model of the merged folder vs PEFT's merged model: max |logits diff| = " << diff);
    CHECK(diff < 1e-4);
  }
  return m.out;
}

}  // namespace

TEST_CASE("qerl-merge: PEFT's merge_and_unload of qerl's adapter folder equals qerl-merge's (fp32 and bf16)") {
  const fs::path dir = scratch_dir("qerl_merge", "qerl_adapter");
  models::LoraConfig config;  // default targets: q/k/v/o and every expert's gate/up/down
  config.rank = 4;
  config.alpha = 12;  // scale 3
  const auto tensors = random_adapter(config, /*seed=*/21);
  CHECK(tensors.size() == 2 * 4 * (4 + 8 * 3));
  models::write_peft_adapter(dir / "adapter", config, tensors, tiny_moe().string());

  const std::string fp32 = merge_and_compare(dir / "adapter", dir, "fp32");
  CHECK(fp32.find(": 112 modules merged") != std::string::npos);
  merge_and_compare(dir / "adapter", dir, "bf16");
}

TEST_CASE("qerl-merge: a \"re:\" target list is written as one regex that PEFT's matcher reads the same way") {
  const fs::path dir = scratch_dir("qerl_merge", "regex_adapter");
  models::LoraConfig config;
  config.rank = 2;
  config.alpha = 5;
  config.target_modules = {"re:model\\.layers\\.[02]\\.self_attn\\.(q|k)_proj$", "down_proj"};
  const auto tensors = random_adapter(config, /*seed=*/22);
  CHECK(tensors.size() == 2 * (2 * 2 + 4 * 8));
  models::write_peft_adapter(dir / "adapter", config, tensors, tiny_moe().string());
  CHECK(nlohmann::json::parse(slurp(dir / "adapter" / "adapter_config.json")).at("target_modules").is_string());
  const std::string out = merge_and_compare(dir / "adapter", dir, "fp32");
  CHECK(out.find(": 36 modules merged") != std::string::npos);
}

TEST_CASE("qerl-merge reads the folder PEFT's save_pretrained writes and merges it as PEFT does") {
  const fs::path dir = scratch_dir("qerl_merge", "peft_adapter");
  const Outcome made = peer("make " + quoted(tiny_moe()) + " " + quoted(dir / "adapter") + " 7", dir);
  INFO(made.out);
  REQUIRE(made.status == 0);
  const models::PeftAdapter adapter = models::read_peft_adapter(dir / "adapter");
  CHECK(adapter.config.rank == 8);
  CHECK(adapter.config.alpha == 16);
  CHECK(adapter.config.dropout == doctest::Approx(0.05));
  CHECK(adapter.tensors.size() == 2 * 4 * 3);
  CHECK(adapter.base_model == tiny_moe().string());
  const std::string out = merge_and_compare(dir / "adapter", dir, "fp32");
  CHECK(out.find(": 12 modules merged") != std::string::npos);
}

TEST_CASE("qerl-merge onto a qerl-quantize NVFP4 folder folds the adapter into the dequantized codes") {
  const fs::path dir = scratch_dir("qerl_merge", "quantized_base");
  const Outcome q = run_tool(QERL_QUANTIZE_EXE, quoted(tiny_moe()) + " " + quoted(dir / "nvfp4") + " --scheme nvfp4a16",
                             dir);
  INFO(q.err);
  REQUIRE(q.status == 0);
  models::LoraConfig config;
  config.rank = 4;
  config.alpha = 8;  // scale 2
  config.target_modules = {"q_proj", "down_proj"};
  const auto tensors = random_adapter(config, /*seed=*/24);
  models::write_peft_adapter(dir / "adapter", config, tensors, (dir / "nvfp4").string());
  const Outcome m = merge(quoted(dir / "nvfp4") + " " + quoted(dir / "adapter") + " " + quoted(dir / "merged"), dir);
  INFO(m.err);
  REQUIRE(m.status == 0);
  CHECK(m.out.find(": 36 modules merged") != std::string::npos);

  // The merged folder is a dense HF folder: no quantization_config, no codes.
  CHECK(!nlohmann::json::parse(slurp(dir / "merged" / "config.json")).contains("quantization_config"));
  const auto merged = models::read_safetensors(dir / "merged" / "model.safetensors").tensors;
  const auto stored = models::read_safetensors(dir / "nvfp4" / "model.safetensors").tensors;
  const auto dense = models::read_safetensors(tiny_moe() / "model.safetensors").tensors;
  for (const auto& [name, t] : merged) CHECK(name.find("weight_packed") == std::string::npos);

  // Reference: the codes qerl-quantize stored, decoded by the kernel, plus
  // scale * B A for the adapted modules; the rest as stored.
  int64_t checked_adapted = 0, checked_plain = 0;
  for (const auto& [name, weight] : merged) {
    const std::string suffix = ".weight";
    if (name.size() <= suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    const std::string module = name.substr(0, name.size() - suffix.size());
    CAPTURE(module);
    if (stored.count(module + ".weight_packed") == 0) {
      CHECK(torch::equal(weight, stored.at(name)));  // not quantized: the base's own weight
      continue;
    }
    torch::Tensor expect = qerl::kernels::nvfp4_dequantize(
        stored.at(module + ".weight_packed"), stored.at(module + ".weight_scale"),
        stored.at(module + ".weight_global_scale").reshape({1}), torch::kFloat32);
    const auto a = tensors.find(module + ".lora_A.weight");
    if (a != tensors.end()) {
      expect = expect + torch::matmul(tensors.at(module + ".lora_B.weight"), a->second) * 2.0;
      ++checked_adapted;
    } else {
      ++checked_plain;
    }
    CHECK((weight - expect).abs().max().item<double>() <= 1e-6);
    CHECK(!torch::equal(weight, dense.at(name)));  // the codes, not the bf16 weights
  }
  CHECK(checked_adapted == 36);
  CHECK(checked_plain > 0);
}

TEST_CASE("qerl-merge rejects bad input with one line and exit 2, writing nothing") {
  const fs::path dir = scratch_dir("qerl_merge", "bad_input");
  const std::string base = quoted(tiny_moe());
  const auto expect_error = [&](const std::string& args, const std::string& message) {
    CAPTURE(args);
    const Outcome o = merge(args, dir);
    CHECK(o.status == 2);
    CHECK(o.err.rfind("qerl-merge: ", 0) == 0);
    CHECK(o.err.find(message) != std::string::npos);
    CHECK(count_lines(o.err) == 1);
    CHECK(o.err.find("terminate") == std::string::npos);
    CHECK(!fs::exists(dir / "out"));
  };
  models::LoraConfig config;
  config.rank = 2;
  config.alpha = 4;
  config.target_modules = {"q_proj"};
  const auto good = random_adapter(config, /*seed=*/23);
  models::write_peft_adapter(dir / "good", config, good, "");
  const std::string out = quoted(dir / "out");

  fs::create_directories(dir / "empty");
  expect_error(base + " " + quoted(dir / "empty") + " " + out, "adapter_config.json: no such file");

  auto shapes = good;  // lora_A of q_proj with 64 inputs; the base's q_proj has 128
  shapes["model.layers.1.self_attn.q_proj.lora_A.weight"] = torch::randn({2, 64});
  models::write_peft_adapter(dir / "shape", config, shapes, "");
  expect_error(base + " " + quoted(dir / "shape") + " " + out,
               "module model.layers.1.self_attn.q_proj: lora_B @ lora_A is [128, 64], the base Linear's weight is "
               "[128, 128]");

  auto extra = good;
  extra["model.layers.9.self_attn.q_proj.lora_A.weight"] = torch::randn({2, 128});
  extra["model.layers.9.self_attn.q_proj.lora_B.weight"] = torch::randn({128, 2});
  models::write_peft_adapter(dir / "extra", config, extra, "");
  expect_error(base + " " + quoted(dir / "extra") + " " + out,
               "module model.layers.9.self_attn.q_proj of the adapter is not in the base model");

  auto norm = good;
  norm["model.layers.0.mlp.lora_A.weight"] = torch::randn({2, 128});
  norm["model.layers.0.mlp.lora_B.weight"] = torch::randn({128, 2});
  models::LoraConfig with_mlp = config;  // targets it, else the target check would name it first
  with_mlp.target_modules = {"q_proj", "mlp"};
  models::write_peft_adapter(dir / "norm", with_mlp, norm, "");
  expect_error(base + " " + quoted(dir / "norm") + " " + out,
               "module model.layers.0.mlp of the adapter is not a Linear in the base model");

  fs::create_directories(dir / "dora");
  fs::copy(dir / "good", dir / "dora", fs::copy_options::recursive);
  nlohmann::json dora = nlohmann::json::parse(slurp(dir / "dora" / "adapter_config.json"));
  dora["use_dora"] = true;
  std::ofstream(dir / "dora" / "adapter_config.json") << dora.dump();
  expect_error(base + " " + quoted(dir / "dora") + " " + out, "\"use_dora\" is true: DoRA");

  // The repro: an all-NaN lora_A once merged NaN into every logit.
  // Copies own their tensors: `good` must stay as written.
  const auto copy_of = [](const std::map<std::string, torch::Tensor>& tensors) {
    std::map<std::string, torch::Tensor> out;
    for (const auto& [name, t] : tensors) out[name] = t.clone();
    return out;
  };
  auto nan = copy_of(good);
  nan["model.layers.2.self_attn.q_proj.lora_A.weight"].fill_(std::numeric_limits<float>::quiet_NaN());
  models::write_peft_adapter(dir / "nan", config, nan, "");
  expect_error(base + " " + quoted(dir / "nan") + " " + out,
               "adapter_model.safetensors: tensor base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight: 256 "
               "of 256 values are NaN or infinite");
  auto inf = copy_of(good);  // one infinity at a seeded position of a lora_B
  std::mt19937_64 rng(25);
  inf["model.layers.1.self_attn.q_proj.lora_B.weight"].view(-1)[std::uniform_int_distribution<int64_t>(0, 255)(rng)] =
      std::numeric_limits<float>::infinity();
  models::write_peft_adapter(dir / "inf", config, inf, "");
  expect_error(base + " " + quoted(dir / "inf") + " " + out,
               "tensor base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight: 1 of 256 values are NaN");

  // The repro: q_proj tensors under target_modules ["gate_proj"].
  models::LoraConfig gate_only = config;
  gate_only.target_modules = {"gate_proj"};
  models::write_peft_adapter(dir / "untargeted", gate_only, good, "");
  expect_error(base + " " + quoted(dir / "untargeted") + " " + out,
               "adapter_config.json: \"target_modules\" is [\"gate_proj\"], which does not select modules "
               "model.layers.0.self_attn.q_proj, model.layers.1.self_attn.q_proj, model.layers.2.self_attn.q_proj and "
               "1 more of adapter_model.safetensors");

  // A NaN in the base, at a seeded position of one expert's weight.
  fs::copy(tiny_moe(), dir / "nan_base", fs::copy_options::recursive);
  const std::string expert = "model.layers.3.mlp.experts.5.down_proj.weight";
  overwrite_f32(dir / "nan_base" / "model.safetensors", expert,
                std::uniform_int_distribution<int64_t>(0, 128 * 128 - 1)(rng), std::numeric_limits<float>::quiet_NaN());
  expect_error(quoted(dir / "nan_base") + " " + quoted(dir / "good") + " " + out,
               "nan_base: tensor " + expert + ": 1 of 16384 values are NaN or infinite");

  // Finite in float32, infinite in float16: a huge delta, a huge base value.
  auto huge = copy_of(good);
  for (auto& [name, t] : huge)
    if (name.find(".lora_B.") != std::string::npos) t = t * 1e7;
  models::write_peft_adapter(dir / "huge", config, huge, "");
  expect_error(base + " " + quoted(dir / "huge") + " " + out + " --dtype fp16",
               "module model.layers.0.self_attn.q_proj: the merged weight W + (lora_alpha / r) B A overflows float16 "
               "(tensor model.layers.0.self_attn.q_proj.weight: ");
  fs::copy(tiny_moe(), dir / "huge_base", fs::copy_options::recursive);
  overwrite_f32(dir / "huge_base" / "model.safetensors", "model.norm.weight", 7, 1e6f);
  expect_error(quoted(dir / "huge_base") + " " + quoted(dir / "good") + " " + out + " --dtype fp16",
               "huge_base: tensor model.norm.weight: 1 of 128 values are NaN or infinite once cast to float16");

  const std::string adapter = quoted(dir / "good");
  expect_error(base + " " + adapter + " " + out + " --dtype int8", "unknown dtype \"int8\"");
  expect_error(base + " " + adapter + " " + base, "OUT_DIR is BASE_DIR");
  expect_error(quoted(dir / "no_such_model") + " " + adapter + " " + out, "no such folder");
  fs::create_directories(dir / "full");
  std::ofstream(dir / "full" / "keep.txt") << "x";
  expect_error(base + " " + adapter + " " + quoted(dir / "full"), "exists and is not empty");
  CHECK(fs::exists(dir / "full" / "keep.txt"));
}
