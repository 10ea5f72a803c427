// Scoring response tokens under a model (see response_scoring.hpp). Rows
// that share their prompt (a GRPO group) share one prompt pass: the prompt
// runs once per distinct prompt into a KV cache whose rows are then copied
// to every member, and the responses run on top of it. Gradients flow
// through the copy into the shared prompt activations, so log-probs and
// gradients equal those of one full forward per row (up to float rounding),
// at (U*P + b*R) instead of b*(P + R) tokens of compute.
#include "actors/response_scoring.hpp"

#include <map>
#include <vector>

#include "models/nn/kv_cache.hpp"
#include "rl/token_stats.hpp"

namespace qerl::actors {
namespace {

// Logits predicting response tokens 0..R-1 ([b, R, V] model dtype) and the
// routing record of the pass ([b, P + R, L, K] int16, capture / replay only).
struct ScoringPass {
  torch::Tensor logits;
  models::RoutingRecord routing;
};

ScoringPass full_forward(models::CausalLMImpl& lm, const torch::Tensor& tokens, const torch::Tensor& attention,
                         int64_t R, const models::Routing& routing) {
  models::ForwardArgs args;
  args.input_ids = tokens.to(lm.device());
  args.attention_mask = attention.to(lm.device());
  args.routing = routing;
  args.logits_to_keep = R + 1;
  // logits: [b, R + 1, V]; position P - 1 + j predicts response token j.
  auto out = lm.forward(args);
  return {out.logits.slice(1, 0, R), std::move(out.routing)};
}

// The columns [begin, end) of a replay request (indices and mask), or the
// request itself when it is not a replay.
models::Routing route_columns(const models::Routing& routing, const torch::Tensor& rows, int64_t begin,
                              int64_t end) {
  if (routing.mode != models::RoutingMode::replay) return routing;
  auto pick = [&](const torch::Tensor& t) {
    if (!t.defined()) return t;
    const auto picked = rows.defined() ? t.index_select(0, rows.to(t.device())) : t;
    return picked.slice(1, begin, end);
  };
  return models::Routing::replay(pick(routing.indices), pick(routing.replay_mask));
}

// Joins the prompt pass's record (per distinct prompt, spread to members)
// with the responses' record and a zero last column: [b, P + R, L, K].
torch::Tensor join_records(const torch::Tensor& prompt, const torch::Tensor& responses,
                           const torch::Tensor& member_of) {
  if (!prompt.defined()) return {};
  const auto spread = prompt.index_select(0, member_of.to(prompt.device()));
  std::vector<torch::Tensor> parts{spread};
  if (responses.defined()) parts.push_back(responses);
  parts.push_back(torch::zeros_like(spread.slice(1, 0, 1)));
  return torch::cat(parts, 1);
}

}  // namespace

PromptGroups group_prompts(const torch::Tensor& prompts, const torch::Tensor& prompt_mask) {
  std::map<std::vector<int64_t>, int64_t> index;
  std::vector<int64_t> first, member;
  // The key is ids and mask: a prompt that starts with the pad id is not a shorter padded one.
  const auto ids = prompts.to(torch::kCPU).contiguous();
  const auto real = prompt_mask.to(torch::kCPU).to(torch::kLong).contiguous();
  const int64_t b = ids.size(0), P = ids.size(1);
  for (int64_t i = 0; i < b; ++i) {
    std::vector<int64_t> key(ids.data_ptr<int64_t>() + i * P, ids.data_ptr<int64_t>() + (i + 1) * P);
    key.insert(key.end(), real.data_ptr<int64_t>() + i * P, real.data_ptr<int64_t>() + (i + 1) * P);
    auto [it, fresh] = index.emplace(std::move(key), static_cast<int64_t>(first.size()));
    if (fresh) first.push_back(i);
    member.push_back(it->second);
  }
  if (static_cast<int64_t>(first.size()) == b) return {};
  return {torch::tensor(first, torch::kLong), torch::tensor(member, torch::kLong)};
}

namespace {

// Prompt pass over the distinct prompts, then the responses (all but the
// last token, whose successor is not scored) over the copied cache. Replayed
// routes split the same way: prompt columns for the distinct prompts (every
// member of a group shares its prompt's routes), response columns per row.
ScoringPass shared_prompt_forward(models::CausalLMImpl& lm, const torch::Tensor& tokens,
                                  const torch::Tensor& attention, int64_t P, int64_t R, const PromptGroups& groups,
                                  const models::Routing& routing) {
  const torch::Device device = lm.device();
  const int64_t U = groups.prompt_rows.size(0);
  models::KVCache cache = models::KVCache::allocate(lm.config(), U, P + R, lm.dtype(), device);
  models::ForwardArgs prompt;
  prompt.input_ids = tokens.index_select(0, groups.prompt_rows).slice(1, 0, P).to(device);
  prompt.attention_mask = attention.index_select(0, groups.prompt_rows).slice(1, 0, P).to(device);
  prompt.cache = &cache;
  prompt.routing = route_columns(routing, groups.prompt_rows, 0, P);
  prompt.logits_to_keep = 1;
  const torch::Tensor member_of = groups.member_of.to(device);
  auto prompt_out = lm.forward(prompt);
  torch::Tensor first = prompt_out.logits.index_select(0, member_of);  // [b, 1, V]: predicts token 0
  ScoringPass out;
  if (R == 1) {
    out.logits = first;
    out.routing.indices = join_records(prompt_out.routing.indices, {}, member_of);
    out.routing.native_indices = join_records(prompt_out.routing.native_indices, {}, member_of);
    return out;
  }

  // The members' copy: writes to it leave the prompt pass's saved tensors alone.
  models::KVCache rows = cache.select_rows(member_of);
  models::ForwardArgs responses;
  responses.input_ids = tokens.slice(1, P, P + R - 1).to(device);
  responses.attention_mask = attention.slice(1, P, P + R - 1).to(device);
  responses.cache = &rows;
  responses.routing = route_columns(routing, {}, P, P + R - 1);
  auto response_out = lm.forward(responses);  // logits [b, R - 1, V]: position j predicts token j + 1
  out.logits = torch::cat({first, response_out.logits}, 1);
  out.routing.indices = join_records(prompt_out.routing.indices, response_out.routing.indices, member_of);
  out.routing.native_indices =
      join_records(prompt_out.routing.native_indices, response_out.routing.native_indices, member_of);
  return out;
}

}  // namespace

ResponseScores score_responses(models::CausalLMImpl& lm, const RolloutBatch& batch, const torch::Tensor& rows,
                               bool with_entropy, const models::Routing& routing) {
  const int64_t P = batch.prompt_width, R = batch.response_width();
  const torch::Tensor cpu_rows = rows.to(torch::kCPU);
  const torch::Tensor tokens = batch.tokens.index_select(0, cpu_rows.to(batch.tokens.device()));
  const torch::Tensor attention = batch.attention_mask.index_select(0, cpu_rows.to(batch.attention_mask.device()));
  const PromptGroups groups =
      R > 0 && P > 0 ? group_prompts(tokens.slice(1, 0, P), attention.slice(1, 0, P)) : PromptGroups{};
  ScoringPass pass = groups.prompt_rows.defined()
                         ? shared_prompt_forward(lm, tokens, attention, P, R, groups, routing)
                         : full_forward(lm, tokens, attention, R, routing);
  torch::Tensor logits = pass.logits.to(torch::kFloat);
  if (batch.temperature > 0 && batch.temperature != 1.0) logits = logits / batch.temperature;
  const torch::Tensor targets = tokens.slice(1, P, P + R).to(lm.device());
  ResponseScores out;
  out.logprobs = rl::token_logprobs(logits, targets);
  if (with_entropy) out.entropy = rl::token_entropy(logits);
  out.routing = std::move(pass.routing);
  return out;
}

torch::Tensor response_logprobs(models::CausalLMImpl& lm, const RolloutBatch& batch, int64_t micro_batch) {
  torch::NoGradGuard no_grad;
  const int64_t B = batch.size();
  const int64_t step = micro_batch > 0 ? micro_batch : std::max<int64_t>(B, 1);
  std::vector<torch::Tensor> parts;
  for (int64_t begin = 0; begin < B; begin += step)
    parts.push_back(score_responses(lm, batch, torch::arange(begin, std::min(B, begin + step)), /*with_entropy=*/false)
                        .logprobs);
  return parts.empty() ? torch::zeros({0, batch.response_width()}) : torch::cat(parts, 0);
}

}  // namespace qerl::actors
