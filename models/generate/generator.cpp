// Generation loop: left-padded prefill of the distinct prompts into the KV
// cache (copied to their repeats), then one token per step for every row
// still decoding; the batch (and its cache) shrinks to the unfinished rows
// once a quarter of it has stopped.
#include "models/generate/generator.hpp"

#include <algorithm>

#include <torch/types.h>
#include <torch/utils.h>

#include "common/error.hpp"
#include "models/generate/prompt_batch.hpp"

namespace qerl::models {

std::vector<GeneratedSequence> generate(CausalLMImpl& lm, const std::vector<std::vector<int64_t>>& prompts,
                                        const GenerationConfig& config) {
  check_generation_args(lm, prompts, config);
  const StopChecker stop(config.stop);
  torch::NoGradGuard no_grad;

  const auto device = lm.device();
  const auto batch = static_cast<int64_t>(prompts.size());
  const SharedPrompts shared = share_prompts(prompts);
  const torch::Tensor expand = shared.expand.to(device);
  const auto distinct = static_cast<int64_t>(shared.unique.size());
  auto prompt = left_pad(shared.unique, config.pad_token_id, device);  // [U, P]
  const int64_t prompt_len = prompt.ids.size(1);
  // The last sampled token is never fed back: P + N - 1 slots suffice.
  const int64_t capacity = prompt_len + config.max_new_tokens - 1;
  KVCache cache = KVCache::allocate(lm.config(), distinct, capacity, lm.dtype(), device);
  auto generator = make_generator(device, config.seed);
  const bool capture = config.capture_routing && lm.config().is_moe();

  torch::Tensor routing;  // [B, capacity, L_moe, K] int16, filled slot by slot
  if (capture)
    routing = torch::zeros({batch, capacity, lm.config().num_moe_layers(), lm.config().num_experts_per_tok},
                           torch::TensorOptions().dtype(torch::kShort).device(device));
  auto logprobs =
      torch::zeros({batch, config.max_new_tokens}, torch::TensorOptions().dtype(torch::kFloat).device(device));

  std::vector<GeneratedSequence> out(static_cast<size_t>(batch));
  // Rows still decoding: the batch shrinks to them once a quarter of it has
  // stopped, so short responses stop costing compute.
  std::vector<bool> finished(static_cast<size_t>(batch), false);
  int64_t running = batch;
  std::vector<int64_t> active_rows(static_cast<size_t>(batch));
  for (int64_t b = 0; b < batch; ++b) active_rows[b] = b;
  torch::Tensor active = torch::arange(batch, torch::TensorOptions().dtype(torch::kLong).device(device));

  ForwardArgs args = prefill_args(prompt, &cache, capture);
  for (int64_t step = 0; step < config.max_new_tokens && running > 0; ++step) {
    const int64_t slot = cache.length;
    auto forward = lm.forward(args);
    torch::Tensor next_logits = forward.logits.select(1, -1);  // [A, V] ([U, V] after the prefill)
    torch::Tensor routes = capture ? forward.routing.indices : torch::Tensor();
    if (step == 0 && distinct < batch) {
      cache = cache.select_rows(expand);
      next_logits = next_logits.index_select(0, expand);
      if (capture) routes = routes.index_select(0, expand);
    }
    if (capture) routing.narrow(1, slot, args.input_ids.size(1)).index_copy_(0, active, routes);
    auto sampled = sample_tokens(next_logits, config.sampling, generator);
    logprobs.select(1, step).index_copy_(0, active, sampled.logprobs);
    auto host_tokens = sampled.tokens.to(torch::kCPU);  // the one sync per step
    const auto* ids = host_tokens.data_ptr<int64_t>();
    std::vector<int64_t> keep;  // positions in the current batch of rows that go on
    for (size_t a = 0; a < active_rows.size(); ++a) {
      const int64_t b = active_rows[a];
      if (finished[b]) continue;  // stopped since the last shrink: its outputs are dropped
      auto& row = out[b];
      row.tokens.push_back(ids[a]);
      if (stop.should_stop(row.tokens, row.finish_reason)) {
        finished[b] = true;
        --running;
      } else {
        keep.push_back(static_cast<int64_t>(a));
      }
    }
    torch::Tensor next = sampled.tokens;
    if (running > 0 && 4 * keep.size() <= 3 * active_rows.size()) {
      const torch::Tensor kept = torch::tensor(keep, torch::kLong).to(device);
      cache = cache.select_rows(kept);
      next = next.index_select(0, kept);
      active = active.index_select(0, kept);
      std::vector<int64_t> rows;
      for (int64_t a : keep) rows.push_back(active_rows[a]);
      active_rows = std::move(rows);
    }
    args.input_ids = next.unsqueeze(1);
    args.attention_mask = torch::Tensor();
  }

  auto host_logprobs = logprobs.to(torch::kCPU);
  auto host_mask = prompt.mask.index_select(0, expand).to(torch::kCPU);
  for (int64_t b = 0; b < batch; ++b) {
    auto& row = out[b];
    const auto n = static_cast<int64_t>(row.tokens.size());
    auto lp = host_logprobs[b].narrow(0, 0, n).contiguous();
    row.logprobs.assign(lp.data_ptr<float>(), lp.data_ptr<float>() + n);
    if (capture) {
      auto prompt_slots = host_mask[b].nonzero().squeeze(1);
      auto generated_slots = torch::arange(prompt_len, prompt_len + n - 1, torch::kLong);
      auto slots = torch::cat({prompt_slots, generated_slots}).to(device);
      row.routing = routing[b].index_select(0, slots).to(torch::kCPU);
    }
  }
  return out;
}

}  // namespace qerl::models
