// Opening the policy and its tokenizer for a stage, and moving parameter
// snapshots between models (see policy.hpp).
#include "actors/policy.hpp"

#include <algorithm>
#include <filesystem>
#include <set>

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
  if (spec.model.dtype == "fp32") return torch::kFloat;
  if (spec.model.dtype == "fp16") return torch::kHalf;
  return torch::kBFloat16;
}

models::LoadedModel open_policy(const dsl::PipelineSpec& spec, torch::Device device, torch::ScalarType dtype) {
  models::LoadedModel policy;
  if (spec.model.init == "random") {
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
  policy.lm->to(device, dtype);
  policy.lm->eval();
  return policy;
}

std::unique_ptr<models::PackedBase> open_packed_base(const dsl::PipelineSpec& spec, models::LoadedModel& policy) {
  const models::QuantSpec quant = quant_spec_of(spec);
  if (!policy.quantization) {
    if (quant.scheme == models::QuantScheme::none) return nullptr;
    return std::make_unique<models::PackedBase>(*policy.lm, quant);
  }
  const auto& stored = policy.quantization->spec;
  const std::string where = "model.path '" + spec.model.path + "' holds a " + policy.quantization->format +
                            (stored.quantize_inputs ? " W4A4" : " W4A16") + " checkpoint";
  if (quant.scheme != stored.scheme)
    throw Error(where + ": quantization.scheme must be \"" + models::quant_scheme_name(stored.scheme) + "\", got \"" +
                spec.quantization.scheme + "\"");
  if (quant.quantize_inputs != stored.quantize_inputs)
    throw Error(where + ": quantization.mode must be \"" + (stored.quantize_inputs ? "w4a4" : "w4a16") +
                "\", got \"" + spec.quantization.mode + "\"");
  models::QuantSpec from_checkpoint = stored;
  from_checkpoint.fuse_scales = quant.fuse_scales;  // for repacks after new weights arrive
  return std::make_unique<models::PackedBase>(*policy.lm, from_checkpoint, policy.packed);
}

void apply_update(const WeightsUpdate& update, models::CausalLMImpl& lm, models::PackedBase* base,
                  models::LoraAdapters* lora) {
  if (update.format == "lora-only") {
    if (!lora) throw Error("got LoRA-only weights, but quantization.train is not \"lora\"");
    lora->load(*update.tensors);  // the base is frozen
  } else if (update.format == "packed") {
    if (!base) throw Error("got packed weights, but quantization.scheme is \"none\"");
    TensorMap dense, codes;
    for (const auto& [name, t] : *update.tensors) (models::is_packed_tensor_name(name) ? codes : dense)[name] = t;
    for (const auto& t : base->targets()) dense[t.name + ".weight"] = t.linear->weight.detach();  // set from the codes
    models::load_weights(lm, dense);
    base->load_packed(codes);
  } else if (update.format == "full") {
    apply_parameters(lm, *update.tensors);
  } else {
    throw Error("weights of unknown format \"" + update.format + "\"");
  }
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

models::QuantSpec quant_spec_of(const dsl::PipelineSpec& spec) {
  const auto& q = spec.quantization;
  models::QuantSpec out;
  out.scheme = models::parse_quant_scheme(q.scheme);
  out.quantize_inputs = q.mode == "w4a4";
  out.ignore = q.ignore;
  out.fuse_scales = q.fuse_scales;
  const int64_t native = out.scheme == models::QuantScheme::mxfp4 ? 32 : 16;
  if (out.scheme != models::QuantScheme::none && q.group_size != 0 && q.group_size != native)
    throw Error("quantization.group_size: " + q.scheme + " uses groups of " + std::to_string(native) + ", got " +
                std::to_string(q.group_size));
  return out;
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

void calibrate_inputs(models::PackedBase& base, const std::vector<std::vector<int64_t>>& prompts, int64_t pad,
                      torch::Device device) {
  if (base.inputs_calibrated()) return;  // e.g. input scales stored with the codes
  int64_t width = 0;
  for (const auto& p : prompts) width = std::max<int64_t>(width, static_cast<int64_t>(p.size()));
  if (prompts.empty() || width == 0) return;
  const int64_t B = static_cast<int64_t>(prompts.size());
  torch::Tensor ids = torch::full({B, width}, pad, torch::kLong);
  torch::Tensor mask = torch::zeros({B, width}, torch::kLong);
  for (int64_t i = 0; i < B; ++i) {
    const auto& p = prompts[i];
    const int64_t n = static_cast<int64_t>(p.size());
    if (n == 0) continue;
    ids[i].slice(0, width - n, width).copy_(torch::tensor(p, torch::kLong));
    mask[i].slice(0, width - n, width).fill_(1);
  }
  base.calibrate_inputs(ids.to(device), mask.to(device));
}

std::vector<std::string> unused_declarations(const dsl::PipelineSpec& spec) {
  std::vector<std::string> out;
  const auto& q = spec.quantization;
  if (q.train != "lora" && spec.lora.rank > 0)
    out.push_back("[lora] rank " + std::to_string(spec.lora.rank) + " without quantization.train = \"lora\"");
  return out;
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
