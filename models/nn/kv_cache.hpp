// Preallocated ("static") key/value cache for incremental decoding. Every
// row of the batch shares the slot index: slot t of all rows is written by
// the same forward call, so padding (left or ragged) is expressed by the
// `valid` mask, not by per-row offsets. Fixed shapes keep the layout ready
// for CUDA graphs / fused decode kernels; nothing here syncs with the host.
#pragma once

#include <cstdint>
#include <vector>

#include <torch/types.h>

#include "models/nn/model_config.hpp"

namespace qerl::models {

struct KVCache {
  std::vector<torch::Tensor> keys;    // per layer [B, H_kv, S_max, D] model dtype
  std::vector<torch::Tensor> values;  // per layer [B, H_kv, S_max, D] model dtype
  torch::Tensor valid;                // [B, S_max] bool: slot holds a real token
  torch::Tensor next_position;        // [B] int64: RoPE position of the row's next real token
  int64_t length = 0;                 // slots filled so far (host-side, same for all rows)
  torch::Tensor slot;                 // static mode: [1] int64 on the device, the slot the next step writes

  bool is_static() const { return slot.defined(); }

  int64_t batch_size() const { return valid.size(0); }
  int64_t capacity() const { return valid.size(1); }

  // Rows `rows` ([n] int64 on the cache's device, in that order) as a new
  // cache: copies, so writing to it leaves this one (and any autograd graph
  // that saved it) alone. Used to copy a shared prompt's rows to its
  // repeats and to drop finished rows.
  KVCache select_rows(const torch::Tensor& rows) const;

  // The first `rows` rows as views of this cache's storage (static mode:
  // sharing its slot), so that a step on them writes here.
  KVCache leading_rows(int64_t rows) const;

  static KVCache allocate(const ModelConfig& config, int64_t batch_size, int64_t max_length, torch::ScalarType dtype,
                          torch::Device device);
};

}  // namespace qerl::models
