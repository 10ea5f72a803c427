// The problems of data.source and their train / held-out split, shared by
// the data stage (training prompts, SFT demonstrations) and eval (held-out
// prompts). The split is seeded by a constant, not run.seed, so runs with
// different seeds, and the SFT run that made the shipped model, hold out
// the same problems.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tasks/prompt_source.hpp"
#include "tasks/split.hpp"

namespace qerl::dsl {
struct PipelineSpec;
}

namespace qerl::actors {

inline constexpr uint64_t heldout_split_seed = 0x5eed;

struct TaskData {
  std::unique_ptr<tasks::PromptSource> source;
  tasks::Split split;
};
TaskData open_task_data(const dsl::PipelineSpec& spec);

// data.prompt_template with every "{question}" replaced.
std::string format_prompt(const std::string& prompt_template, const std::string& question);

}  // namespace qerl::actors
