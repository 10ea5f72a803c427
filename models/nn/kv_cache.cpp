// KVCache allocation.
#include "models/nn/kv_cache.hpp"

#include <torch/types.h>

#include "common/error.hpp"

namespace qerl::models {

KVCache KVCache::select_rows(const torch::Tensor& rows) const {
  KVCache out;
  for (const auto& k : keys) out.keys.push_back(k.index_select(0, rows));
  for (const auto& v : values) out.values.push_back(v.index_select(0, rows));
  out.valid = valid.index_select(0, rows);
  out.next_position = next_position.index_select(0, rows);
  out.length = length;
  if (slot.defined()) out.slot = slot.clone();
  return out;
}

KVCache KVCache::leading_rows(int64_t rows) const {
  if (rows <= 0 || rows > batch_size())
    throw Error("KVCache: " + std::to_string(rows) + " leading rows of a cache of " + std::to_string(batch_size()));
  KVCache out;
  for (const auto& k : keys) out.keys.push_back(k.narrow(0, 0, rows));
  for (const auto& v : values) out.values.push_back(v.narrow(0, 0, rows));
  out.valid = valid.narrow(0, 0, rows);
  out.next_position = next_position.narrow(0, 0, rows);
  out.length = length;
  out.slot = slot;
  return out;
}

KVCache KVCache::allocate(const ModelConfig& config, int64_t batch_size, int64_t max_length, torch::ScalarType dtype,
                          torch::Device device) {
  if (batch_size <= 0 || max_length <= 0) throw Error("KVCache: batch size and length must be positive");
  KVCache cache;
  const auto options = torch::TensorOptions().dtype(dtype).device(device);
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    cache.keys.push_back(torch::zeros({batch_size, config.num_key_value_heads, max_length, config.head_dim}, options));
    cache.values.push_back(
        torch::zeros({batch_size, config.num_key_value_heads, max_length, config.head_dim}, options));
  }
  cache.valid = torch::zeros({batch_size, max_length}, options.dtype(torch::kBool));
  cache.next_position = torch::zeros({batch_size}, options.dtype(torch::kLong));
  return cache;
}

}  // namespace qerl::models
