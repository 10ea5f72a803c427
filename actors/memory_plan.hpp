// The memory plan of a placement (issue 16, "colocation that fits"): for
// every device the placement uses, the bytes each model-holding stage
// replica keeps there (weights, packed 4-bit base, LoRA adapters, AQN clean
// copies, fp32 masters, Adam moments, the published update) and the bytes
// it needs only while it runs its turn (KV cache, activations, logits,
// gradients). Stages sharing a device take turns, so a device's planned
// peak is the sum of every persistent part plus the largest turn.
// `qerl-run --dry-run` prints it; a plan over a device's capacity is
// refused at --dry-run and at run start. Formulas: docs/memory-plan.md.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace qerl::dsl {
struct PipelineSpec;
}
namespace qerl::runtime {
struct Placement;
}
namespace qerl::models {
struct ModelConfig;
}

namespace qerl::actors {

// Names of the parts, as the table prints them and tests look them up.
namespace part {
inline constexpr const char* weights = "weights";                 // dense parameters in the model dtype
inline constexpr const char* packed_base = "packed base";         // 4-bit codes + block and global scales
inline constexpr const char* lora = "lora adapters";              // A and B, float32
inline constexpr const char* aqn_clean = "aqn clean copy";        // the noised weights' clean values
inline constexpr const char* masters = "fp32 masters";            // mixed precision: fp32 copies of trainables
inline constexpr const char* adam = "adam moments";               // exp_avg + exp_avg_sq, float32
inline constexpr const char* update = "published update";         // the learner's last snapshot for weight sync
inline constexpr const char* kv_cache = "kv cache";               // rollout / eval / scoring passes
inline constexpr const char* routes = "routes";                   // captured MoE routes (int16)
inline constexpr const char* gradients = "gradients";
inline constexpr const char* activations = "activations (est.)";  // saved for backward, per micro-batch
inline constexpr const char* logits = "logits (est.)";            // response logits, fp32 log-softmax (+ grads)
inline constexpr const char* stacked_experts = "stacked expert lora";  // CUDA MoE path: the experts' LoRA stacked in bf16
}  // namespace part

struct MemoryPart {
  std::string stage;  // the replica's label ("rollout", "rollout[1]")
  std::string part;   // one of part::*
  int64_t bytes = 0;
  bool transient = false;  // only during the stage's turn (else kept across turns)
  std::string detail;      // a short how-counted note for the table
};

struct DeviceMemory {
  std::string device;  // "cuda:0", "cpu"
  std::vector<MemoryPart> parts;
  std::optional<int64_t> capacity;  // bytes; nullopt = unknown (not checked)
  std::string capacity_source;      // "--device-memory", "cluster.gpu_memory_gib", "cudaGetDeviceProperties", "/proc/meminfo MemTotal"

  int64_t persistent() const;
  // The stage whose turn needs the most transient bytes, and those bytes ("" / 0 without one).
  std::string largest_turn() const;
  int64_t largest_turn_bytes() const;
  // Every transient part held at once (what keeping the rollout's KV cache
  // across the other stages' turns would need, at most).
  int64_t all_transient() const;
  int64_t peak() const { return persistent() + largest_turn_bytes(); }
  bool fits() const { return !capacity || peak() <= *capacity; }
};

struct MemoryPlan {
  std::vector<DeviceMemory> devices;  // in order of first use by the placement
  std::vector<std::string> notes;     // what is not planned (plugin stage types, ...)

  // bytes of `part` of stage `stage` (summed over devices), 0 when absent.
  int64_t bytes_of(const std::string& stage, const std::string& part) const;
  // The table --dry-run prints.
  std::string to_text() const;
  // One line per device that does not fit (device, planned total, capacity,
  // largest parts); empty when all fit.
  std::vector<std::string> refusals() const;
};

// KV cache bytes: layers x 2 (K and V) x kv_heads x head_dim x dtype bytes x
// tokens per row x rows.
struct KvShape {
  int64_t layers = 0, kv_heads = 0, head_dim = 0, dtype_bytes = 0, tokens = 0, rows = 0;
};
int64_t kv_cache_bytes(const KvShape& shape);
// The rows a sampling engine generates together out of `rows` (shape.rows
// is ignored): at most max_batch_size (0 = no limit) and, with a budget
// (gpu_memory_fraction x the device's memory, > 0 bytes), the largest power
// of two whose KV cache as the CUDA engine allocates it (rows rounded up to
// a power of two, positions to a multiple of 64) fits; at least 1.
int64_t engine_chunk_rows(const KvShape& shape, int64_t max_batch_size, int64_t rows, int64_t budget_bytes);

// Learner activation estimate for one micro-batch of `rows` rows of
// `tokens` tokens, the attention's keys and values aside
// (docs/memory-plan.md states the formula); `checkpointing`: each layer's
// input only, plus one layer's activations while it runs again.
int64_t learner_activation_bytes(const models::ModelConfig& config, int64_t dtype_bytes, int64_t rows, int64_t tokens,
                                 int64_t lora_rank, bool checkpointing);

// The device's capacity in bytes, or nullopt when unknown.
using CapacityOf = std::function<std::optional<std::pair<int64_t, std::string>>(const std::string& device)>;

// Plans `spec` as `placement` places it from <model.path>/config.json (only
// the config: no weights are read). Without a built-in model-holding stage
// (rollout, eval, reference, learner) or without that file the plan is
// empty and says why in notes; other stage types on a device are noted as
// not counted.
bool holds_model(const std::string& stage_type);
MemoryPlan plan_memory(const dsl::PipelineSpec& spec, const runtime::Placement& placement, const CapacityOf& capacity);

// "512MiB", "80GB", "141 GiB", "1.5TiB", "80" (GiB): bytes; qerl::Error otherwise.
int64_t parse_memory_size(const std::string& text);
// 3 significant digits in binary units: "1.24 GiB", "512 MiB".
std::string memory_text(int64_t bytes);

}  // namespace qerl::actors
