// The sampling engine (see sampling_engine.hpp): the model's own forward,
// the packed base's codes through kernels::fp4_linear. On the CPU it
// generates with models::generate (the reference the CUDA path is tested
// against); on a CUDA device through the CUDA generation backend
// (generation_backend.hpp: static KV cache, CUDA graphs).
#include <fstream>

#include "common/error.hpp"
#include "models/engine/generation_backend.hpp"
#include "models/engine/sampling_engine.hpp"
#include "models/io/safetensors.hpp"

namespace qerl::models {
namespace {

class TorchEngine final : public SamplingEngine {
 public:
  explicit TorchEngine(EngineParts parts) : parts_(std::move(parts)) {
    if (!parts_.lm) throw Error("sampling engine: no model");
    if (parts_.lora) parts_.lora->set_training(false);  // no adapter dropout while sampling
#if QERL_CUDA
    if (parts_.lm->device().is_cuda()) backend_ = make_cuda_generation(*parts_.lm);
#endif
  }

  void load_update(WeightsFormat format, const TensorMap& tensors) override {
    CausalLMImpl& lm = *parts_.lm;
    PackedBase* base = parts_.base.get();
    if (format != WeightsFormat::lora_only) clear_noise();  // the rest of the weights must be clean
    switch (format) {
      case WeightsFormat::lora_only:
        if (!parts_.lora) throw Error("got LoRA-only weights, but quantization.train is not \"lora\"");
        parts_.lora->load(tensors);  // the base is frozen
        return;
      case WeightsFormat::packed: {
        if (!base) throw Error("got packed weights, but quantization.scheme is \"none\"");
        TensorMap dense, codes;
        for (const auto& [name, t] : tensors) (is_packed_tensor_name(name) ? codes : dense)[name] = t;
        if (!base->dense_released())  // kept dense weights are set from the codes by load_packed
          for (const auto& t : base->targets()) dense[t.name + ".weight"] = t.linear->weight.detach();
        load_weights(lm, dense);
        base->load_packed(codes);
        return;
      }
      case WeightsFormat::full:
        if (base && base->dense_released()) {
          // The packed Linears hold no dense weight: their tensors are packed on arrival.
          base->load_dense(tensors);
          TensorMap rest = tensors;
          for (const auto& t : base->targets()) rest.erase(t.name + ".weight");
          load_weights(lm, rest);
        } else {
          load_weights(lm, tensors);
        }
        return;
    }
  }

  double draw_noise(double sigma, uint64_t seed) override {
    if (!parts_.noise) throw Error("sampling engine: AQN noise drawn, but the engine has no noise targets");
    if (noised_) parts_.noise->restore();  // a new draw starts from the clean values
    parts_.noise->capture_clean();
    noised_ = true;
    return parts_.noise->apply(sigma, seed);
  }

  void clear_noise() override {
    if (!noised_) return;
    parts_.noise->restore();
    noised_ = false;
  }

  bool has_noise_targets() const override { return parts_.noise != nullptr; }

  std::optional<double> prepare(const std::vector<std::vector<int64_t>>& prompts, int64_t pad) override {
    PackedBase* base = parts_.base.get();
    if (!base) return std::nullopt;
    // Linears changed by a full update or an AQN draw are packed again.
    base->repack();
    if (!base->inputs_calibrated()) calibrate(*base, prompts, pad);
    return base->sqnr_db();
  }

  std::vector<GeneratedSequence> generate(const std::vector<std::vector<int64_t>>& prompts,
                                          const GenerationConfig& config) override {
    if (parts_.base) parts_.base->repack();  // never sample with stale codes
    if (backend_) return backend_->generate(*parts_.lm, prompts, config);
    return models::generate(*parts_.lm, prompts, config);
  }

  void release_cache() override {
    if (backend_) backend_->release();
  }

  std::string describe() const override {
    return backend_ ? backend_->describe() : std::string("LibTorch engine (models::generate, dynamic KV cache)");
  }


  void save(const std::filesystem::path& dir) override {
    clear_noise();  // save the clean weights; the caller redraws its noise
    if (parts_.lora) {
      write_safetensors(dir / "lora.safetensors", parts_.lora->tensors());
    } else {
      write_safetensors(dir / "weights.safetensors", export_weights(*parts_.lm));
    }
    if (parts_.base) write_safetensors(dir / "packed.safetensors", parts_.base->packed_tensors());
  }

  void load(const std::filesystem::path& dir) override {
    const auto require = [&](const char* name) {
      const auto file = dir / name;
      if (!std::filesystem::exists(file)) throw Error("checkpoint " + file.string() + " is missing");
      return read_safetensors(file).tensors;
    };
    clear_noise();
    if (parts_.lora) {
      parts_.lora->load(require("lora.safetensors"));
    } else {
      load_weights(*parts_.lm, require("weights.safetensors"));
    }
    if (parts_.base) {
      // Codes that came with updates (QAT), or a base without dense
      // weights: the saved codes are what it sampled with. A LoRA base
      // repacks deterministically from model.path's weights, and a base
      // with dense weights from them; both take only the W4A4 input scales
      // calibrated on the first batch.
      const auto stored = require("packed.safetensors");
      if (!parts_.lora && (parts_.codes_from_updates || parts_.base->dense_released())) {
        parts_.base->load_packed(stored);
      } else {
        parts_.base->load_input_scales(stored);
      }
    }
  }

  ResidentWeights resident_weights() override { return models::resident_weights(*parts_.lm); }
  const QuantSummary* quant_summary() const override { return parts_.base ? &parts_.base->summary() : nullptr; }
  const ModelConfig& model_config() const override { return parts_.lm->config(); }
  torch::Device device() const override { return parts_.lm->device(); }

 private:
  // W4A4: input global scales from one prefill of the left-padded prompts.
  void calibrate(PackedBase& base, const std::vector<std::vector<int64_t>>& prompts, int64_t pad) {
    int64_t width = 0;
    for (const auto& p : prompts) width = std::max<int64_t>(width, static_cast<int64_t>(p.size()));
    if (prompts.empty() || width == 0) return;
    const int64_t B = static_cast<int64_t>(prompts.size());
    torch::Tensor ids = torch::full({B, width}, pad, torch::kLong);
    torch::Tensor mask = torch::zeros({B, width}, torch::kLong);
    for (int64_t i = 0; i < B; ++i) {
      const auto& p = prompts[i];
      const int64_t n = static_cast<int64_t>(p.size());
      if (n == 0) continue;
      ids[i].slice(0, width - n, width).copy_(torch::tensor(p, torch::kLong));
      mask[i].slice(0, width - n, width).fill_(1);
    }
    base.calibrate_inputs(ids.to(device()), mask.to(device()));
  }

  EngineParts parts_;
  std::unique_ptr<GenerationBackend> backend_;  // null: models::generate
  bool noised_ = false;  // a noise draw is in the weights now
};

}  // namespace

std::unique_ptr<SamplingEngine> make_sampling_engine(EngineParts parts) {
  return std::make_unique<TorchEngine>(std::move(parts));
}

}  // namespace qerl::models
