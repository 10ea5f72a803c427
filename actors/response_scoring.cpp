// Scoring response tokens under a model (see response_scoring.hpp).
#include "actors/response_scoring.hpp"

#include "rl/token_stats.hpp"

namespace qerl::actors {

ResponseScores score_responses(models::CausalLMImpl& lm, const RolloutBatch& batch, const torch::Tensor& rows,
                               bool with_entropy, const models::Routing& routing) {
  const int64_t R = batch.response_width();
  models::ForwardArgs args;
  args.input_ids = batch.tokens.index_select(0, rows.to(batch.tokens.device())).to(lm.device());
  args.attention_mask = batch.attention_mask.index_select(0, rows.to(batch.tokens.device())).to(lm.device());
  args.routing = routing;
  args.logits_to_keep = R + 1;
  // logits: [b, R + 1, V]; position P - 1 + j predicts response token j.
  torch::Tensor logits = lm.forward(args).logits.slice(1, 0, R).to(torch::kFloat);
  if (batch.temperature > 0 && batch.temperature != 1.0) logits = logits / batch.temperature;
  const torch::Tensor targets = args.input_ids.slice(1, batch.prompt_width, batch.prompt_width + R);
  ResponseScores out;
  out.logprobs = rl::token_logprobs(logits, targets);
  if (with_entropy) out.entropy = rl::token_entropy(logits);
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
