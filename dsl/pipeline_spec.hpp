// PipelineSpec: the typed, validated form of a pipeline file. Every field
// here is declared exactly once in the schema (dsl/schema_builtin.cpp) with
// its type, default, range and documentation; the loader fills this struct
// from TOML through that schema, so docs, validation and the struct agree.
// Stage-specific keys stay in StageSpec::options (validated against the
// stage type's KeySpecs) because stage types can come from plugins.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/named_enum.hpp"
#include "dsl/diagnostic.hpp"
#include "dsl/value.hpp"
#include "models/quant/quant_spec.hpp"
#include "rl/settings.hpp"

namespace qerl::dsl {

// The choices of the fixed sections that have no home in models/ or rl/,
// each with its one table of spellings (common/named_enum.hpp).
enum class ModelDtype { fp32, bf16, fp16 };
constexpr auto enum_names(ModelDtype) {
  return std::array<EnumName<ModelDtype>, 3>{
      {{ModelDtype::fp32, "fp32"}, {ModelDtype::bf16, "bf16"}, {ModelDtype::fp16, "fp16"}}};
}

enum class ModelInit { checkpoint, random };
constexpr auto enum_names(ModelInit) {
  return std::array<EnumName<ModelInit>, 2>{{{ModelInit::checkpoint, "checkpoint"}, {ModelInit::random, "random"}}};
}

// quantization.train: full precision, QAT, or a frozen quantized base + LoRA.
enum class QuantTrain { none, qat, lora };
constexpr auto enum_names(QuantTrain) {
  return std::array<EnumName<QuantTrain>, 3>{
      {{QuantTrain::none, "none"}, {QuantTrain::qat, "qat"}, {QuantTrain::lora, "lora"}}};
}

enum class AqnApplyTo { rollout, training, both };
constexpr auto enum_names(AqnApplyTo) {
  return std::array<EnumName<AqnApplyTo>, 3>{
      {{AqnApplyTo::rollout, "rollout"}, {AqnApplyTo::training, "training"}, {AqnApplyTo::both, "both"}}};
}

enum class AqnLayerType { rmsnorm, linear };
constexpr auto enum_names(AqnLayerType) {
  return std::array<EnumName<AqnLayerType>, 2>{{{AqnLayerType::rmsnorm, "rmsnorm"}, {AqnLayerType::linear, "linear"}}};
}

// cluster.device: CUDA when visible (auto), or forced.
enum class DeviceKind { auto_detect, cuda, cpu };
constexpr auto enum_names(DeviceKind) {
  return std::array<EnumName<DeviceKind>, 3>{
      {{DeviceKind::auto_detect, "auto"}, {DeviceKind::cuda, "cuda"}, {DeviceKind::cpu, "cpu"}}};
}

struct RunSpec {
  std::string name;
  int64_t steps = 0;
  int64_t seed = 0;
  std::string out_dir;
  int64_t checkpoint_every = 0;  // 0 = never
  int64_t keep_checkpoints = 0;
};

struct ModelSpec {
  std::string path;       // HF folder (relative paths resolve against the pipeline file)
  ModelDtype dtype = ModelDtype::bf16;
  std::string tokenizer;  // empty = <path>/tokenizer.json
  int64_t max_seq_len = 0;
  ModelInit init = ModelInit::checkpoint;
};

struct DataSpec {
  std::string source;  // "builtin:arith" or a GSM8K-style .jsonl path
  int64_t prompts_per_step = 0;
  int64_t samples_per_prompt = 0;  // GRPO group size G
  int64_t heldout_size = 0;
  bool shuffle = true;
  int64_t max_prompt_len = 0;
  std::string prompt_template;  // "{question}" is replaced by the problem text
};

struct AlgorithmSpec {
  rl::Advantage name = rl::Advantage::grpo;
  bool norm_adv_by_std = true;  // false = Dr.GRPO
  double lr = 0;
  rl::LrSchedule lr_schedule = rl::LrSchedule::constant;
  int64_t warmup_steps = 0;
  double weight_decay = 0;
  double adam_beta1 = 0;
  double adam_beta2 = 0;
  double adam_eps = 0;
  double clip_low = 0;
  double clip_high = 0;
  rl::LossAgg loss_agg = rl::LossAgg::token_mean;
  double kl_coef = 0;
  rl::KlEstimator kl_estimator = rl::KlEstimator::k3;
  double entropy_coef = 0;
  int64_t ppo_epochs = 0;
  int64_t mini_batch_size = 0;  // 0 = whole batch
  double max_grad_norm = 0;
};

struct QuantizationSpec {
  models::QuantScheme scheme = models::QuantScheme::none;
  models::QuantMode mode = models::QuantMode::w4a16;
  int64_t group_size = 0;  // the scheme's (models::group_size), the only value allowed
  QuantTrain train = QuantTrain::none;
  std::vector<std::string> ignore;  // exact module names or "re:<python regex>"
  bool fuse_scales = true;  // q/k/v and gate/up share one global scale
  // The keys above as models/ takes them, built by the loader.
  models::QuantSpec quant;
};

struct LoraSpec {
  int64_t rank = 0;  // 0 = no LoRA
  double alpha = 0;
  double dropout = 0;
  std::vector<std::string> target_modules;
};

struct AqnSpec {
  bool enabled = false;
  double sigma_start = 0;
  double sigma_end = 0;
  int64_t num_stages = 0;
  std::vector<std::string> targets;
  std::vector<std::string> exclude;
  std::vector<AqnLayerType> layer_types;
  AqnApplyTo apply_to = AqnApplyTo::rollout;

  bool on_rollout() const { return enabled && apply_to != AqnApplyTo::training; }
  bool on_training() const { return enabled && apply_to != AqnApplyTo::rollout; }
};

struct RouterReplaySpec {
  rl::ReplayMode mode = rl::ReplayMode::disabled;
};

struct ClusterSpec {
  DeviceKind device = DeviceKind::auto_detect;
  int64_t num_gpus = 0;  // 0 = every visible GPU (or, with no GPU, as many logical slots as used)
  double gpu_memory_gib = 0;  // memory of each CUDA device for the memory plan; 0 = ask the device
  // Worker processes (issue 17): empty = one process; {"local"} = qerl-run
  // starts one worker process per `worker = N` used by the stages;
  // {"host:port", ...} = workers started with `qerl-run --worker`, worker N
  // being the N-th entry. See dsl/cluster.hpp.
  std::vector<std::string> workers;
};

// One declared input of a stage: `port = "producer.port"` or
// `port = { from = "producer.port", staleness = k }` (a back-edge).
struct InputSpec {
  std::string port;           // consumer's input port name
  std::string from_stage;     // producer stage name
  std::string from_port;      // producer output port; empty = its only output port
  std::optional<int64_t> staleness;  // set = back-edge allowing k steps of lag
  SourcePos pos;
};

struct StageSpec {
  std::string name;  // the <name> in [stages.<name>]
  std::string uses;  // stage type, e.g. "rollout", "reward.gsm8k", or a plugin's type
  std::vector<InputSpec> inputs;
  std::vector<int64_t> gpus;  // logical GPU slots; empty = host CPU
  int64_t replicas = 1;
  int64_t worker = 0;  // the process: 0 = the coordinator (qerl-run), N = cluster.workers' N-th
  // Stage-type-specific keys, validated against the type's KeySpecs with
  // defaults filled in; read through option<T>().
  std::map<std::string, Value> options;
  SourcePos pos;  // of the [stages.<name>] header
  // Where each key of the table was written ("gpus" -> file:line:col), for
  // errors found after loading (placement, stages). Absent keys: use pos.
  std::map<std::string, SourcePos> key_pos;

  template <class T>
  const T& option(const std::string& key) const;  // throws qerl::Error if absent / wrong type
  // A string option with a fixed set of names (common/named_enum.hpp), as
  // its enum; qerl::Error for a name E does not have.
  template <class E>
  E choice_option(const std::string& key) const;
  const SourcePos& pos_of(const std::string& key) const;  // key_pos[key], else pos
};

struct PipelineSpec {
  std::string source_file;  // the file given to the loader
  std::vector<std::string> plugins;  // shared libraries, resolved to absolute paths
  RunSpec run;
  ModelSpec model;
  DataSpec data;
  AlgorithmSpec algorithm;
  QuantizationSpec quantization;
  LoraSpec lora;
  AqnSpec aqn;
  RouterReplaySpec router_replay;
  ClusterSpec cluster;
  std::vector<StageSpec> stages;  // in declaration order
  std::vector<Diagnostic> warnings;  // non-fatal findings of the loader

  const StageSpec* find_stage(const std::string& name) const;
};

template <class T>
const T& StageSpec::option(const std::string& key) const {
  auto it = options.find(key);
  if (it == options.end()) throw Error("stage '" + name + "': no option '" + key + "'");
  if (const T* v = std::get_if<T>(&it->second)) return *v;
  throw Error("stage '" + name + "': option '" + key + "' has another type");
}

template <class E>
E StageSpec::choice_option(const std::string& key) const {
  const std::string& text = option<std::string>(key);
  if (auto value = parse_enum<E>(text)) return *value;
  throw Error("stage '" + name + "': option '" + key + "' = \"" + text + "\"; expected " + enum_choices_text<E>());
}

}  // namespace qerl::dsl
