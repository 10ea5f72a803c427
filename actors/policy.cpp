// Opening the policy and its tokenizer for a stage, and moving parameter
// snapshots between models (see policy.hpp).
#include "actors/policy.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

#include "actors/aqn.hpp"
#include "actors/stage_log.hpp"
#include "common/error.hpp"
#include "dsl/pipeline_spec.hpp"
#include "models/nn/weights.hpp"
#include "models/tokenizer/tokenizer_config.hpp"
#include "runtime/stage.hpp"

namespace qerl::actors {

namespace fs = std::filesystem;

torch::Device stage_device(const runtime::StageContext& context) {
  if (context.devices.empty()) return torch::kCPU;
  return torch::Device(context.devices.front());
}

torch::ScalarType model_dtype(const dsl::PipelineSpec& spec) {
  switch (spec.model.dtype) {
    case dsl::ModelDtype::fp32: return torch::kFloat;
    case dsl::ModelDtype::fp16: return torch::kHalf;
    case dsl::ModelDtype::bf16: break;
  }
  return torch::kBFloat16;
}

double cpu_bf16_matmul_slowdown() {
  static const double slowdown = [] {
    torch::NoGradGuard no_grad;
    // Fixed values: the global random generator stays untouched.
    const torch::Tensor x = torch::linspace(-1, 1, 256 * 256).reshape({256, 256});
    const auto best_seconds = [&](torch::ScalarType type) {
      const torch::Tensor a = x.to(type), b = x.t().contiguous().to(type);
      double best = 1e30;
      for (int i = 0; i < 3; ++i) {
        const auto start = std::chrono::steady_clock::now();
        const torch::Tensor product = torch::mm(a, b);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      return best;
    };
    return best_seconds(torch::kBFloat16) / std::max(best_seconds(torch::kFloat), 1e-9);
  }();
  return slowdown;
}

void warn_if_slow_cpu_bf16(const dsl::PipelineSpec& spec, torch::Device device,
                           const std::shared_ptr<spdlog::logger>& logger) {
  if (!logger || !device.is_cpu() || spec.model.dtype != dsl::ModelDtype::bf16) return;
  static std::atomic<bool> warned{false};
  const double slowdown = cpu_bf16_matmul_slowdown();
  if (slowdown <= 8 || warned.exchange(true)) return;
  char ratio[32];
  std::snprintf(ratio, sizeof ratio, "%.0f", slowdown);
  log_warn(logger, std::string("model.dtype = \"bf16\" on this CPU: LibTorch's bf16 matrix product measured ") + ratio +
                       "x slower than fp32 here (no native bf16 instructions); model.dtype = \"fp32\" runs faster");
}

models::LoadedModel open_policy(const dsl::PipelineSpec& spec, torch::Device device, torch::ScalarType dtype,
                                bool packed_next) {
  models::LoadedModel policy;
  if (spec.model.init == dsl::ModelInit::random) {
    const fs::path config = fs::path(spec.model.path) / "config.json";
    if (!fs::exists(config)) throw Error("model.path '" + spec.model.path + "' has no config.json");
    models::ModelConfig model_config = models::load_model_config(config.string());
    if (model_config.raw.contains("quantization_config"))
      throw Error("model.init = \"random\" with model.path '" + spec.model.path +
                  "', a quantized checkpoint: random init needs a dense config");
    policy.lm = models::CausalLM(model_config);
    models::init_weights(*policy.lm, static_cast<uint64_t>(spec.run.seed));
  } else {
    models::LoadOptions options;
    options.dtype = dtype;
    policy = models::load_model_folder(spec.model.path, options);
  }
  policy.lm->to(packed_next && !policy.quantization ? torch::Device(torch::kCPU) : device, dtype);
  policy.lm->eval();
  return policy;
}

std::unique_ptr<models::PackedBase> open_packed_base(const dsl::PipelineSpec& spec, models::LoadedModel& policy,
                                                     models::Residency residency, torch::Device device) {
  const models::QuantSpec& quant = spec.quantization.quant;
  if (!policy.quantization) {
    std::unique_ptr<models::PackedBase> base;
    if (quant.scheme != models::QuantScheme::none)
      base = std::make_unique<models::PackedBase>(*policy.lm, quant, residency, device);
    policy.lm->to(device);  // what was not packed
    return base;
  }
  const auto& stored = policy.quantization->spec;
  const std::string where = "model.path '" + spec.model.path + "' holds a " + policy.quantization->format +
                            (stored.quantize_inputs ? " W4A4" : " W4A16") + " checkpoint";
  if (quant.scheme != stored.scheme)
    throw Error(where + ": quantization.scheme must be \"" + enum_name(stored.scheme) + "\", got \"" +
                enum_name(quant.scheme) + "\"");
  if (quant.quantize_inputs != stored.quantize_inputs)
    throw Error(where + ": quantization.mode must be \"" + (stored.quantize_inputs ? "w4a4" : "w4a16") +
                "\", got \"" + enum_name(spec.quantization.mode) + "\"");
  models::QuantSpec from_checkpoint = stored;
  from_checkpoint.fuse_scales = quant.fuse_scales;  // for repacks after new weights arrive
  return std::make_unique<models::PackedBase>(*policy.lm, from_checkpoint, policy.packed, residency);
}

models::Residency base_residency(const dsl::AqnSpec& aqn, bool aqn_applies) {
  const bool noise_on_linears =
      aqn_applies && std::find(aqn.layer_types.begin(), aqn.layer_types.end(), dsl::AqnLayerType::linear) !=
                         aqn.layer_types.end();
  return noise_on_linears ? models::Residency::keep_dense : models::Residency::codes_only;
}

std::unique_ptr<models::SamplingEngine> open_sampling_engine(const dsl::PipelineSpec& spec, torch::Device device,
                                                             bool with_aqn,
                                                             const std::shared_ptr<spdlog::logger>& logger) {
  warn_if_slow_cpu_bf16(spec, device, logger);
  models::LoadedModel policy = open_policy(spec, device, model_dtype(spec), /*packed_next=*/true);
  models::EngineParts parts;
  parts.lm = policy.lm;
  const bool noise = with_aqn && spec.aqn.on_rollout();
  parts.base = open_packed_base(spec, policy, base_residency(spec.aqn, noise), device);
  if (parts.base && logger) log_quant_summary(logger, parts.base->summary(), spec.quantization.quant);
  if (noise) {  // on the device: its clean copies are taken now
    parts.noise = std::make_unique<models::WeightNoise>(aqn_noise_targets(spec.aqn), *policy.lm);
    if (logger)
      for (const auto& p : parts.noise->unmatched()) log_warn(logger, "aqn: pattern \"" + p + "\" matches no module");
  }
  if (spec.quantization.train == dsl::QuantTrain::lora)
    parts.lora = std::make_unique<models::LoraAdapters>(*policy.lm, lora_config_of(spec), lora_seed(spec));
  parts.codes_from_updates = spec.quantization.train == dsl::QuantTrain::qat;
  auto engine = models::make_sampling_engine(std::move(parts));
  if (logger) {
    log_info(logger, "sampling weights resident: " + engine->resident_weights().describe());
    log_info(logger, "sampling engine: " + engine->describe());
  }
  return engine;
}

TokenizerInfo open_tokenizer(const dsl::PipelineSpec& spec) {
  const fs::path dir = spec.model.path;
  const fs::path file = spec.model.tokenizer.empty() ? dir / "tokenizer.json" : fs::path(spec.model.tokenizer);
  if (!fs::exists(file)) throw Error("no tokenizer at '" + file.string() + "' (model.tokenizer)");
  TokenizerInfo info{models::Tokenizer::from_file(file), {}, 0};
  const auto config = models::load_model_config((dir / "config.json").string());
  info.eos_token_ids = models::generation_eos_token_ids(dir.string(), config);
  if (fs::exists(dir / "tokenizer_config.json")) {
    const auto special = models::resolve_special_tokens(
        info.tokenizer, models::read_tokenizer_config(dir / "tokenizer_config.json"));
    if (special.eos && std::find(info.eos_token_ids.begin(), info.eos_token_ids.end(), *special.eos) ==
                           info.eos_token_ids.end())
      info.eos_token_ids.push_back(*special.eos);
    if (!config.pad_token_id && special.pad) info.pad_token_id = *special.pad;
  }
  if (info.eos_token_ids.empty())
    throw Error("model '" + spec.model.path + "' names no EOS token (config.json eos_token_id or tokenizer_config.json)");
  info.pad_token_id = config.pad_token_id.value_or(info.pad_token_id ? info.pad_token_id : info.eos_token_ids.front());
  return info;
}

std::shared_ptr<const TensorMap> snapshot_parameters(models::CausalLMImpl& lm) {
  auto tensors = std::make_shared<TensorMap>();
  for (auto& item : lm.named_parameters(/*recurse=*/true)) (*tensors)[item.key()] = item.value().detach().clone();
  return tensors;
}

void apply_parameters(models::CausalLMImpl& lm, const TensorMap& tensors) { models::load_weights(lm, tensors); }

std::shared_ptr<const TensorMap> snapshot_packed(models::CausalLMImpl& lm, const std::vector<models::QuantTarget>& targets,
                                                 const models::QuantSpec& spec) {
  auto tensors = std::make_shared<TensorMap>(models::pack_weights(targets, spec));
  std::set<std::string> packed;
  for (const auto& t : targets) packed.insert(t.name + ".weight");
  for (auto& item : lm.named_parameters(/*recurse=*/true))
    if (!packed.count(item.key())) (*tensors)[item.key()] = item.value().detach().clone();
  return tensors;
}

int64_t capped_new_tokens(const dsl::PipelineSpec& spec, const std::vector<std::vector<int64_t>>& prompts,
                          int64_t max_new_tokens) {
  int64_t longest = 0;
  for (const auto& p : prompts) longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
  return std::max<int64_t>(1, std::min(max_new_tokens, spec.model.max_seq_len - longest));
}

models::LoraConfig lora_config_of(const dsl::PipelineSpec& spec) {
  if (spec.lora.rank < 1)
    throw Error("quantization.train = \"lora\" needs lora.rank >= 1, got " + std::to_string(spec.lora.rank));
  models::LoraConfig config;
  config.rank = spec.lora.rank;
  config.alpha = spec.lora.alpha;
  config.dropout = spec.lora.dropout;
  config.target_modules = spec.lora.target_modules;
  return config;
}

uint64_t lora_seed(const dsl::PipelineSpec& spec) { return step_seed(spec.run.seed, 0, /*stream=*/500); }

void log_quant_summary(const std::shared_ptr<spdlog::logger>& logger, const models::QuantSummary& summary,
                       const models::QuantSpec& spec) {
  log_info(logger, summary.describe(spec.scheme) + (spec.quantize_inputs ? ", inputs too (W4A4)" : " (W4A16)"));
  for (const auto& p : summary.unmatched_ignores)
    log_warn(logger, "quantization.ignore: pattern \"" + p + "\" matches no Linear module");
  for (const auto& name : summary.unsupported_names)
    log_warn(logger, "quantization: " + name + " kept in full precision (input width not a multiple of the group)");
}

uint64_t step_seed(int64_t run_seed, int64_t step, uint64_t stream) {
  // splitmix64 over a mix of the three, so nearby inputs give unrelated seeds.
  uint64_t z = static_cast<uint64_t>(run_seed) * 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(step) * 0xBF58476D1CE4E5B9ull ^
               (stream + 1) * 0x94D049BB133111EBull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace qerl::actors
