// The fixed sections of a pipeline, declared once: each line binds a TOML key
// to a PipelineSpec member with its default, range or allowed values and
// meaning. The loader, to_toml, --explain and the reference page all read
// this table, so adding a field here is the whole change.
#include "dsl/pipeline_spec.hpp"
#include "dsl/schema.hpp"

#include <type_traits>

#include "common/error.hpp"

namespace qerl::dsl {

namespace {

using P = PipelineSpec;
using Strings = std::vector<std::string>;

struct Limits {
  std::optional<double> min, max;
  bool min_exclusive = false, max_exclusive = false;
  Strings one_of;
};
Limits at_least(double lo) { return {lo, std::nullopt, false, false, {}}; }
Limits above(double lo, double hi) { return {lo, hi, true, false, {}}; }  // (lo, hi]
Limits range(double lo, double hi) { return {lo, hi, false, false, {}}; }

template <class T>
struct IsEnumList : std::false_type {};
template <class E>
struct IsEnumList<std::vector<E>> : std::is_enum<E> {};

template <class T>
constexpr ValueKind kind_of() {
  if constexpr (std::is_enum_v<T>) return ValueKind::string;
  else if constexpr (IsEnumList<T>::value) return ValueKind::string_list;
  else if constexpr (std::is_same_v<T, bool>) return ValueKind::boolean;
  else if constexpr (std::is_same_v<T, int64_t>) return ValueKind::integer;
  else if constexpr (std::is_same_v<T, double>) return ValueKind::floating;
  else if constexpr (std::is_same_v<T, std::string>) return ValueKind::string;
  else if constexpr (std::is_same_v<T, Strings>) return ValueKind::string_list;
  else return ValueKind::integer_list;
}

template <class T>
struct Exactly { using type = T; };  // keeps T deduced from the member pointer only

// A member as a pipeline Value: enums (and lists of them) by their names.
template <class T>
Value to_value(const T& v) {
  if constexpr (std::is_enum_v<T>) {
    return Value(std::string(enum_name(v)));
  } else if constexpr (IsEnumList<T>::value) {
    Strings names;
    for (auto e : v) names.emplace_back(enum_name(e));
    return Value(std::move(names));
  } else {
    return Value(v);
  }
}

// The name as an enum value; the loader has already checked it against one_of.
template <class E>
E enum_of(const std::string& name) {
  if (auto e = parse_enum<E>(name)) return *e;
  throw Error("unknown value \"" + name + "\"; expected " + enum_choices_text<E>());
}

// The inverse of to_value.
template <class T>
T from_value(const Value& v) {
  if constexpr (std::is_enum_v<T>) {
    return enum_of<T>(std::get<std::string>(v));
  } else if constexpr (IsEnumList<T>::value) {
    T out;
    for (const auto& name : std::get<Strings>(v)) out.push_back(enum_of<typename T::value_type>(name));
    return out;
  } else {
    return std::get<T>(v);
  }
}

template <class T>
Strings allowed_names() {
  if constexpr (std::is_enum_v<T>) return enum_name_list<T>();
  else if constexpr (IsEnumList<T>::value) return enum_name_list<typename T::value_type>();
  else return {};
}

// One key of a section: `section_member` selects the struct in PipelineSpec,
// `member` the field in it.
template <class S, class T>
KeySpec key(S P::*section, T S::*member, const char* name, typename Exactly<T>::type default_value,
            const char* doc, Limits limits = {}) {
  KeySpec k;
  k.name = name;
  k.kind = kind_of<T>();
  k.default_value = to_value(default_value);
  k.doc = doc;
  k.min = limits.min;
  k.max = limits.max;
  k.min_exclusive = limits.min_exclusive;
  k.max_exclusive = limits.max_exclusive;
  k.one_of = limits.one_of.empty() ? allowed_names<T>() : std::move(limits.one_of);
  k.assign = [section, member](P& spec, const Value& v) { (spec.*section).*member = from_value<T>(v); };
  k.read = [section, member](const P& spec) { return to_value((spec.*section).*member); };
  return k;
}

// A string-list key that also takes one bare string (workers = "local").
KeySpec single_string(KeySpec k) {
  k.single_string_ok = true;
  return k;
}

// A key without a default: the pipeline must set it.
template <class S, class T>
KeySpec required_key(S P::*section, T S::*member, const char* name, const char* doc) {
  KeySpec k = key(section, member, name, T{}, doc);
  k.default_value.reset();
  return k;
}

KeySpec stage_key(const char* name, ValueKind kind, std::optional<Value> default_value,
                  const char* doc, Limits limits = {}) {
  KeySpec k;
  k.name = name;
  k.kind = kind;
  k.default_value = std::move(default_value);
  k.doc = doc;
  k.min = limits.min;
  k.max = limits.max;
  return k;
}

SectionSchema section(const char* name, const char* doc, std::vector<KeySpec> keys) {
  return SectionSchema{name, doc, std::move(keys)};
}

}  // namespace

Schema Schema::builtin() {
  Schema s;
  s.sections_ = {
    section("run", "The run as a whole: length, seed, output folder, checkpoints.", {
      key(&P::run, &RunSpec::name, "name", "", "Run name; empty = the pipeline file's name without extension."),
      key(&P::run, &RunSpec::steps, "steps", 100, "Number of RL steps (one batch of prompts each).", at_least(1)),
      key(&P::run, &RunSpec::seed, "seed", 0, "Seed of every random stream (data order, sampling, noise).", at_least(0)),
      key(&P::run, &RunSpec::out_dir, "out_dir", "", "Run folder (metrics, checkpoints, resolved pipeline); empty = runs/<name>."),
      key(&P::run, &RunSpec::checkpoint_every, "checkpoint_every", 0, "Write a checkpoint after every N steps and after the last one (out_dir/checkpoints/step_000N); 0 = never. qerl-run --resume RUN_DIR continues from the newest.", at_least(0)),
      key(&P::run, &RunSpec::keep_checkpoints, "keep_checkpoints", 3, "How many recent checkpoints to keep; 0 = all.", at_least(0)),
    }),
    section("model", "The policy model: a Hugging Face checkpoint folder.", {
      required_key(&P::model, &ModelSpec::path, "path", "HF folder (config.json, *.safetensors); relative to the pipeline file."),
      key(&P::model, &ModelSpec::dtype, "dtype", ModelDtype::bf16, "Compute dtype of unquantized weights and activations."),
      key(&P::model, &ModelSpec::tokenizer, "tokenizer", "", "tokenizer.json path; empty = <path>/tokenizer.json."),
      key(&P::model, &ModelSpec::max_seq_len, "max_seq_len", 1024, "Longest prompt + response, in tokens.", at_least(1)),
      key(&P::model, &ModelSpec::init, "init", ModelInit::checkpoint, "checkpoint = load the folder's weights; random = HF-style random init from its config.json, seeded by run.seed (SFT from scratch)."),
    }),
    section("data", "Prompts: where they come from and how many per step.", {
      key(&P::data, &DataSpec::source, "source", "builtin:arith", "\"builtin:arith\" (generated GSM8K-style problems) or a GSM8K-style .jsonl path."),
      key(&P::data, &DataSpec::prompts_per_step, "prompts_per_step", 8, "Prompts per RL step.", at_least(1)),
      key(&P::data, &DataSpec::samples_per_prompt, "samples_per_prompt", 8, "Responses sampled per prompt (the GRPO group size G).", at_least(1)),
      key(&P::data, &DataSpec::heldout_size, "heldout_size", 200, "Prompts held out for evaluation.", at_least(0)),
      key(&P::data, &DataSpec::shuffle, "shuffle", true, "Shuffle the training prompts each epoch (seeded by run.seed)."),
      key(&P::data, &DataSpec::max_prompt_len, "max_prompt_len", 0, "Longer prompts are skipped, in tokens; 0 = no limit below model.max_seq_len.", at_least(0)),
      key(&P::data, &DataSpec::prompt_template, "prompt_template", "{question}\n", "Text the model sees: {question} is replaced by the problem (use a chat format for instruct models)."),
    }),
    section("algorithm", "The RL objective and optimizer.", {
      key(&P::algorithm, &AlgorithmSpec::name, "name", rl::Advantage::grpo, "Advantage estimator: group-relative (grpo) or critic-free PPO (ppo)."),
      key(&P::algorithm, &AlgorithmSpec::norm_adv_by_std, "norm_adv_by_std", true, "Divide advantages by the group's std; false = Dr.GRPO."),
      key(&P::algorithm, &AlgorithmSpec::lr, "lr", 1e-5, "Learning rate of the actor (AdamW).", above(0, 1)),
      key(&P::algorithm, &AlgorithmSpec::lr_schedule, "lr_schedule", rl::LrSchedule::constant, "Learning-rate schedule after warmup."),
      key(&P::algorithm, &AlgorithmSpec::warmup_steps, "warmup_steps", 0, "Linear warmup steps.", at_least(0)),
      key(&P::algorithm, &AlgorithmSpec::weight_decay, "weight_decay", 0.0, "AdamW weight decay.", range(0, 1)),
      key(&P::algorithm, &AlgorithmSpec::adam_beta1, "adam_beta1", 0.9, "AdamW first-moment decay.", range(0, 0.999999)),
      key(&P::algorithm, &AlgorithmSpec::adam_beta2, "adam_beta2", 0.999, "AdamW second-moment decay.", range(0, 0.999999)),
      key(&P::algorithm, &AlgorithmSpec::adam_eps, "adam_eps", 1e-8, "AdamW denominator epsilon.", range(1e-12, 1)),
      key(&P::algorithm, &AlgorithmSpec::clip_low, "clip_low", 0.2, "PPO ratio clip below 1 (1 - clip_low).", range(0, 1)),
      key(&P::algorithm, &AlgorithmSpec::clip_high, "clip_high", 0.28, "PPO ratio clip above 1 (1 + clip_high); > clip_low = DAPO clip-higher.", range(0, 10)),
      key(&P::algorithm, &AlgorithmSpec::loss_agg, "loss_agg", rl::LossAgg::token_mean, "How token losses are averaged into the batch loss."),
      key(&P::algorithm, &AlgorithmSpec::kl_coef, "kl_coef", 0.0, "Weight of the KL penalty to the reference model; 0 = no reference.", range(0, 100)),
      key(&P::algorithm, &AlgorithmSpec::kl_estimator, "kl_estimator", rl::KlEstimator::k3, "KL estimator (Schulman's k1 or k3)."),
      key(&P::algorithm, &AlgorithmSpec::entropy_coef, "entropy_coef", 0.0, "Weight of the entropy bonus.", range(0, 100)),
      key(&P::algorithm, &AlgorithmSpec::ppo_epochs, "ppo_epochs", 1, "Passes over each batch.", at_least(1)),
      key(&P::algorithm, &AlgorithmSpec::mini_batch_size, "mini_batch_size", 0, "Sequences per optimizer step; 0 = the whole batch.", at_least(0)),
      key(&P::algorithm, &AlgorithmSpec::max_grad_norm, "max_grad_norm", 1.0, "Gradient-norm clip; 0 = no clipping.", range(0, 1e6)),
    }),
    section("quantization", "Low-precision weights: rollout format and how training treats them.", {
      key(&P::quantization, &QuantizationSpec::scheme, "scheme", models::QuantScheme::none, "4-bit format of the quantized linear layers."),
      key(&P::quantization, &QuantizationSpec::mode, "mode", models::QuantMode::w4a16, "w4a16: 4-bit weights only; w4a4: activations quantized too."),
      key(&P::quantization, &QuantizationSpec::group_size, "group_size", 0, "Elements per block scale; 0 = the scheme's (16 for nvfp4, 32 for mxfp4), the only supported values.", at_least(0)),
      key(&P::quantization, &QuantizationSpec::train, "train", QuantTrain::none, "none: train full precision; qat: fake-quant with straight-through gradients; lora: frozen quantized base + LoRA (QeRL)."),
      key(&P::quantization, &QuantizationSpec::ignore, "ignore", Strings{"lm_head", "re:.*mlp\\.gate$", "re:.*shared_expert_gate$", "re:.*block_sparse_moe\\.gate$"}, "Modules kept in full precision: exact names or \"re:<regex>\" (routers by default)."),
      key(&P::quantization, &QuantizationSpec::fuse_scales, "fuse_scales", true, "q/k/v and gate/up share one global scale (as vLLM expects)."),
    }),
    section("lora", "Low-rank adapters (with quantization.train = \"lora\").", {
      key(&P::lora, &LoraSpec::rank, "rank", 0, "Adapter rank; 0 = no LoRA.", range(0, 4096)),
      key(&P::lora, &LoraSpec::alpha, "alpha", 32.0, "Scaling numerator: the update is (alpha / rank) * B A.", above(0, 1e6)),
      key(&P::lora, &LoraSpec::dropout, "dropout", 0.0, "Dropout on the adapter input.", {0.0, 1.0, false, /*max_exclusive=*/true, {}}),
      key(&P::lora, &LoraSpec::target_modules, "target_modules", Strings{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}, "Linear layers (by name suffix or \"re:<regex>\") that get adapters."),
    }),
    section("aqn", "Adaptive quantization noise: Gaussian noise on norm weights during rollout, decayed in stages (QeRL).", {
      key(&P::aqn, &AqnSpec::enabled, "enabled", false, "Turn the noise schedule on."),
      key(&P::aqn, &AqnSpec::sigma_start, "sigma_start", 1e-2, "Noise std at the first stage.", range(0, 1)),
      key(&P::aqn, &AqnSpec::sigma_end, "sigma_end", 1e-4, "Noise std at the last stage (geometric decay from sigma_start).", range(0, 1)),
      key(&P::aqn, &AqnSpec::num_stages, "num_stages", 10, "Number of constant-sigma stages over run.steps.", at_least(1)),
      key(&P::aqn, &AqnSpec::targets, "targets", Strings{"re:.*norm$"}, "Parameters that get noise: exact names or \"re:<regex>\"."),
      key(&P::aqn, &AqnSpec::exclude, "exclude", Strings{}, "Parameters excluded from targets."),
      key(&P::aqn, &AqnSpec::layer_types, "layer_types", std::vector<AqnLayerType>{AqnLayerType::rmsnorm}, "Kinds of layers whose weights get noise."),
      key(&P::aqn, &AqnSpec::apply_to, "apply_to", AqnApplyTo::rollout, "Which forward passes see the noise."),
    }),
    section("router_replay", "MoE routing replay between rollout and training.", {
      key(&P::router_replay, &RouterReplaySpec::mode, "mode", rl::ReplayMode::disabled, "disabled; R1: record only (the rollout captures routes, router/mismatch_rate compares them with the learner's own; no replay); R2: the learner records routes in its old-log-prob pass and replays them in every epoch and mini-batch; R3: the rollout's routes are replayed in the learner's old-log-prob pass and updates (the last generated token routes natively)."),
    }),
    section("cluster", "Devices of the run.", {
      key(&P::cluster, &ClusterSpec::device, "device", DeviceKind::auto_detect, "auto: CUDA when visible, else CPU."),
      key(&P::cluster, &ClusterSpec::num_gpus, "num_gpus", 0, "Logical GPU slots; 0 = every visible GPU (or, with none, as many as the stages name).", at_least(0)),
      key(&P::cluster, &ClusterSpec::gpu_memory_gib, "gpu_memory_gib", 0.0, "Memory of each CUDA device in GiB for the memory plan (--dry-run prints it; a placement over it is refused); 0 = ask the device (cudaGetDeviceProperties). qerl-run --device-memory overrides it.", range(0, 1e6)),
      single_string(key(&P::cluster, &ClusterSpec::workers, "workers", Strings{}, "Worker processes: [] = one process; \"local\" = qerl-run starts one local worker process per `worker = N` the stages use; [\"host:port\", ...] = workers started with `qerl-run --worker --listen PORT` (stage key worker = N runs on the N-th). Needs QERL_CLUSTER_SECRET or QERL_CLUSTER_SECRET_FILE for host:port workers.")),
    }),
  };
  s.common_stage_keys_ = {
    stage_key("uses", ValueKind::string, std::nullopt, "Stage type (see the stage types below, or one added by a plugin)."),
    stage_key("inputs", ValueKind::string, Value(std::string()), "Table port = \"stage.port\" or port = { from = \"stage.port\", staleness = k } (k >= 0: a back-edge allowing k steps of lag); \"stage\" alone = its only output."),
    stage_key("gpus", ValueKind::integer_list, Value(std::vector<int64_t>{}), "Logical GPU slots of the stage; empty = host CPU. Stages sharing a slot are colocated.", at_least(0)),
    stage_key("replicas", ValueKind::integer, Value(int64_t{1}), "Number of actor replicas.", at_least(1)),
    stage_key("worker", ValueKind::integer, Value(int64_t{0}), "Process of the stage: 0 = the coordinator (qerl-run itself), N >= 1 = worker N of cluster.workers.", at_least(0)),
  };
  return s;
}

}  // namespace qerl::dsl
