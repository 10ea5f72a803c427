// The memory plan (see memory_plan.hpp; formulas in docs/memory-plan.md).
// Byte counts of weights, packed base, LoRA, AQN copies, masters and Adam
// state follow what the stages allocate (actors/policy.cpp, learner_stage.cpp,
// rl/fp32_masters.cpp, models/quant/*) over the module inventory of the
// config, and tests/actors/memory_plan_test.cpp checks them against the
// tensors a built model and learner hold. KV cache, routes and logits are
// formulas over the tensor shapes; activations are an estimate.
#include "actors/memory_plan.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "common/error.hpp"
#include "common/name_pattern.hpp"
#include "dsl/pipeline_spec.hpp"
#include "models/nn/model_config.hpp"
#include "models/nn/module_inventory.hpp"
#include "models/quant/lora.hpp"
#include "runtime/placement.hpp"

namespace qerl::actors {
namespace {

namespace fs = std::filesystem;
using models::ModuleKind;
using models::ModuleShape;

int64_t dtype_bytes(dsl::ModelDtype dtype) { return dtype == dsl::ModelDtype::fp32 ? 4 : 2; }

// What one copy of the policy holds, counted over the module inventory as
// the stages build it.
struct CopyBytes {
  int64_t dense = 0;          // parameters with storage, model dtype
  int64_t dense_trainable = 0;  // numel of the parameters a full-parameter learner trains
  int64_t packed = 0;         // codes + scales of the quantized Linears
  int64_t packed_targets_dense = 0;  // numel of the quantized Linears' weights
  int64_t lora_numel = 0;     // A + B elements (float32)
  int64_t lora_adapters = 0;  // adapted Linears
  int64_t aqn_numel = 0;      // elements of the noised weights
  int64_t expert_lora_numel = 0;  // A + B elements of the MoE experts' adapters
};

struct CopyOptions {
  bool packed = false;        // a packed base over the Linears quantization selects
  bool release_dense = false; // Residency::codes_only: quantized Linears keep no dense weight
  bool lora = false;
  bool aqn = false;           // [aqn] noise targets on this copy
};

CopyBytes count_copy(const std::vector<ModuleShape>& modules, const dsl::PipelineSpec& spec, const CopyOptions& o) {
  CopyBytes out;
  const int64_t d = dtype_bytes(spec.model.dtype);
  const models::QuantSpec& quant = spec.quantization.quant;
  NamePatterns ignore(quant.ignore, "quantization.ignore");
  std::optional<models::LoraTargets> lora;
  if (o.lora) lora.emplace(spec.lora.target_modules, "lora.target_modules");
  NamePatterns aqn_targets(spec.aqn.targets, "aqn.targets");
  NamePatterns aqn_exclude(spec.aqn.exclude, "aqn.exclude");
  const auto has_layer_type = [&](dsl::AqnLayerType kind) {
    return std::find(spec.aqn.layer_types.begin(), spec.aqn.layer_types.end(), kind) != spec.aqn.layer_types.end();
  };
  for (const ModuleShape& m : modules) {
    int64_t resident = m.parameter_numel();
    out.dense_trainable += m.parameter_numel();
    if (m.kind == ModuleKind::linear) {
      // As plan_quantization: not ignored and the input width a multiple of the group.
      const bool quantized = o.packed && quant.scheme != models::QuantScheme::none && !ignore.matches(m.name) &&
                             m.in_features % models::group_size(quant.scheme) == 0;
      const bool expert = m.name.find(".experts.") != std::string::npos;
      if (quantized) {
        out.packed += models::packed_bytes(quant.scheme, m.weight_numel());
        out.packed_targets_dense += m.weight_numel();
        if (o.release_dense) resident -= m.weight_numel();  // weight.set_(): no storage
      }
      if (lora && lora->selects(m.name)) {
        if (expert) out.expert_lora_numel += spec.lora.rank * (m.in_features + m.out_features);
        out.lora_numel += spec.lora.rank * (m.in_features + m.out_features);
        ++out.lora_adapters;
      }
    }
    const bool noise_kind = (m.kind == ModuleKind::rms_norm && has_layer_type(dsl::AqnLayerType::rmsnorm)) ||
                            (m.kind == ModuleKind::linear && has_layer_type(dsl::AqnLayerType::linear));
    if (o.aqn && noise_kind && aqn_targets.matches(m.name) && !aqn_exclude.matches(m.name))
      out.aqn_numel += m.weight_numel();
    out.dense += resident * d;
  }
  return out;
}

// Activation bytes per token per decoder layer, in units of the model dtype
// (see learner_activation_bytes and docs/memory-plan.md).
double activation_units_per_token_layer(const models::ModelConfig& c, int64_t layer, int64_t lora_rank) {
  const double h = static_cast<double>(c.hidden_size);
  const double q = static_cast<double>(c.num_attention_heads * c.head_dim);
  const double kv = static_cast<double>(c.num_key_value_heads * c.head_dim);
  // norm input + output, q/k/v before and after RoPE, attention output, o_proj output.
  double units = 4 * h + 2 * (q + 2 * kv) + q + h;
  double adapted = 4;  // q, k, v, o
  if (c.is_moe_layer(layer)) {
    const double k = static_cast<double>(c.num_experts_per_tok);
    const double w = static_cast<double>(c.moe_intermediate_size);
    units += 3 * static_cast<double>(c.num_experts);  // router logits (model dtype) + float32 probabilities
    units += k * (4 * w + 3 * h);                     // per chosen expert: input, gate, up, silu, product, down, weighted
    adapted += 3 * k;
    if (c.shared_expert_intermediate_size > 0) {
      units += 4 * static_cast<double>(c.shared_expert_intermediate_size) + 3 * h + 1;
      adapted += 3;
    }
  } else {
    units += 4 * static_cast<double>(c.intermediate_size) + 2 * h;
    adapted += 3;
  }
  if (lora_rank > 0) units += adapted * static_cast<double>(lora_rank);  // A x per adapted Linear
  return units;
}

// The stage's value of `key` when it is set and of type T, else `fallback`
// (the plan may run before defaults are filled in).
template <class T>
T option_or(const dsl::StageSpec& stage, const std::string& key, T fallback) {
  const auto it = stage.options.find(key);
  if (it == stage.options.end()) return fallback;
  if (const auto* v = std::get_if<T>(&it->second)) return *v;
  return fallback;
}

// "12.3 GiB"-style text with 3 significant digits.
std::string bytes_text(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  size_t unit = 0;
  while (std::abs(bytes) >= 1024 && unit + 1 < sizeof units / sizeof units[0]) bytes /= 1024, ++unit;
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.3g %s", bytes, units[unit]);
  return text;
}

std::string pad(std::string s, size_t width) {
  if (s.size() < width) s += std::string(width - s.size(), ' ');
  return s;
}

// The plan builder: one stage replica at a time onto its device.
class Planner {
 public:
  Planner(const dsl::PipelineSpec& spec, const CapacityOf& capacity, models::ModelConfig config)
      : spec_(spec), capacity_(capacity), config_(std::move(config)), modules_(models::module_inventory(config_)) {}

  void add_replica(const runtime::ReplicaPlacement& replica, const dsl::StageSpec& stage) {
    const std::string device = replica.devices.empty() ? "cpu" : replica.devices.front();
    if (!holds_model(stage.uses) && replica.slots.empty()) return;  // data, reward, weight_sync: host bookkeeping
    current_ = &device_of(device);
    label_ = replica.label();
    if (stage.uses == "rollout") sampling_engine(stage, /*rollout=*/true);
    else if (stage.uses == "eval") sampling_engine(stage, /*rollout=*/false);
    else if (stage.uses == "reference") reference(stage);
    else if (stage.uses == "learner") learner(stage);
    else if (!replica.slots.empty())
      plan_.notes.push_back("stage '" + stage.name + "' (type '" + stage.uses + "') on " + device +
                            ": no memory model for this stage type; not counted");
  }

  MemoryPlan finish() { return std::move(plan_); }

 private:
  DeviceMemory& device_of(const std::string& device) {
    for (auto& d : plan_.devices)
      if (d.device == device) return d;
    DeviceMemory d;
    d.device = device;
    if (capacity_)
      if (auto c = capacity_(device)) d.capacity = c->first, d.capacity_source = c->second;
    plan_.devices.push_back(std::move(d));
    return plan_.devices.back();
  }

  void add(const char* part, int64_t bytes, bool transient, std::string detail) {
    if (bytes <= 0) return;
    current_->parts.push_back({label_, part, bytes, transient, std::move(detail)});
  }

  int64_t d() const { return dtype_bytes(spec_.model.dtype); }
  std::string dtype() const { return std::string(enum_name(spec_.model.dtype)); }
  bool lora_on() const { return spec_.quantization.train == dsl::QuantTrain::lora; }
  bool scheme_on() const { return spec_.quantization.quant.scheme != models::QuantScheme::none; }

  // Longest prompt the plan assumes: data.max_prompt_len, else whatever
  // model.max_seq_len leaves (rollout caps responses so prompt + response fit it).
  int64_t sequence_tokens(int64_t max_new_tokens) const {
    const int64_t prompt = spec_.data.max_prompt_len > 0 ? spec_.data.max_prompt_len : spec_.model.max_seq_len;
    return std::min(spec_.model.max_seq_len, prompt + max_new_tokens);
  }
  int64_t response_tokens() const {
    for (const auto& s : spec_.stages)
      if (s.uses == "rollout") return option_or(s, "max_new_tokens", int64_t{256});
    return spec_.model.max_seq_len;
  }
  int64_t step_rows() const { return spec_.data.prompts_per_step * spec_.data.samples_per_prompt; }

  void weights_of(const CopyBytes& copy, const std::string& what) {
    add(part::weights, copy.dense, false, what);
    add(part::packed_base, copy.packed, false,
        std::string(enum_name(spec_.quantization.quant.scheme)) + " codes + scales of " +
            std::to_string(copy.packed_targets_dense) + " weights");
    add(part::lora, 4 * copy.lora_numel, false,
        std::to_string(copy.lora_adapters) + " adapters, rank " + std::to_string(spec_.lora.rank) + ", fp32");
    add(part::aqn_clean, copy.aqn_numel * d(), false, std::to_string(copy.aqn_numel) + " noised values, " + dtype());
  }

  // On a CUDA device the MoE path runs each layer's experts from one stacked
  // copy (SparseMoe::stacked_experts) whose rows the per-expert weights or
  // codes then view, so the experts are held once; their LoRA adapters are
  // stacked beside them in bf16. (Before the views, the reference's second
  // bf16 copy of A2.7B's experts, 23 GB, ran an H100 out of memory.)
  void stacked_lora(const CopyBytes& copy) {
    if (!config_.is_moe() || current_->device.rfind("cuda", 0) != 0) return;
    add(part::stacked_experts, 2 * copy.expert_lora_numel, false, "the experts' LoRA stacked in bf16 for the grouped kernels");
  }

  void sampling_engine(const dsl::StageSpec& stage, bool rollout) {
    CopyOptions o;
    o.aqn = rollout && spec_.aqn.on_rollout();
    o.packed = scheme_on();
    o.release_dense = !(o.aqn && std::count(spec_.aqn.layer_types.begin(), spec_.aqn.layer_types.end(),
                                            dsl::AqnLayerType::linear));
    o.lora = lora_on();
    const CopyBytes copy = count_copy(modules_, spec_, o);
    weights_of(copy, dtype() + (o.packed && o.release_dense ? ", quantized Linears' dense weights freed" : ""));
    if (o.lora) stacked_lora(copy);
    const int64_t new_tokens = option_or(stage, "max_new_tokens", int64_t{256});
    const int64_t rows_all = rollout ? step_rows() : spec_.data.heldout_size;
    const KvShape per_row{config_.num_hidden_layers, config_.num_key_value_heads, config_.head_dim, d(),
                          sequence_tokens(new_tokens), 1};
    // The budget and the kept cache are the CUDA engine's; elsewhere each call allocates its own cache.
    const bool cuda = current_->device.rfind("cuda", 0) == 0;
    const double fraction = cuda ? option_or(stage, "gpu_memory_fraction", 0.0) : 0;
    const int64_t budget =
        fraction > 0 && current_->capacity ? static_cast<int64_t>(fraction * static_cast<double>(*current_->capacity)) : 0;
    const int64_t rows = engine_chunk_rows(per_row, option_or(stage, "max_batch_size", int64_t{0}), rows_all, budget);
    KvShape shape = per_row;
    shape.rows = rows;
    // Kept between steps unless the stage releases it (kv_cache = "release").
    const bool released =
        !cuda || option_or(stage, "kv_cache", std::string()) == "release";
    add(part::kv_cache, kv_cache_bytes(shape), /*transient=*/released,
        std::to_string(rows) + " rows x " + std::to_string(shape.tokens) + " tokens" +
            (budget > 0 ? ", within gpu_memory_fraction " + c10::str(fraction) : std::string()) +
            (!cuda ? "" : released ? ", released after each step" : ", kept between steps"));
    if (rollout && spec_.router_replay.mode != rl::ReplayMode::disabled && config_.is_moe())
      add(part::routes, rows * shape.tokens * config_.num_moe_layers() * config_.num_experts_per_tok * 2, true,
          "[rows, tokens, moe layers, top-k] int16");
  }

  // Logits of `rows` rows of R response tokens: the model-dtype logits, their
  // float32 copy and its log-softmax; with gradients also the float32 and
  // model-dtype gradients of the logits.
  int64_t logits_bytes(int64_t rows, bool with_grad) const {
    const int64_t per = with_grad ? 2 * d() + 12 : d() + 8;
    return rows * response_tokens() * config_.vocab_size * per;
  }

  void reference(const dsl::StageSpec& stage) {
    if (spec_.algorithm.kl_coef == 0) return;  // the stage loads no model
    CopyOptions o;
    o.packed = o.release_dense = lora_on() && scheme_on() && option_or(stage, "weights", std::string()) == "base";
    const CopyBytes copy = count_copy(modules_, spec_, o);
    weights_of(copy, dtype() + ", frozen initial policy" + (o.packed ? " (packed base)" : ""));
    const int64_t micro = option_or(stage, "micro_batch_size", int64_t{0});
    const int64_t rows = micro > 0 ? std::min(micro, step_rows()) : step_rows();
    const int64_t tokens = sequence_tokens(response_tokens());
    add(part::kv_cache, kv_cache_bytes({config_.num_hidden_layers, config_.num_key_value_heads, config_.head_dim, d(),
                                        tokens, rows}),
        true, "scoring pass, " + std::to_string(rows) + " rows x " + std::to_string(tokens) + " tokens");
    add(part::logits, logits_bytes(rows, false), true, std::to_string(rows) + " rows, no grad");
  }

  void learner(const dsl::StageSpec& stage) {
    const bool sft = stage.options.count("mode") && std::get<std::string>(stage.options.at("mode")) == "sft";
    CopyOptions o;
    o.lora = lora_on();
    o.packed = o.lora && scheme_on();  // QAT fake-quantizes in the forward; full-parameter keeps dense only
    const bool aqn_training = !sft && spec_.aqn.on_training();
    o.release_dense = !(aqn_training && std::count(spec_.aqn.layer_types.begin(), spec_.aqn.layer_types.end(),
                                                   dsl::AqnLayerType::linear));
    o.aqn = aqn_training;
    const CopyBytes copy = count_copy(modules_, spec_, o);
    weights_of(copy, dtype() + (o.lora ? ", frozen" : ", trained"));
    if (o.lora) stacked_lora(copy);
    // Trainable tensors: LoRA's A and B (float32: no masters), or every
    // parameter in the model dtype (fp32 masters unless the model is fp32).
    const int64_t trainable = o.lora ? copy.lora_numel : copy.dense_trainable;
    const int64_t trainable_bytes = o.lora ? 4 : d();
    const bool masters = trainable_bytes != 4;
    add(part::masters, masters ? 4 * trainable : 0, false, std::to_string(trainable) + " values");
    add(part::adam, 2 * 4 * trainable, false, "exp_avg + exp_avg_sq of " + std::to_string(trainable) + " values, fp32");
    if (o.lora) {
      add(part::update, 4 * copy.lora_numel, false, "adapters only (lora_only sync)");
    } else if (spec_.quantization.train == dsl::QuantTrain::qat && scheme_on()) {
      const CopyBytes packed = count_copy(modules_, spec_, CopyOptions{true, true, false, false});
      add(part::update, packed.dense + packed.packed, false, "codes + the other parameters (packed sync)");
    } else {
      add(part::update, copy.dense, false, "every parameter (full sync)");
    }
    add(part::gradients, trainable * trainable_bytes + (masters ? 4 * trainable : 0), true,
        masters ? "policy grads + fp32 master grads" : "fp32");
    const int64_t mini_size = spec_.algorithm.mini_batch_size;
    const int64_t mini = mini_size > 0 ? std::min(mini_size, step_rows()) : step_rows();
    const int64_t micro_size = option_or(stage, "micro_batch_size", int64_t{0});
    const int64_t rows = micro_size > 0 ? std::min(micro_size, mini) : mini;
    const int64_t tokens = sequence_tokens(response_tokens());
    const bool checkpointed = option_or(stage, "activation_checkpointing", false);
    // The attention's keys and values are kept for the backward too: every layer's, or one layer's.
    const KvShape kv{checkpointed ? 1 : config_.num_hidden_layers, config_.num_key_value_heads, config_.head_dim, d(),
                     tokens, rows};
    add(part::activations,
        learner_activation_bytes(config_, d(), rows, tokens, o.lora ? spec_.lora.rank : 0, checkpointed) +
            kv_cache_bytes(kv),
        true,
        "micro-batch " + std::to_string(rows) + " rows x " + std::to_string(tokens) + " tokens, " +
            (checkpointed ? "checkpointed (layer inputs + one layer)" : "no checkpointing"));
    add(part::logits, logits_bytes(rows, true), true, std::to_string(rows) + " rows, with grad");
  }

  const dsl::PipelineSpec& spec_;
  const CapacityOf& capacity_;
  models::ModelConfig config_;
  std::vector<ModuleShape> modules_;
  MemoryPlan plan_;
  DeviceMemory* current_ = nullptr;
  std::string label_;
};

}  // namespace

int64_t DeviceMemory::persistent() const {
  int64_t n = 0;
  for (const auto& p : parts) n += p.transient ? 0 : p.bytes;
  return n;
}

namespace {
std::map<std::string, int64_t> turns(const DeviceMemory& d) {
  std::map<std::string, int64_t> by_stage;
  for (const auto& p : d.parts)
    if (p.transient) by_stage[p.stage] += p.bytes;
  return by_stage;
}
}  // namespace

std::string DeviceMemory::largest_turn() const {
  std::string stage;
  int64_t most = 0;
  for (const auto& [name, bytes] : turns(*this))
    if (bytes > most) most = bytes, stage = name;
  return stage;
}

int64_t DeviceMemory::largest_turn_bytes() const {
  int64_t most = 0;
  for (const auto& [name, bytes] : turns(*this)) most = std::max(most, bytes);
  return most;
}

int64_t DeviceMemory::all_transient() const {
  int64_t n = 0;
  for (const auto& p : parts) n += p.transient ? p.bytes : 0;
  return n;
}

int64_t MemoryPlan::bytes_of(const std::string& stage, const std::string& part_name) const {
  int64_t n = 0;
  for (const auto& d : devices)
    for (const auto& p : d.parts)
      if (p.stage == stage && p.part == part_name) n += p.bytes;
  return n;
}

std::string MemoryPlan::to_text() const {
  std::ostringstream out;
  out << "stages sharing a device take turns: planned peak = persistent parts + the largest turn's transient parts\n";
  for (const auto& d : devices) {
    out << d.device << ": capacity "
        << (d.capacity ? memory_text(*d.capacity) + " (" + d.capacity_source + ")" : std::string("unknown (not checked)"))
        << "\n";
    size_t stage_width = 7;
    for (const auto& p : d.parts) stage_width = std::max(stage_width, p.stage.size() + 2);
    out << "  " << pad("stage", stage_width) << pad("part", 22) << pad("bytes", 12) << pad("kept", 11) << "how\n";
    for (const auto& p : d.parts)
      out << "  " << pad(p.stage, stage_width) << pad(p.part, 22) << pad(memory_text(p.bytes), 12)
          << pad(p.transient ? "its turn" : "persistent", 11) << p.detail << "\n";
    out << "  persistent " << memory_text(d.persistent()) << " + largest turn "
        << (d.largest_turn().empty() ? std::string("(none)") : d.largest_turn()) << " "
        << memory_text(d.largest_turn_bytes()) << " = planned peak " << memory_text(d.peak());
    if (d.capacity) {
      const double share = 100.0 * static_cast<double>(d.peak()) / static_cast<double>(*d.capacity);
      char pct[32];
      std::snprintf(pct, sizeof pct, "%.1f%%", share);
      out << " of " << memory_text(*d.capacity) << " (" << pct << ")" << (d.fits() ? ": fits" : ": DOES NOT FIT");
    }
    out << "\n";
    if (d.all_transient() > d.largest_turn_bytes()) {
      const int64_t all = d.persistent() + d.all_transient();
      out << "  every turn's parts held at once (stages not taking turns): " << memory_text(all)
          << (d.capacity ? (all <= *d.capacity ? ": fits" : ": does not fit, so stages must take turns") : std::string())
          << "\n";
    }
  }
  for (const auto& n : notes) out << "note: " << n << "\n";
  return out.str();
}

std::vector<std::string> MemoryPlan::refusals() const {
  std::vector<std::string> lines;
  for (const auto& d : devices) {
    if (d.fits()) continue;
    std::vector<const MemoryPart*> parts;
    for (const auto& p : d.parts) parts.push_back(&p);
    std::sort(parts.begin(), parts.end(), [](const MemoryPart* a, const MemoryPart* b) { return a->bytes > b->bytes; });
    std::string largest;
    for (size_t i = 0; i < parts.size() && i < 3; ++i)
      largest += (i ? ", " : "") + parts[i]->stage + " " + parts[i]->part + " " + memory_text(parts[i]->bytes);
    lines.push_back("memory plan: " + d.device + " needs " + memory_text(d.peak()) + " (persistent " +
                    memory_text(d.persistent()) + " + " + d.largest_turn() + "'s turn " +
                    memory_text(d.largest_turn_bytes()) + ") but has " + memory_text(*d.capacity) + " (" +
                    d.capacity_source + "); largest parts: " + largest +
                    " (qerl-run --dry-run prints the plan; --allow-overcommit runs anyway)");
  }
  return lines;
}

int64_t kv_cache_bytes(const KvShape& s) {
  return s.layers * 2 * s.kv_heads * s.head_dim * s.dtype_bytes * s.tokens * s.rows;
}

int64_t engine_chunk_rows(const KvShape& shape, int64_t max_batch_size, int64_t rows, int64_t budget_bytes) {
  const int64_t chunk = std::max<int64_t>(max_batch_size > 0 ? std::min(max_batch_size, rows) : rows, 1);
  if (budget_bytes <= 0) return chunk;
  KvShape row = shape;
  row.rows = 1;
  row.tokens = (std::max<int64_t>(shape.tokens, 1) + 63) / 64 * 64;
  const int64_t per_row = kv_cache_bytes(row);
  int64_t bucket = 1;  // the rows the engine allocates for `chunk`
  while (bucket < chunk) bucket *= 2;
  if (bucket * per_row <= budget_bytes) return chunk;
  int64_t fit = 1;
  while (fit * 2 <= chunk && fit * 2 * per_row <= budget_bytes) fit *= 2;
  return fit;
}

int64_t learner_activation_bytes(const models::ModelConfig& config, int64_t dtype_bytes, int64_t rows, int64_t tokens,
                                 int64_t lora_rank, bool checkpointing) {
  const int64_t layers = config.num_hidden_layers;
  double units = 0, largest = 0;
  for (int64_t layer = 0; layer < layers; ++layer) {
    const double u = activation_units_per_token_layer(config, layer, lora_rank);
    units += u;
    largest = std::max(largest, u);
  }
  // Checkpointed: every layer's input, and one layer's activations at a time.
  if (checkpointing) units = static_cast<double>(layers * config.hidden_size) + largest;
  units += 2 * static_cast<double>(config.hidden_size);  // embedding output, final norm
  return static_cast<int64_t>(units * static_cast<double>(dtype_bytes * rows * tokens));
}

bool holds_model(const std::string& stage_type) {
  return stage_type == "rollout" || stage_type == "eval" || stage_type == "reference" || stage_type == "learner";
}

MemoryPlan plan_memory(const dsl::PipelineSpec& spec, const runtime::Placement& placement, const CapacityOf& capacity) {
  bool any_model = false;
  for (const auto& replica : placement.replicas)
    if (const dsl::StageSpec* stage = spec.find_stage(replica.stage)) any_model |= holds_model(stage->uses);
  const fs::path config = fs::path(spec.model.path) / "config.json";
  if (!any_model || !fs::exists(config)) {
    MemoryPlan plan;
    plan.notes.push_back(any_model ? "no memory plan: model.path '" + spec.model.path + "' has no config.json"
                                   : "no memory plan: no stage holds a model");
    return plan;
  }
  Planner planner(spec, capacity, models::load_model_config(config.string()));
  for (const auto& replica : placement.replicas)
    if (const dsl::StageSpec* stage = spec.find_stage(replica.stage)) planner.add_replica(replica, *stage);
  return planner.finish();
}

int64_t parse_memory_size(const std::string& text) {
  std::istringstream in(text);
  double value = 0;
  std::string unit;
  if (!(in >> value) || value <= 0) throw Error("memory size '" + text + "': expected a positive number and a unit, e.g. 80GB or 141GiB");
  in >> unit;
  std::string rest;
  if (in >> rest) throw Error("memory size '" + text + "': unexpected '" + rest + "'");
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::tolower(c); });
  static const std::map<std::string, double> units{
      {"", 1024.0 * 1024 * 1024}, {"b", 1},         {"kib", 1024.0},          {"mib", 1024.0 * 1024},
      {"gib", 1024.0 * 1024 * 1024}, {"tib", 1024.0 * 1024 * 1024 * 1024}, {"kb", 1e3}, {"mb", 1e6},
      {"gb", 1e9},                   {"tb", 1e12}};
  const auto it = units.find(unit);
  if (it == units.end()) throw Error("memory size '" + text + "': unknown unit '" + unit + "' (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)");
  return static_cast<int64_t>(value * it->second);
}

std::string memory_text(int64_t bytes) { return bytes_text(static_cast<double>(bytes)); }

}  // namespace qerl::actors
