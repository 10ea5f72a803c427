// Opening data.source and splitting it (see task_data.hpp).
#include "actors/task_data.hpp"

#include "dsl/pipeline_spec.hpp"

namespace qerl::actors {

TaskData open_task_data(const dsl::PipelineSpec& spec) {
  TaskData data;
  data.source = tasks::open_prompt_source(spec.data.source);
  data.split = tasks::split_train_heldout(data.source->size(), spec.data.heldout_size, heldout_split_seed);
  return data;
}

std::string format_prompt(const std::string& prompt_template, const std::string& question) {
  static const std::string placeholder = "{question}";
  std::string out;
  size_t from = 0;
  for (size_t at; (at = prompt_template.find(placeholder, from)) != std::string::npos; from = at + placeholder.size())
    out.append(prompt_template, from, at - from).append(question);
  return out.append(prompt_template, from, std::string::npos);
}

}  // namespace qerl::actors
