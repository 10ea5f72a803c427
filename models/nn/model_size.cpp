// Parameter count of a ModelConfig (mirrors the modules' constructors:
// attention.cpp, swiglu.cpp, sparse_moe.cpp, decoder_layer.cpp, causal_lm.cpp)
// and the memory available to this process, for CausalLM's up-front check.
#include "models/nn/model_size.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "common/error.hpp"

namespace qerl::models {
namespace {

// "12.3 GiB": a byte count in binary units, three significant digits.
std::string bytes_text(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  size_t unit = 0;
  while (bytes >= 1024 && unit + 1 < sizeof units / sizeof units[0]) {
    bytes /= 1024;
    ++unit;
  }
  char text[64];
  std::snprintf(text, sizeof text, "%.3g %s", bytes, units[unit]);
  return text;
}

// A "<Key>: <n> kB" line of /proc/meminfo, in bytes.
std::optional<double> meminfo_bytes(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) != 0) continue;
    std::istringstream fields(line.substr(key.size() + 1));
    double kib = 0;
    if (fields >> kib) return kib * 1024;
  }
  return std::nullopt;
}

// A number from a cgroup file ("max" or unreadable: nullopt).
std::optional<double> cgroup_number(const std::string& file) {
  std::ifstream in(file);
  double value = 0;
  if (in >> value) return value;
  return std::nullopt;
}

// memory.max - memory.current of this process's cgroup v2, when it has a limit.
std::optional<double> cgroup_room() {
  std::ifstream in("/proc/self/cgroup");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("0::", 0) != 0) continue;  // the unified (v2) hierarchy
    const std::string dir = "/sys/fs/cgroup" + line.substr(3);
    const auto limit = cgroup_number(dir + "/memory.max");
    if (!limit) return std::nullopt;
    return *limit - cgroup_number(dir + "/memory.current").value_or(0);
  }
  return std::nullopt;
}

}  // namespace

double parameter_count(const ModelConfig& c) {
  const double hidden = static_cast<double>(c.hidden_size), head_dim = static_cast<double>(c.head_dim);
  const double q_width = static_cast<double>(c.num_attention_heads) * head_dim;
  const double kv_width = static_cast<double>(c.num_key_value_heads) * head_dim;
  // self_attn: q/k/v/o projections, their biases, per-head q/k norms.
  const double attention = hidden * (q_width + 2 * kv_width) + q_width * hidden +
                           (c.qkv_bias ? q_width + 2 * kv_width : 0) + (c.o_bias ? hidden : 0) +
                           (c.qk_norm ? 2 * head_dim : 0);
  const auto swiglu = [hidden](double width, bool bias) {
    return 3 * hidden * width + (bias ? 2 * width + hidden : 0);  // gate, up, down (+ their biases)
  };
  const double dense_mlp = swiglu(static_cast<double>(c.intermediate_size), c.mlp_bias);
  const double experts = static_cast<double>(c.num_experts);
  double moe = hidden * experts + experts * swiglu(static_cast<double>(c.moe_intermediate_size), false);
  if (c.shared_expert_intermediate_size > 0)
    moe += swiglu(static_cast<double>(c.shared_expert_intermediate_size), false) + hidden;
  const double moe_layers = static_cast<double>(c.num_moe_layers());
  const double dense_layers = static_cast<double>(c.num_hidden_layers) - moe_layers;
  const double per_layer = attention + 2 * hidden;  // + input / post-attention norms
  const double embedding = static_cast<double>(c.vocab_size) * hidden;
  return embedding * (c.tie_word_embeddings ? 1 : 2) + hidden +
         static_cast<double>(c.num_hidden_layers) * per_layer + dense_layers * dense_mlp + moe_layers * moe;
}

std::optional<double> available_memory_bytes() {
  std::optional<double> available;
  if (const auto mem = meminfo_bytes("MemAvailable")) available = *mem + meminfo_bytes("SwapFree").value_or(0);
  if (const auto room = cgroup_room(); room && (!available || *room < *available)) available = *room;
  return available;
}

ModelConfig require_memory_for(ModelConfig config, std::optional<double> available) {
  const double parameters = parameter_count(config);
  const double needed = 4 * parameters;  // float32, as the modules are constructed
  if (available && needed > *available) {
    char count[32];
    std::snprintf(count, sizeof count, "%.3g", parameters);
    throw Error("config.json: the model has " + std::string(count) + " parameters (vocab_size " +
                std::to_string(config.vocab_size) + ", hidden_size " + std::to_string(config.hidden_size) +
                ", intermediate_size " + std::to_string(config.intermediate_size) + ", num_hidden_layers " +
                std::to_string(config.num_hidden_layers) +
                (config.is_moe() ? ", " + std::to_string(config.num_experts) + " experts of moe_intermediate_size " +
                                       std::to_string(config.moe_intermediate_size)
                                 : std::string()) +
                "): building it in float32 needs " + bytes_text(needed) + ", but only " + bytes_text(*available) +
                " of memory is available");
  }
  return config;
}

}  // namespace qerl::models
