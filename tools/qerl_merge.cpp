// qerl-merge: folds a PEFT LoRA adapter into its base model and writes a
// plain HF folder that transformers and qerl load without PEFT: every
// adapted Linear gets W' = W + (lora_alpha / r) B A, the delta computed in
// float32 from the stored W, A, B and rounded once into the output dtype;
// every other file of the base folder (tokenizer, generation config) is
// copied unchanged. A NaN or infinity in the adapter, the base or a merged
// weight (a delta beyond the output dtype's range) is an error naming the
// tensor: nothing is written then.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <system_error>

#include <torch/types.h>

#include "common/error.hpp"
#include "models/nn/causal_lm.hpp"
#include "models/nn/linear.hpp"
#include "models/nn/model_config.hpp"
#include "models/nn/non_finite.hpp"
#include "models/nn/weights.hpp"
#include "models/quant/compressed_tensors.hpp"
#include "models/quant/peft_adapter.hpp"
#include "tools/hf_folder.hpp"
#include "tools/tool_errors.hpp"

namespace fs = std::filesystem;
using namespace qerl;

namespace {

struct Options {
  std::string base_dir;
  std::string adapter_dir;
  std::string out_dir;
  std::string dtype;  // "" = the base config's dtype
};

std::optional<torch::ScalarType> parse_dtype(const std::string& text) {
  if (text.empty()) return std::nullopt;
  if (text == "bf16") return torch::kBFloat16;
  if (text == "fp16") return torch::kHalf;
  if (text == "fp32") return torch::kFloat32;
  throw Error("--dtype: unknown dtype \"" + text + "\" (known: bf16, fp16, fp32)");
}

// The base model, dense, in its config's dtype on CPU, eval mode. A
// compressed-tensors folder (qerl-quantize's output, a QeRL LoRA run's frozen
// base) loads with its quantized Linears dequantized: the merge then folds the
// adapter into the very weights it was trained against.
models::CausalLM load_base(const fs::path& dir) {
  models::LoadedModel loaded = models::load_model_folder(dir);
  if (const auto finding = models::find_non_finite_parameter(*loaded.lm))
    throw Error(dir.string() + ": " + *finding +
                (loaded.quantization ? " (dequantized from its stored codes)" : ""));
  return loaded.lm;
}

struct MergeSummary {
  int64_t modules = 0;
  int64_t weights = 0;   // elements of the merged weight matrices
  int64_t adapter = 0;   // elements of A and B
  double max_delta = 0;  // max |scale * B A| over all modules
};

// Replaces the weight of every adapted Linear by (W + scale * B A) in
// `dtype`; the other parameters keep theirs (the caller casts them).
// Checks every module's shapes before changing any; a merged weight that is
// not finite in `dtype` is an error (the caller then writes nothing).
MergeSummary merge_adapter(models::CausalLMImpl& lm, const models::PeftAdapter& adapter, torch::ScalarType dtype,
                           const std::string& adapter_dir) {
  std::map<std::string, models::LinearImpl*> linears;
  std::map<std::string, bool> modules;  // every module name -> is a Linear
  for (const auto& item : lm.named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    auto* linear = item.value()->as<models::LinearImpl>();
    modules[item.key()] = linear != nullptr;
    if (linear != nullptr) linears[item.key()] = linear;
  }
  const std::string suffix_a = ".lora_A.weight", suffix_b = ".lora_B.weight";
  struct Pair {
    models::LinearImpl* linear;
    torch::Tensor a;  // [r, in]
    torch::Tensor b;  // [out, r]
  };
  std::map<std::string, Pair> pairs;
  for (const auto& [name, a] : adapter.tensors) {
    if (name.size() < suffix_a.size() || name.compare(name.size() - suffix_a.size(), suffix_a.size(), suffix_a) != 0)
      continue;
    const std::string module = name.substr(0, name.size() - suffix_a.size());
    const torch::Tensor& b = adapter.tensors.at(module + suffix_b);
    const auto found = modules.find(module);
    if (found == modules.end())
      throw Error(adapter_dir + ": module " + module + " of the adapter is not in the base model");
    if (!found->second) throw Error(adapter_dir + ": module " + module + " of the adapter is not a Linear in the base model");
    models::LinearImpl* linear = linears.at(module);
    if (a.size(1) != linear->in_features() || b.size(0) != linear->out_features())
      throw Error(adapter_dir + ": module " + module + ": lora_B @ lora_A is [" + std::to_string(b.size(0)) + ", " +
                  std::to_string(a.size(1)) + "], the base Linear's weight is [" +
                  std::to_string(linear->out_features()) + ", " + std::to_string(linear->in_features()) + "]");
    pairs[module] = {linear, a, b};
  }

  torch::NoGradGuard no_grad;
  const double scale = adapter.config.alpha / static_cast<double>(adapter.config.rank);
  MergeSummary summary;
  for (auto& [module, pair] : pairs) {
    // delta: [out, r] @ [r, in] float32, as PEFT's get_delta_weight: (B @ A) * scale.
    const torch::Tensor delta = torch::matmul(pair.b.to(torch::kFloat32), pair.a.to(torch::kFloat32)) * scale;
    torch::Tensor& weight = pair.linear->weight;
    const torch::Tensor merged = (weight.to(torch::kFloat32) + delta.to(weight.device())).to(dtype);
    if (const auto finding = models::non_finite_values(module + ".weight", merged))
      throw Error(adapter_dir + ": module " + module + ": the merged weight W + (lora_alpha / r) B A overflows " +
                  models::dtype_name(dtype) + " (" + *finding + ")");
    weight.set_data(merged);
    ++summary.modules;
    summary.weights += weight.numel();
    summary.adapter += pair.a.numel() + pair.b.numel();
    summary.max_delta = std::max(summary.max_delta, delta.abs().max().item<double>());
  }
  return summary;
}

int run(const Options& opt) {
  const std::optional<torch::ScalarType> dtype = parse_dtype(opt.dtype);
  const fs::path base = opt.base_dir, out = opt.out_dir;
  tools::check_output_folder(base, out, "BASE_DIR");
  const models::PeftAdapter adapter = models::read_peft_adapter(opt.adapter_dir);
  models::CausalLM lm = load_base(base);
  const torch::ScalarType out_dtype = dtype.value_or(lm->dtype());

  const MergeSummary summary = merge_adapter(*lm, adapter, out_dtype, opt.adapter_dir);
  lm->to(out_dtype);  // the merged weights are already in out_dtype: a no-op for them
  if (const auto finding = models::find_non_finite_parameter(*lm))  // a base value beyond out_dtype's range
    throw Error(opt.base_dir + ": " + *finding + " once cast to " + models::dtype_name(out_dtype));
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw Error(opt.out_dir + ": cannot create: " + ec.message());
  models::save_causal_lm(out, *lm);
  const int64_t copied_files = tools::copy_other_files(base, out);

  std::cout << "qerl-merge " << opt.base_dir << " + " << opt.adapter_dir << " -> " << opt.out_dir << ": "
            << summary.modules << " modules merged (" << summary.weights << " weight parameters, " << summary.adapter
            << " adapter parameters, r = " << adapter.config.rank << ", alpha = " << adapter.config.alpha
            << "), max |delta| = " << summary.max_delta << ", dtype " << models::dtype_name(out_dtype) << "; "
            << copied_files << " other files copied\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "qerl-merge: fold a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors, plain LoRA)\n"
      "into its base model: W' = W + (lora_alpha / r) * B @ A for every adapted Linear, computed in float32\n"
      "and rounded once into the output dtype. OUT_DIR gets config.json, the merged safetensors and the base\n"
      "folder's other files (tokenizer, generation config); transformers and qerl load it without PEFT."};
  Options opt;
  app.add_option("BASE_DIR", opt.base_dir, "HF checkpoint folder of the base model")->required();
  app.add_option("ADAPTER_DIR", opt.adapter_dir, "PEFT adapter folder (save_pretrained's layout)")->required();
  app.add_option("OUT_DIR", opt.out_dir, "new folder for the merged model (absent or empty)")->required();
  app.add_option("--dtype", opt.dtype, "bf16 | fp16 | fp32 (default: the base config's dtype)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return tools::report_errors("qerl-merge", [&] { return run(opt); });
}
