// The static-cache generation loop of static_generator.hpp: prefill of the
// distinct prompts into a temporary cache, copied into the static cache's
// rows; then decode steps through the runner, sampling on the device, the
// tokens, log-probs and routes of each step written into chunk buffers that
// the host reads once per chunk.
#include "models/generate/static_generator.hpp"

#include <algorithm>

#include <torch/utils.h>

#include "common/error.hpp"
#include "models/generate/prompt_batch.hpp"

namespace qerl::models {

DecodeStepOutput EagerDecodeStep::step(CausalLMImpl& lm, KVCache& cache, const torch::Tensor& input_ids,
                                       bool capture_routing) {
  ForwardArgs args;
  args.input_ids = input_ids;
  args.cache = &cache;
  args.routing = capture_routing ? Routing::capture() : Routing::native();
  args.logits_to_keep = 1;
  ForwardOutput out = lm.forward(args);
  return {out.logits.select(1, 0), capture_routing ? out.routing.indices.select(1, 0) : torch::Tensor()};
}

int64_t decode_bucket(int64_t rows) {
  int64_t bucket = 1;
  while (bucket < rows) bucket *= 2;
  return bucket;
}

StaticGenerator::StaticGenerator(std::unique_ptr<DecodeStepRunner> runner, int64_t sync_every)
    : runner_(std::move(runner)), sync_every_(sync_every) {
  if (!runner_) throw Error("StaticGenerator: no decode step runner");
  if (sync_every_ < 1) throw Error("StaticGenerator: sync_every must be >= 1");
}

void StaticGenerator::release() {
  runner_->reset();
  views_.clear();
  cache_ = KVCache();
  input_ids_ = torch::Tensor();
}

int64_t StaticGenerator::cache_bytes() const {
  int64_t bytes = 0;
  for (const auto& t : cache_.keys) bytes += t.nbytes();
  for (const auto& t : cache_.values) bytes += t.nbytes();
  return bytes;
}

void StaticGenerator::ensure_cache(const CausalLMImpl& lm, int64_t rows, int64_t capacity) {
  if (!cache_.keys.empty() && cache_.batch_size() >= rows && cache_.capacity() >= capacity &&
      cache_.keys.front().device() == lm.device() && cache_.keys.front().scalar_type() == lm.dtype() &&
      static_cast<int64_t>(cache_.keys.size()) == lm.config().num_hidden_layers)
    return;
  if (!cache_.keys.empty()) {  // grow to cover both shapes: calls alternate between similar sizes
    rows = std::max(rows, cache_.batch_size());
    capacity = std::max(capacity, cache_.capacity());
  }
  release();  // graphs hold the old cache's addresses
  cache_ = KVCache::allocate(lm.config(), rows, capacity, lm.dtype(), lm.device());
  cache_.slot = torch::zeros({1}, torch::TensorOptions().dtype(torch::kLong).device(lm.device()));
  input_ids_ = torch::zeros({rows, 1}, cache_.slot.options());
}

KVCache& StaticGenerator::rows_view(int64_t rows) {
  auto it = views_.find(rows);
  if (it == views_.end()) it = views_.emplace(rows, cache_.leading_rows(rows)).first;
  return it->second;
}

std::vector<GeneratedSequence> StaticGenerator::generate(CausalLMImpl& lm,
                                                         const std::vector<std::vector<int64_t>>& prompts,
                                                         const GenerationConfig& config) {
  check_generation_args(lm, prompts, config);
  const StopChecker stop(config.stop);
  torch::NoGradGuard no_grad;

  const torch::Device device = lm.device();
  const auto batch = static_cast<int64_t>(prompts.size());
  const SharedPrompts shared = share_prompts(prompts);
  const torch::Tensor expand = shared.expand.to(device);
  const auto distinct = static_cast<int64_t>(shared.unique.size());
  const PaddedPrompts prompt = left_pad(shared.unique, config.pad_token_id, device);  // [U, P]
  const int64_t prompt_len = prompt.ids.size(1);
  const int64_t new_tokens = config.max_new_tokens;
  // The last sampled token is never fed back: P + N - 1 slots; capacity in
  // steps of 64 so that calls of similar lengths share one cache (and graphs).
  const int64_t slots = prompt_len + new_tokens - 1;
  ensure_cache(lm, decode_bucket(batch), (std::max<int64_t>(slots, 1) + 63) / 64 * 64);
  const bool capture = config.capture_routing && lm.config().is_moe();
  const auto long_options = torch::TensorOptions().dtype(torch::kLong).device(device);

  // Prefill: the distinct prompts into a cache of their own, then their
  // rows copied into the static cache for every repeat.
  KVCache prefill = KVCache::allocate(lm.config(), distinct, prompt_len, lm.dtype(), device);
  ForwardOutput first = lm.forward(prefill_args(prompt, &prefill, capture));
  cache_.valid.fill_(false);
  const int64_t rows_used = decode_bucket(batch), rest = cache_.capacity() - prompt_len;
  for (size_t layer = 0; layer < cache_.keys.size(); ++layer) {
    if (rest > 0) {  // see the header: masked slots must hold finite values
      cache_.keys[layer].narrow(0, 0, rows_used).narrow(2, prompt_len, rest).zero_();
      cache_.values[layer].narrow(0, 0, rows_used).narrow(2, prompt_len, rest).zero_();
    }
    cache_.keys[layer].narrow(0, 0, batch).narrow(2, 0, prompt_len).copy_(prefill.keys[layer].index_select(0, expand));
    cache_.values[layer].narrow(0, 0, batch).narrow(2, 0, prompt_len).copy_(
        prefill.values[layer].index_select(0, expand));
  }
  cache_.valid.narrow(0, 0, batch).narrow(1, 0, prompt_len).copy_(prefill.valid.index_select(0, expand));
  cache_.next_position.narrow(0, 0, batch).copy_(prefill.next_position.index_select(0, expand));
  cache_.slot.fill_(prompt_len);
  prefill = KVCache();

  torch::Tensor routing;  // [B, slots, L_moe, K] int16
  const int64_t moe_layers = lm.config().num_moe_layers(), top_k = lm.config().num_experts_per_tok;
  if (capture) {
    routing = torch::zeros({batch, std::max<int64_t>(slots, prompt_len), moe_layers, top_k},
                           long_options.dtype(torch::kShort));
    routing.narrow(1, 0, prompt_len).copy_(first.routing.indices.index_select(0, expand));
  }

  // Chunk buffers, one column per step, indexed by the row's place in the bucket.
  const int64_t rows = cache_.batch_size();
  const int64_t chunk = std::min(sync_every_, new_tokens);
  torch::Tensor chunk_tokens = torch::zeros({rows, chunk}, long_options);
  torch::Tensor chunk_logprobs = torch::zeros({rows, chunk}, long_options.dtype(torch::kFloat));
  torch::Tensor chunk_routes =
      capture ? torch::zeros({rows, chunk, moe_layers, top_k}, long_options.dtype(torch::kShort)) : torch::Tensor();

  auto generator = make_generator(device, config.seed);
  int64_t bucket = decode_bucket(batch);
  std::vector<int64_t> row_of(static_cast<size_t>(bucket), -1);  // bucket place -> batch row, -1 = none
  for (int64_t b = 0; b < batch; ++b) row_of[b] = b;
  const auto record = [&](const SampledTokens& sampled, int64_t column, int64_t width) {
    input_ids_.narrow(0, 0, width).copy_(sampled.tokens.unsqueeze(1));
    chunk_tokens.narrow(0, 0, width).select(1, column).copy_(sampled.tokens);
    chunk_logprobs.narrow(0, 0, width).select(1, column).copy_(sampled.logprobs);
  };
  record(sample_tokens(first.logits.select(1, -1).index_select(0, expand), config.sampling, generator), 0, batch);
  first = ForwardOutput();

  std::vector<GeneratedSequence> out(static_cast<size_t>(batch));
  std::vector<bool> finished(static_cast<size_t>(batch), false);
  int64_t running = batch;
  int64_t chunk_start = 0, chunk_len = 1;  // step of column 0; columns filled
  const auto live_places = [&] {
    std::vector<int64_t> places;
    for (int64_t i = 0; i < bucket; ++i)
      if (row_of[i] >= 0 && !finished[row_of[i]]) places.push_back(i);
    return places;
  };
  // The host reads the chunk: routes of the live rows go to `routing`,
  // tokens and log-probs to the rows until a stop rule ends them.
  const auto sync = [&] {
    const torch::Tensor tokens = chunk_tokens.narrow(0, 0, bucket).narrow(1, 0, chunk_len).cpu().contiguous();
    const torch::Tensor logprobs = chunk_logprobs.narrow(0, 0, bucket).narrow(1, 0, chunk_len).cpu().contiguous();
    const std::vector<int64_t> places = live_places();
    // Decode step s (>= 1) fed token s - 1 at slot P + s - 1; step 0 is the prefill's.
    const int64_t skip = chunk_start == 0 ? 1 : 0;
    if (capture && chunk_len > skip && !places.empty()) {
      std::vector<int64_t> dst;
      for (int64_t i : places) dst.push_back(row_of[i]);
      routing.narrow(1, prompt_len + chunk_start + skip - 1, chunk_len - skip)
          .index_copy_(0, torch::tensor(dst, torch::kLong).to(device),
                       chunk_routes.index_select(0, torch::tensor(places, torch::kLong).to(device))
                           .narrow(1, skip, chunk_len - skip));
    }
    const auto* ids = tokens.data_ptr<int64_t>();
    const auto* lps = logprobs.data_ptr<float>();
    for (int64_t i : places) {
      GeneratedSequence& row = out[row_of[i]];
      for (int64_t j = 0; j < chunk_len; ++j) {
        row.tokens.push_back(ids[i * chunk_len + j]);
        row.logprobs.push_back(lps[i * chunk_len + j]);
        if (stop.should_stop(row.tokens, row.finish_reason)) {
          finished[row_of[i]] = true;
          --running;
          break;
        }
      }
    }
    chunk_start += chunk_len;
    chunk_len = 0;
  };
  // Moves the live rows to the front of the cache when they fit a smaller bucket.
  const auto compact = [&] {
    const std::vector<int64_t> places = live_places();
    const auto live = static_cast<int64_t>(places.size());
    const int64_t smaller = decode_bucket(live);
    if (smaller >= bucket) return;
    const torch::Tensor kept = torch::tensor(places, torch::kLong).to(device);
    for (auto* per_layer : {&cache_.keys, &cache_.values})
      for (auto& t : *per_layer) t.narrow(0, 0, live).copy_(t.index_select(0, kept));
    for (auto* t : {&cache_.valid, &cache_.next_position, &input_ids_})
      t->narrow(0, 0, live).copy_(t->index_select(0, kept));
    std::vector<int64_t> moved(static_cast<size_t>(smaller), -1);
    for (int64_t k = 0; k < live; ++k) moved[k] = row_of[places[k]];
    row_of = std::move(moved);
    bucket = smaller;
  };

  for (int64_t step = 1;; ++step) {
    if (chunk_len == chunk || step == new_tokens) {
      sync();
      if (running == 0 || step == new_tokens) break;
      compact();
    }
    KVCache& view = rows_view(bucket);
    const DecodeStepOutput decoded = runner_->step(lm, view, input_ids_.narrow(0, 0, bucket), capture);
    record(sample_tokens(decoded.logits, config.sampling, generator), chunk_len, bucket);
    if (capture) chunk_routes.narrow(0, 0, bucket).select(1, chunk_len).copy_(decoded.routes);
    ++chunk_len;
  }

  if (capture) {
    const torch::Tensor host_mask = prompt.mask.index_select(0, expand).cpu();
    for (int64_t b = 0; b < batch; ++b) {
      const auto n = static_cast<int64_t>(out[b].tokens.size());
      const torch::Tensor prompt_slots = host_mask[b].nonzero().squeeze(1);
      const torch::Tensor generated_slots = torch::arange(prompt_len, prompt_len + n - 1, torch::kLong);
      out[b].routing = routing[b].index_select(0, torch::cat({prompt_slots, generated_slots}).to(device)).cpu();
    }
  }
  return out;
}

}  // namespace qerl::models
