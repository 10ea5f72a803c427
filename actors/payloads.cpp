// Sharding and gathering of the RL payloads across stage replicas: rows are
// split at group boundaries (GRPO needs whole groups), and parts produced
// by several replicas are re-padded to a common prompt/response width and
// concatenated in replica order.
#include "actors/payloads.hpp"

#include <algorithm>

#include "common/error.hpp"

namespace qerl::actors {
namespace {

// Rows that share the first row's group id, i.e. the group size (1 if empty).
int64_t leading_group_size(const std::vector<int64_t>& group_ids) {
  int64_t n = 0;
  while (n < static_cast<int64_t>(group_ids.size()) && group_ids[n] == group_ids.front()) ++n;
  return std::max<int64_t>(n, 1);
}

template <class T>
std::vector<T> slice(const std::vector<T>& v, int64_t begin, int64_t end) {
  return std::vector<T>(v.begin() + begin, v.begin() + end);
}

template <class T>
void append(std::vector<T>& to, const std::vector<T>& from) {
  to.insert(to.end(), from.begin(), from.end());
}

template <class P>
std::vector<std::shared_ptr<const P>> typed_parts(const std::vector<runtime::PayloadPtr>& parts) {
  std::vector<std::shared_ptr<const P>> typed;
  for (const auto& part : parts) {
    auto p = std::dynamic_pointer_cast<const P>(part);
    if (!p) throw Error("cannot gather " + std::string(part ? part->type_name() : "null") + " with " +
                        parts.front()->type_name());
    typed.push_back(std::move(p));
  }
  return typed;
}

// x: [B, W] -> [B, width] padding with `value` on the left or right.
torch::Tensor pad_columns(const torch::Tensor& x, int64_t width, bool left, double value) {
  const int64_t missing = width - x.size(1);
  if (missing == 0) return x;
  std::vector<int64_t> shape = x.sizes().vec();
  shape[1] = missing;
  torch::Tensor fill = torch::full(shape, value, x.options());
  return left ? torch::cat({fill, x}, 1) : torch::cat({x, fill}, 1);
}

}  // namespace

std::pair<int64_t, int64_t> shard_range(int64_t rows, int64_t group, int index, int count) {
  const int64_t groups = (rows + group - 1) / group;
  const int64_t g_begin = groups * index / count;
  const int64_t g_end = groups * (index + 1) / count;
  return {std::min(rows, g_begin * group), std::min(rows, g_end * group)};
}

runtime::PayloadPtr PromptBatch::shard(int index, int count) const {
  const auto [begin, end] = shard_range(size(), leading_group_size(group_ids), index, count);
  auto part = std::make_shared<PromptBatch>();
  part->prompt_ids = slice(prompt_ids, begin, end);
  part->answers = slice(answers, begin, end);
  part->group_ids = slice(group_ids, begin, end);
  part->problem_ids = slice(problem_ids, begin, end);
  return part;
}

std::shared_ptr<RolloutBatch> RolloutBatch::rows(int64_t begin, int64_t end) const {
  auto part = std::make_shared<RolloutBatch>(*this);
  const int64_t P = prompt_width;
  torch::Tensor mask = attention_mask.slice(0, begin, end);
  torch::Tensor resp = response_mask.slice(0, begin, end);
  // Trim columns no row of the part uses: leading prompt padding, trailing response padding.
  int64_t first_real = P, last_resp = 0;
  if (end > begin) {
    const torch::Tensor prompt_real = mask.slice(1, 0, P).any(0);
    const torch::Tensor resp_any = resp.any(0);
    const auto nz_p = prompt_real.nonzero();
    const auto nz_r = resp_any.nonzero();
    first_real = nz_p.numel() ? nz_p[0].item<int64_t>() : P;
    last_resp = nz_r.numel() ? nz_r[-1].item<int64_t>() + 1 : 0;
  }
  auto cols = [&](const torch::Tensor& t) { return t.slice(0, begin, end).slice(1, first_real, P + last_resp); };
  part->tokens = cols(tokens);
  part->attention_mask = cols(attention_mask);
  part->response_mask = resp.slice(1, 0, last_resp);
  if (rollout_logprobs.defined()) part->rollout_logprobs = rollout_logprobs.slice(0, begin, end).slice(1, 0, last_resp);
  if (routing.defined()) part->routing = cols(routing);
  part->prompt_width = P - first_real;
  part->responses = slice(responses, begin, end);
  part->answers = slice(answers, begin, end);
  part->group_ids = slice(group_ids, begin, end);
  part->truncated = slice(truncated, begin, end);
  return part;
}

runtime::PayloadPtr RolloutBatch::shard(int index, int count) const {
  const auto [begin, end] = shard_range(size(), leading_group_size(group_ids), index, count);
  return rows(begin, end);
}

runtime::PayloadPtr RolloutBatch::gather(const std::vector<runtime::PayloadPtr>& parts) const {
  const auto batches = typed_parts<RolloutBatch>(parts);
  int64_t P = 0, R = 0;
  for (const auto& b : batches) P = std::max(P, b->prompt_width), R = std::max(R, b->response_width());
  auto whole = std::make_shared<RolloutBatch>();
  whole->prompt_width = P;
  whole->pad_token_id = pad_token_id;
  whole->temperature = temperature;
  whole->weight_version = weight_version;
  std::vector<torch::Tensor> tokens, attn, resp, logp, routes;
  for (const auto& b : batches) {
    const int64_t p = b->prompt_width;
    auto widen = [&](const torch::Tensor& t, double value) {
      // Left part (prompt) padded on the left to P, right part on the right to R.
      return torch::cat({pad_columns(t.slice(1, 0, p), P, /*left=*/true, value),
                         pad_columns(t.slice(1, p), R, /*left=*/false, value)}, 1);
    };
    tokens.push_back(widen(b->tokens, static_cast<double>(b->pad_token_id)));
    attn.push_back(widen(b->attention_mask, 0));
    resp.push_back(pad_columns(b->response_mask, R, /*left=*/false, 0));
    if (b->rollout_logprobs.defined()) logp.push_back(pad_columns(b->rollout_logprobs, R, false, 0));
    if (b->routing.defined()) routes.push_back(widen(b->routing, 0));
    append(whole->responses, b->responses);
    append(whole->answers, b->answers);
    append(whole->group_ids, b->group_ids);
    append(whole->truncated, b->truncated);
    whole->weight_version = std::max(whole->weight_version, b->weight_version);
  }
  whole->tokens = torch::cat(tokens, 0);
  whole->attention_mask = torch::cat(attn, 0);
  whole->response_mask = torch::cat(resp, 0);
  if (logp.size() == batches.size()) whole->rollout_logprobs = torch::cat(logp, 0);
  if (routes.size() == batches.size()) whole->routing = torch::cat(routes, 0);
  return whole;
}

runtime::PayloadPtr Scores::shard(int index, int count) const {
  const auto [begin, end] = shard_range(rewards.size(0), 1, index, count);
  auto part = std::make_shared<Scores>();
  part->rewards = rewards.slice(0, begin, end);
  part->correct = slice(correct, begin, end);
  part->formatted = slice(formatted, begin, end);
  return part;
}

runtime::PayloadPtr Scores::gather(const std::vector<runtime::PayloadPtr>& parts) const {
  auto whole = std::make_shared<Scores>();
  std::vector<torch::Tensor> rewards;
  for (const auto& s : typed_parts<Scores>(parts)) {
    rewards.push_back(s->rewards);
    append(whole->correct, s->correct);
    append(whole->formatted, s->formatted);
  }
  whole->rewards = torch::cat(rewards, 0);
  return whole;
}

runtime::PayloadPtr RefLogprobs::gather(const std::vector<runtime::PayloadPtr>& parts) const {
  const auto typed = typed_parts<RefLogprobs>(parts);
  auto whole = std::make_shared<RefLogprobs>();
  int64_t R = 0;
  for (const auto& p : typed) {
    if (!p->logprobs.defined()) return whole;  // the reference was skipped
    R = std::max(R, p->logprobs.size(1));
  }
  std::vector<torch::Tensor> rows;
  for (const auto& p : typed) rows.push_back(pad_columns(p->logprobs, R, /*left=*/false, 0));
  whole->logprobs = torch::cat(rows, 0);
  return whole;
}

}  // namespace qerl::actors
