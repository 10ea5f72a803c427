// Generation loop: left-padded prefill into the KV cache, then one token per
// step for the whole batch until every row has stopped.
#include "models/generate/generator.hpp"

#include <algorithm>

#include <torch/types.h>
#include <torch/utils.h>

#include "common/error.hpp"

namespace qerl::models {
namespace {

struct PaddedPrompts {
  torch::Tensor ids;   // [B, P] int64
  torch::Tensor mask;  // [B, P] bool, false on the left padding
};

PaddedPrompts left_pad(const std::vector<std::vector<int64_t>>& prompts, int64_t pad, torch::Device device) {
  const auto batch = static_cast<int64_t>(prompts.size());
  int64_t longest = 0;
  for (const auto& p : prompts) longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
  auto ids = torch::full({batch, longest}, pad, torch::kLong);
  auto mask = torch::zeros({batch, longest}, torch::kBool);
  for (int64_t b = 0; b < batch; ++b) {
    const auto n = static_cast<int64_t>(prompts[b].size());
    ids[b].narrow(0, longest - n, n).copy_(torch::tensor(prompts[b], torch::kLong));
    mask[b].narrow(0, longest - n, n).fill_(true);
  }
  return {ids.to(device), mask.to(device)};
}

}  // namespace

std::vector<GeneratedSequence> generate(CausalLMImpl& lm, const std::vector<std::vector<int64_t>>& prompts,
                                        const GenerationConfig& config) {
  if (prompts.empty()) throw Error("generate: no prompts");
  for (const auto& p : prompts) {
    if (p.empty()) throw Error("generate: empty prompt");
    for (int64_t id : p)
      if (id < 0 || id >= lm.config().vocab_size)
        throw Error("generate: token id " + std::to_string(id) + " out of vocabulary");
  }
  if (config.max_new_tokens < 1) throw Error("generate: max_new_tokens must be >= 1");
  validate(config.sampling);
  const StopChecker stop(config.stop);
  torch::NoGradGuard no_grad;

  const auto device = lm.device();
  const auto batch = static_cast<int64_t>(prompts.size());
  auto prompt = left_pad(prompts, config.pad_token_id, device);
  const int64_t prompt_len = prompt.ids.size(1);
  // The last sampled token is never fed back: P + N - 1 slots suffice.
  const int64_t capacity = prompt_len + config.max_new_tokens - 1;
  KVCache cache = KVCache::allocate(lm.config(), batch, capacity, lm.dtype(), device);
  auto generator = make_generator(device, config.seed);
  const bool capture = config.capture_routing && lm.config().is_moe();

  torch::Tensor routing;  // [B, capacity, L_moe, K] int16, filled slot by slot
  if (capture)
    routing = torch::zeros({batch, capacity, lm.config().num_moe_layers(), lm.config().num_experts_per_tok},
                           torch::TensorOptions().dtype(torch::kShort).device(device));
  auto logprobs =
      torch::zeros({batch, config.max_new_tokens}, torch::TensorOptions().dtype(torch::kFloat).device(device));

  std::vector<GeneratedSequence> out(static_cast<size_t>(batch));
  std::vector<bool> finished(static_cast<size_t>(batch), false);
  int64_t running = batch;

  ForwardArgs args;
  args.input_ids = prompt.ids;
  args.attention_mask = prompt.mask;
  args.cache = &cache;
  args.routing = capture ? Routing::capture() : Routing::native();
  args.logits_to_keep = 1;
  for (int64_t step = 0; step < config.max_new_tokens && running > 0; ++step) {
    const int64_t slot = cache.length;
    auto forward = lm.forward(args);
    if (capture) routing.narrow(1, slot, args.input_ids.size(1)).copy_(forward.routing.indices);
    auto sampled = sample_tokens(forward.logits.select(1, -1), config.sampling, generator);
    logprobs.select(1, step).copy_(sampled.logprobs);
    auto host_tokens = sampled.tokens.to(torch::kCPU);  // the one sync per step
    const auto* ids = host_tokens.data_ptr<int64_t>();
    for (int64_t b = 0; b < batch; ++b) {
      if (finished[b]) continue;
      auto& row = out[b];
      row.tokens.push_back(ids[b]);
      if (stop.should_stop(row.tokens, row.finish_reason)) {
        finished[b] = true;
        --running;
      }
    }
    // Finished rows keep decoding (their outputs are dropped) so the batch
    // keeps its shape.
    args.input_ids = sampled.tokens.unsqueeze(1);
    args.attention_mask = torch::Tensor();
  }

  auto host_logprobs = logprobs.to(torch::kCPU);
  auto host_mask = prompt.mask.to(torch::kCPU);
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
