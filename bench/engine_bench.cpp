// engine_bench: decode steps of the Qwen1.5-MoE-A2.7B shape (random
// weights, pipelines/bench/a27b_config.json) on one GPU, in bf16 and NVFP4
// W4A16: the CUDA engine (static KV cache, decode steps replayed as CUDA
// graphs) against models::generate (the dynamic loop: a launch per
// operation and a host read per token), Hugging Face transformers' generate
// (scripts/hf_generate_bench.py's JSON, measured in the same run) and the
// bandwidth floor: the weight bytes one step reads (the experts its tokens
// touch, counted from the captured routes) over the copy bandwidth measured
// here. Prints a markdown table. Built in QERL_CUDA builds.
// usage: engine_bench [--config F] [--batches 32,128] [--prompt 64] [--new 128]
//                     [--old-new 16] [--hf hf.json] [--profile bf16|nvfp4] [--repack-only 1]
//                     [--engine-only 1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/cuda_timing.hpp"
#include "kernels/cuda/decoder_ops_torch.hpp"
#include "kernels/cuda/kernel_choices.hpp"
#include "models/engine/generation_backend.hpp"
#include "models/generate/generator.hpp"
#include "models/nn/model_config.hpp"
#include "models/quant/quantize_model.hpp"

using namespace qerl::models;
using qerl::bench::copy_bandwidth_gbs;
using qerl::bench::matmul_tflops;

namespace {

struct Options {
  std::string config = "pipelines/bench/a27b_config.json";
  std::vector<int64_t> batches{32, 128};
  int64_t prompt = 64, new_tokens = 128, old_new_tokens = 16;
  std::string hf_json;
  std::string profile;  // bf16 or nvfp4: one replayed decode step at the first batch, for ncu
  bool repack_only = false;  // --repack-only 1: the full re-pack figure and nothing else
  bool engine_only = false;  // --engine-only 1: only the fused engine's rows (no re-pack, no baselines but HF)
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--config") o.config = value;
    else if (key == "--prompt") o.prompt = std::stoll(value);
    else if (key == "--new") o.new_tokens = std::stoll(value);
    else if (key == "--old-new") o.old_new_tokens = std::stoll(value);
    else if (key == "--hf") o.hf_json = value;
    else if (key == "--profile") o.profile = value;
    else if (key == "--repack-only") o.repack_only = value == "1";
    else if (key == "--engine-only") o.engine_only = value == "1";
    else if (key == "--batches") {
      o.batches.clear();
      std::stringstream list(value);
      for (std::string item; std::getline(list, item, ',');) o.batches.push_back(std::stoll(item));
    } else {
      std::fprintf(stderr, "engine_bench: unknown option %s\n", key.c_str());
      std::exit(2);
    }
  }
  return o;
}

double seconds(const std::function<void()>& fn) {
  torch::cuda::synchronize();
  const auto start = std::chrono::steady_clock::now();
  fn();
  torch::cuda::synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The model in bf16 on the GPU with random weights drawn there (N(0, 0.02),
// norms 1): built with bf16 as the default dtype so the host holds no
// float32 copy.
CausalLM random_model(const ModelConfig& config) {
  torch::set_default_dtype(caffe2::TypeMeta::Make<at::BFloat16>());
  CausalLM lm(config);
  torch::set_default_dtype(caffe2::TypeMeta::Make<float>());
  lm->to(torch::kCUDA);
  torch::NoGradGuard no_grad;
  torch::manual_seed(1);
  for (auto& item : lm->named_parameters(/*recurse=*/true)) {
    if (item.key().find("norm.weight") != std::string::npos)
      item.value().fill_(1.0);
    else
      item.value().normal_(0.0, config.initializer_range);
  }
  lm->eval();
  return lm;
}

// The NVFP4 W4A16 base of every quantizable Linear, the dense weights freed.
std::unique_ptr<PackedBase> pack_nvfp4(CausalLMImpl& lm) {
  QuantSpec spec;
  spec.scheme = QuantScheme::nvfp4;
  return std::make_unique<PackedBase>(lm, spec, Residency::codes_only);
}

std::vector<std::vector<int64_t>> random_prompts(int64_t batch, int64_t length, int64_t vocab) {
  torch::manual_seed(batch);
  const torch::Tensor ids = torch::randint(3, vocab, {batch, length}, torch::kLong);
  std::vector<std::vector<int64_t>> out;
  for (int64_t b = 0; b < batch; ++b) out.emplace_back(ids[b].data_ptr<int64_t>(), ids[b].data_ptr<int64_t>() + length);
  return out;
}

// Mean number of distinct experts per (decode step, MoE layer) over the batch.
double touched_experts(const std::vector<GeneratedSequence>& rows, int64_t prompt, int64_t experts) {
  std::vector<torch::Tensor> routes;
  for (const auto& row : rows) routes.push_back(row.routing.narrow(0, prompt, row.routing.size(0) - prompt));
  const torch::Tensor r = torch::stack(routes).to(torch::kLong);  // [B, S, L, K]
  const torch::Tensor hit = torch::zeros({r.size(1), r.size(2), experts}, torch::kLong);
  hit.scatter_(2, r.permute({1, 2, 0, 3}).reshape({r.size(1), r.size(2), -1}), 1);
  return hit.sum(2).to(torch::kDouble).mean().item<double>();
}

// Weight bytes one decode step reads with `touched` experts per MoE layer;
// `fp4`: the quantized Linears as NVFP4 codes (0.5 byte + an E4M3 scale
// per 16), the rest (routers, shared-expert gate, lm_head) in bf16.
double step_weight_bytes(const ModelConfig& c, double touched, bool fp4) {
  const double q = fp4 ? 0.5 + 1.0 / 16 : 2.0, d = 2.0, h = static_cast<double>(c.hidden_size);
  const double attention = h * c.head_dim * (c.num_attention_heads * 2 + c.num_key_value_heads * 2) * q;
  const double expert = 3.0 * h * c.moe_intermediate_size * q;
  const double shared = 3.0 * h * c.shared_expert_intermediate_size * q + h * d;
  const double router = h * c.num_experts * d;
  return c.num_hidden_layers * (attention + touched * expert + shared + router) + h * c.vocab_size * d;
}

struct Row {
  std::string scheme, engine;
  int64_t batch;
  double step_ms, floor_ms;
  std::string note;
};

// --profile bf16|nvfp4: a warm-up generation (which captures the first
// batch's graph) and then one of 2 tokens, whose single decode step is a
// graph replay inside the NVTX range "qerl decode step".
int profile(const Options& o) {
  const ModelConfig config = load_model_config(o.config);
  CausalLM lm = random_model(config);
  std::unique_ptr<PackedBase> base;
  {
    const std::string& scheme = o.profile;
    if (scheme == "nvfp4") {
      base = pack_nvfp4(*lm);
    }
    auto backend = make_cuda_generation(*lm);
    const auto prompts = random_prompts(o.batches.front(), o.prompt, config.vocab_size);
    GenerationConfig gen;
    gen.sampling.temperature = 0;
    gen.capture_routing = true;
    gen.max_new_tokens = 4;
    backend->generate(*lm, prompts, gen);
    gen.max_new_tokens = 2;
    backend->generate(*lm, prompts, gen);
    std::printf("profiled one %s decode step at batch %lld\n", scheme.c_str(),
                static_cast<long long>(o.batches.front()));
  }
  return 0;
}

// One engine timed on a batch: a short warm-up run (which captures this
// bucket's graph), a prefill alone, then new_tokens; the decode step is
// the difference over new_tokens - 1 steps.
struct EngineRun {
  double prefill_s = 0, step_ms = 0;
  std::vector<GeneratedSequence> out;
};

EngineRun time_engine(GenerationBackend& engine, CausalLMImpl& lm, const std::vector<std::vector<int64_t>>& prompts,
                      GenerationConfig gen, int64_t new_tokens) {
  EngineRun run;
  gen.max_new_tokens = 4;
  engine.generate(lm, prompts, gen);
  gen.max_new_tokens = 1;
  run.prefill_s = seconds([&] { engine.generate(lm, prompts, gen); });
  gen.max_new_tokens = new_tokens;
  const double full_s = seconds([&] { run.out = engine.generate(lm, prompts, gen); });
  run.step_ms = (full_s - run.prefill_s) / static_cast<double>(new_tokens - 1) * 1e3;
  return run;
}

// Share of token positions (over the shorter of each pair) where a and b agree, in %.
double agreement_percent(const std::vector<GeneratedSequence>& a, const std::vector<GeneratedSequence>& b) {
  int64_t same = 0, compared = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    for (size_t j = 0; j < a[i].tokens.size() && j < b[i].tokens.size(); ++j, ++compared)
      same += a[i].tokens[j] == b[i].tokens[j];
  return 100.0 * static_cast<double>(same) / static_cast<double>(std::max<int64_t>(compared, 1));
}

// The weight sync of a full update into a packed rollout (QAT, or full
// fine-tuning with 4-bit rollout): every packed Linear's bf16 weight
// arrives and is packed on arrival (PackedBase::load_dense), timed three
// times, best kept. One random tensor per shape stands in for the weights
// (packing reads every value the same way whatever they are).
void full_update_repack(PackedBase& base, double copy_gbs) {
  std::map<std::pair<int64_t, int64_t>, torch::Tensor> by_shape;
  TensorMap update;
  double bytes = 0;
  for (const auto& t : base.targets()) {
    const std::pair<int64_t, int64_t> shape{t.linear->out_features(), t.linear->in_features()};
    auto& w = by_shape[shape];
    if (!w.defined())
      w = torch::randn({shape.first, shape.second}, torch::dtype(torch::kBFloat16).device(torch::kCUDA)) * 0.02;
    update[t.name + ".weight"] = w;
    bytes += static_cast<double>(w.numel()) * 2;
  }
  double best = 1e30;
  for (int i = 0; i < 3; ++i) best = std::min(best, seconds([&] { base.load_dense(update); }));
  std::printf("full NVFP4 re-pack of a full update (%zu Linears, %.1f GB of bf16 packed on arrival): %.3f s best of "
              "3 (%.0f GB/s read, %.1f %% of copy)\n",
              base.targets().size(), bytes / 1e9, best, bytes / best / 1e9, bytes / best / 1e9 / copy_gbs * 100);
}

// Hugging Face generate's step at this batch (from --hf), as a bf16 row.
void add_hf_row(std::vector<Row>& rows, const nlohmann::json& hf, const std::string& scheme, int64_t batch,
                double floor_ms) {
  if (scheme != "bf16" || !hf.contains(std::to_string(batch))) return;
  const auto& h = hf[std::to_string(batch)];
  char note[160];
  std::snprintf(note, sizeof note, "transformers %s, %lld tokens", hf.value("transformers", "?").c_str(),
                static_cast<long long>(h.value("new_tokens", 0)));
  rows.push_back({scheme, "HF generate", batch, h.value("step_ms", 0.0), floor_ms, note});
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (!o.profile.empty()) return profile(o);
  if (!torch::cuda::is_available()) {
    std::printf("engine_bench: no CUDA device visible\n");
    return 1;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  const double copy_gbs = copy_bandwidth_gbs();
  const double tflops = matmul_tflops();
  std::printf("device: %s; copy %.0f GB/s; bf16 matmul %.0f TFLOP/s\n", prop.name, copy_gbs, tflops);
  nlohmann::json hf;
  if (!o.hf_json.empty()) {
    std::ifstream in(o.hf_json);
    if (in) hf = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  }

  const ModelConfig config = load_model_config(o.config);
  CausalLM lm{nullptr};
  std::printf("building the model: %.1f s\n", seconds([&] { lm = random_model(config); }));
  std::vector<Row> rows;
  std::unique_ptr<PackedBase> base;
  for (const std::string scheme : {"bf16", "nvfp4"}) {
    if (o.repack_only && scheme == "bf16") continue;
    if (scheme == "nvfp4") {
      std::printf("packing NVFP4: %.1f s\n", seconds([&] { base = pack_nvfp4(*lm); }));
      if (o.repack_only) {
        full_update_repack(*base, copy_gbs);
        return 0;
      }
    }
    auto backend = make_cuda_generation(*lm);
    auto unfused = o.engine_only ? nullptr : make_cuda_generation(*lm);
    std::printf("%s: %s\n", scheme.c_str(), backend->describe().c_str());
    for (const int64_t batch : o.batches) {
      const auto prompts = random_prompts(batch, o.prompt, config.vocab_size);
      GenerationConfig gen;
      gen.sampling.temperature = 0;
      gen.capture_routing = true;
      gen.pad_token_id = 0;
      const EngineRun fused = time_engine(*backend, *lm, prompts, gen, o.new_tokens);
      const std::vector<GeneratedSequence>& out = fused.out;
      const double touched = touched_experts(out, o.prompt, config.num_experts);
      const double floor_ms = step_weight_bytes(config, touched, scheme == "nvfp4") / (copy_gbs * 1e9) * 1e3;
      char note[160];
      std::snprintf(note, sizeof note, "prefill %.3f s; %.1f of %lld experts touched per layer", fused.prefill_s,
                    touched, static_cast<long long>(config.num_experts));
      rows.push_back({scheme, "qerl CUDA engine", batch, fused.step_ms, floor_ms, note});
      if (o.engine_only) {
        add_hf_row(rows, hf, scheme, batch, floor_ms);
        continue;
      }
      // The same engine with the decode-path fusions off (kernels/cuda/
      // decoder_ops_torch.hpp), its own graphs captured that way.
      const EngineRun plain = [&] {
        const qerl::kernels::cuda::KernelChoices restore;  // as found (off with QERL_FUSED_DECODE=0)
        qerl::kernels::cuda::set_fused_decode(false);
        return time_engine(*unfused, *lm, prompts, gen, o.new_tokens);
      }();
      std::snprintf(note, sizeof note, "decode fusions off; greedy tokens equal to the fused engine's: %.1f %%",
                    agreement_percent(plain.out, out));
      rows.push_back({scheme, "qerl CUDA engine, fusions off", batch, plain.step_ms, floor_ms, note});
      // models::generate on the same weights, fewer tokens (it is slow).
      gen.max_new_tokens = 1;
      const double old_prefill_s = seconds([&] { generate(*lm, prompts, gen); });
      gen.max_new_tokens = o.old_new_tokens;
      std::vector<GeneratedSequence> old;
      const double old_s = seconds([&] { old = generate(*lm, prompts, gen); });
      std::snprintf(note, sizeof note, "%lld tokens; greedy tokens equal to the CUDA engine's: %.1f %%",
                    static_cast<long long>(o.old_new_tokens), agreement_percent(old, out));
      rows.push_back({scheme, "qerl models::generate", batch,
                      (old_s - old_prefill_s) / static_cast<double>(o.old_new_tokens - 1) * 1e3, floor_ms, note});
      add_hf_row(rows, hf, scheme, batch, floor_ms);
      std::fflush(stdout);
    }
    backend->release();
    if (unfused) unfused->release();
    // The re-pack last, the engines' buffers released: its update (one
    // random tensor per shape) replaces the model's weights, so the rows
    // above and the bf16 ones measure the same model.
    if (scheme == "nvfp4" && !o.engine_only) full_update_repack(*base, copy_gbs);
  }

  std::printf("\n| scheme | batch | engine | ms / decode step | tokens/s | x floor | HF step / this | notes |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  for (const Row& r : rows) {
    double hf_ms = 0;
    for (const Row& h : rows)
      if (h.engine == "HF generate" && h.batch == r.batch) hf_ms = h.step_ms;
    char vs_hf[32] = "-";
    if (hf_ms > 0) std::snprintf(vs_hf, sizeof vs_hf, "%.2f", hf_ms / r.step_ms);
    std::printf("| %s | %lld | %s | %.2f | %.0f | %.2f | %s | %s |\n", r.scheme.c_str(),
                static_cast<long long>(r.batch), r.engine.c_str(), r.step_ms, r.batch / r.step_ms * 1e3,
                r.step_ms / r.floor_ms, vs_hf, r.note.c_str());
  }
  for (const int64_t batch : o.batches) {
    double bf16_ms = 0, fp4_ms = 0;
    for (const Row& r : rows)
      if (r.batch == batch && r.engine == "qerl CUDA engine") (r.scheme == "bf16" ? bf16_ms : fp4_ms) = r.step_ms;
    std::printf("\nbatch %lld: NVFP4 W4A16 decode step %.2fx faster than bf16 (CUDA engine)", static_cast<long long>(batch),
                bf16_ms / fp4_ms);
  }
  for (const Row& r : rows) {
    if (r.engine != "qerl CUDA engine, fusions off") continue;
    for (const Row& f : rows)
      if (f.engine == "qerl CUDA engine" && f.scheme == r.scheme && f.batch == r.batch)
        std::printf("\n%s batch %lld: decode fusions make the step %.2fx faster (%.2f -> %.2f ms)", r.scheme.c_str(),
                    static_cast<long long>(r.batch), r.step_ms / f.step_ms, r.step_ms, f.step_ms);
  }
  std::printf("\n\nfloor: weight bytes a step reads (touched experts from the routes) / %.0f GB/s; the NVFP4 floor "
              "counts codes + E4M3 scales for the quantized Linears, bf16 for routers and lm_head.\n",
              copy_gbs);
  return 0;
}
