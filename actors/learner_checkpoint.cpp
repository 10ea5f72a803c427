// A learner's checkpoint folder (see learner_checkpoint.hpp).
#include "actors/learner_checkpoint.hpp"

#include <torch/serialize.h>

#include <fstream>

#include "actors/policy.hpp"
#include "common/error.hpp"
#include "models/io/safetensors.hpp"
#include "models/nn/weights.hpp"
#include "models/quant/peft_adapter.hpp"

namespace qerl::actors {

namespace fs = std::filesystem;

void save_learner_checkpoint(const fs::path& dir, const dsl::PipelineSpec& spec, models::CausalLMImpl& lm,
                             const models::LoraAdapters* lora, PolicyTrainer& trainer, int64_t version) {
  if (!lora) {
    models::save_causal_lm(dir / "policy", lm);
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"}) {
      const fs::path from = fs::path(spec.model.path) / name;
      if (fs::exists(from)) fs::copy_file(from, dir / "policy" / name, fs::copy_options::overwrite_existing);
    }
  } else {
    const auto adapters = lora->tensors();
    models::write_safetensors(dir / "lora.safetensors", adapters);
    models::write_peft_adapter(dir / "adapter", lora_config_of(spec), adapters,
                               fs::absolute(spec.model.path).lexically_normal().string());
  }
  if (trainer.masters().active()) models::write_safetensors(dir / "master.safetensors", trainer.masters().tensors());
  torch::save(trainer.optimizer(), (dir / "optimizer.pt").string());
  std::ofstream(dir / "version.txt") << version << "\n";
}

int64_t load_learner_checkpoint(const fs::path& dir, models::CausalLMImpl& lm, models::LoraAdapters* lora,
                                PolicyTrainer& trainer) {
  const auto require = [&](const char* name) {
    const fs::path file = dir / name;
    if (!fs::exists(file)) throw Error("checkpoint " + file.string() + " is missing");
    return file;
  };
  if (lora) {
    // The base is frozen: what setup loaded from model.path is what was trained on.
    lora->load(models::read_safetensors(require("lora.safetensors")).tensors);
  } else {
    models::CausalLM policy = models::load_causal_lm(dir / "policy");
    apply_parameters(lm, models::export_weights(*policy));
    if (trainer.masters().active()) {
      const fs::path masters = require("master.safetensors");
      trainer.masters().load(models::read_safetensors(masters).tensors, "checkpoint " + masters.string());
    }
  }
  const fs::path optimizer = require("optimizer.pt");
  try {
    torch::load(trainer.optimizer(), optimizer.string());
  } catch (const c10::Error& e) {
    throw Error("checkpoint " + optimizer.string() + " is unreadable: " + e.what_without_backtrace());
  }
  int64_t version = 0;
  std::ifstream in(dir / "version.txt");
  if (!(in >> version)) throw Error("checkpoint " + (dir / "version.txt").string() + " is missing or unreadable");
  return version;
}

}  // namespace qerl::actors
