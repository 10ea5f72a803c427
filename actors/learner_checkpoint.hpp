// A learner's checkpoint folder. Full-parameter (and QAT) training writes
// policy/, a complete HF folder (weights, config, tokenizer files) usable
// directly as model.path, plus master.safetensors (the fp32 masters of a
// bf16 / fp16 policy). LoRA writes lora.safetensors and adapter/ (a PEFT
// folder: PEFT loads it, qerl-merge folds it into model.path), no policy/:
// the base is model.path's, frozen. Always: optimizer.pt and version.txt.
#pragma once

#include <cstdint>
#include <filesystem>

#include "actors/policy_trainer.hpp"
#include "dsl/pipeline_spec.hpp"
#include "models/nn/causal_lm.hpp"
#include "models/quant/lora.hpp"

namespace qerl::actors {

// `lora`: the adapters when quantization.train = "lora", else null.
void save_learner_checkpoint(const std::filesystem::path& dir, const dsl::PipelineSpec& spec, models::CausalLMImpl& lm,
                             const models::LoraAdapters* lora, PolicyTrainer& trainer, int64_t version);

// Restores what save_learner_checkpoint wrote into the same kind of
// learner; returns the version. qerl::Error naming the file that is missing
// or unreadable.
int64_t load_learner_checkpoint(const std::filesystem::path& dir, models::CausalLMImpl& lm, models::LoraAdapters* lora,
                                PolicyTrainer& trainer);

}  // namespace qerl::actors
