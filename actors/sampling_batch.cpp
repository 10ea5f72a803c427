// Generation into the RolloutBatch layout (see sampling_batch.hpp).
#include "actors/sampling_batch.hpp"

#include <algorithm>
#include <chrono>

#if QERL_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "actors/memory_plan.hpp"
#include "actors/stage_options.hpp"

namespace qerl::actors {

GenerationLimits generation_limits(const dsl::StageSpec& stage, torch::Device device, int64_t dtype_bytes) {
  GenerationLimits limits;
  limits.max_batch_size = stage.option<int64_t>("max_batch_size");
  limits.kv_dtype_bytes = dtype_bytes;
  limits.release_kv_cache = stage.choice_option<KvCachePolicy>("kv_cache") == KvCachePolicy::release;
  limits.cuda = device.is_cuda();
  const double fraction = stage.option<double>("gpu_memory_fraction");
#if QERL_CUDA
  if (fraction > 0 && device.is_cuda()) {
    const auto total = static_cast<double>(at::cuda::getDeviceProperties(device.index() < 0 ? 0 : device.index())->totalGlobalMem);
    limits.kv_budget_bytes = static_cast<int64_t>(fraction * total);
  }
#else
  (void)device;
  (void)fraction;
#endif
  return limits;
}

SampledBatch sample_batch(models::SamplingEngine& engine, const models::Tokenizer& tokenizer,
                          const std::vector<std::vector<int64_t>>& prompts, models::GenerationConfig config,
                          const GenerationLimits& limits) {
  const int64_t B = static_cast<int64_t>(prompts.size());
  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.size());
  const models::ModelConfig& model = engine.model_config();
  const int64_t chunk = engine_chunk_rows({model.num_hidden_layers, model.num_key_value_heads, model.head_dim,
                                           limits.kv_dtype_bytes, static_cast<int64_t>(longest) + config.max_new_tokens, 1},
                                          limits.max_batch_size, B, limits.kv_budget_bytes);
#if QERL_CUDA
  // With the cache released between turns, the blocks other stages freed
  // but LibTorch's allocator still holds go back to the device first: the
  // cache is then allocated from free memory rather than beside a
  // fragmented pool (measured on the A2.7B pipeline: 99 GiB reserved for
  // 84 GiB allocated without this), and the device holds what the memory
  // plan counts.
  if (limits.release_kv_cache && limits.cuda) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
  const uint64_t base_seed = config.seed;
  std::vector<models::GeneratedSequence> sequences;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t begin = 0, c = 0; begin < B; begin += chunk, ++c) {
    std::vector<std::vector<int64_t>> part(prompts.begin() + begin, prompts.begin() + std::min(B, begin + chunk));
    config.seed = base_seed + static_cast<uint64_t>(c);
    for (auto& s : engine.generate(part, config)) sequences.push_back(std::move(s));
  }
  if (limits.release_kv_cache) {
    engine.release_cache();
#if QERL_CUDA
    if (limits.cuda) c10::cuda::CUDACachingAllocator::emptyCache();  // the cache's memory back for the others' turns
#endif
  }
  SampledBatch out;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.chunk_rows = chunk;

  int64_t P = 0, R = 0;
  for (int64_t i = 0; i < B; ++i) {
    P = std::max<int64_t>(P, prompts[i].size());
    R = std::max<int64_t>(R, sequences[i].tokens.size());
    out.generated_tokens += static_cast<int64_t>(sequences[i].tokens.size());
  }
  auto batch = std::make_shared<RolloutBatch>();
  batch->prompt_width = P;
  batch->pad_token_id = config.pad_token_id;
  batch->temperature = config.sampling.temperature;
  batch->tokens = torch::full({B, P + R}, config.pad_token_id, torch::kLong);
  batch->attention_mask = torch::zeros({B, P + R}, torch::kBool);
  batch->response_mask = torch::zeros({B, R}, torch::kBool);
  batch->rollout_logprobs = torch::zeros({B, R}, torch::kFloat);
  auto tok = batch->tokens.accessor<int64_t, 2>();
  auto attn = batch->attention_mask.accessor<bool, 2>();
  auto resp = batch->response_mask.accessor<bool, 2>();
  auto logp = batch->rollout_logprobs.accessor<float, 2>();
  if (config.capture_routing && B > 0 && sequences[0].routing.defined()) {
    const auto& r0 = sequences[0].routing;
    batch->routing = torch::zeros({B, P + R, r0.size(1), r0.size(2)}, torch::kShort);
  }
  for (int64_t i = 0; i < B; ++i) {
    const auto& prompt = prompts[i];
    const auto& seq = sequences[i];
    const int64_t start_col = P - static_cast<int64_t>(prompt.size());
    for (size_t j = 0; j < prompt.size(); ++j) tok[i][start_col + j] = prompt[j], attn[i][start_col + j] = true;
    for (size_t j = 0; j < seq.tokens.size(); ++j) {
      tok[i][P + j] = seq.tokens[j];
      attn[i][P + j] = true;
      resp[i][j] = true;
      logp[i][j] = seq.logprobs[j];
    }
    if (batch->routing.defined() && seq.routing.defined()) {
      // [P_i + N - 1, L, K]: the prompt and every generated token but the last.
      batch->routing[i].slice(0, start_col, start_col + seq.routing.size(0)).copy_(seq.routing.to(torch::kCPU));
    }
    std::vector<models::TokenId> ids(seq.tokens.begin(), seq.tokens.end());
    batch->responses.push_back(tokenizer.decode(ids, /*skip_special_tokens=*/true));
    batch->truncated.push_back(seq.finish_reason == models::FinishReason::length ? 1 : 0);
  }
  out.batch = std::move(batch);
  return out;
}

}  // namespace qerl::actors
