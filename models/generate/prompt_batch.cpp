// Prompt preparation shared by the generation loops; see prompt_batch.hpp.
#include "models/generate/prompt_batch.hpp"

#include <algorithm>
#include <map>

#include "common/error.hpp"

namespace qerl::models {

void check_generation_args(const CausalLMImpl& lm, const std::vector<std::vector<int64_t>>& prompts,
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
}

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

ForwardArgs prefill_args(const PaddedPrompts& prompt, KVCache* cache, bool capture_routing) {
  ForwardArgs args;
  args.input_ids = prompt.ids;
  args.attention_mask = prompt.mask;
  args.cache = cache;
  args.routing = capture_routing ? Routing::capture() : Routing::native();
  args.logits_to_keep = 1;
  return args;
}

SharedPrompts share_prompts(const std::vector<std::vector<int64_t>>& prompts) {
  SharedPrompts out;
  std::map<std::vector<int64_t>, int64_t> index;
  std::vector<int64_t> expand;
  for (const auto& p : prompts) {
    auto [it, fresh] = index.emplace(p, static_cast<int64_t>(out.unique.size()));
    if (fresh) out.unique.push_back(p);
    expand.push_back(it->second);
  }
  out.expand = torch::tensor(expand, torch::kLong);
  return out;
}

}  // namespace qerl::models
