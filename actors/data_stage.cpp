// Stage `data`: each step takes data.prompts_per_step training problems
// from an epoch cursor (seeded shuffle per epoch) and emits them as prompt
// token ids, each repeated samples_per_prompt times (port `prompts`), and
// the same problems with their worked solutions as SFT demonstrations
// (port `demos`). The cursor position is its whole state (checkpointed).
#include <fstream>
#include <nlohmann/json.hpp>

#include "actors/payloads.hpp"
#include "actors/policy.hpp"
#include "actors/stage_factories.hpp"
#include "actors/stage_log.hpp"
#include "actors/task_data.hpp"
#include "dsl/pipeline_spec.hpp"
#include "runtime/stage.hpp"
#include "tasks/epoch_cursor.hpp"

namespace qerl::actors {
namespace {

class DataStage final : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& context) override {
    spec_ = context.pipeline;
    tokens_ = std::make_unique<TokenizerInfo>(open_tokenizer(*spec_));
    data_ = open_task_data(*spec_);
    cursor_ = std::make_unique<tasks::EpochCursor>(data_.split.train, static_cast<uint64_t>(spec_->run.seed),
                                                    spec_->data.shuffle);
    log_info(context.logger, data_.source->origin() + ": " + std::to_string(data_.split.train.size()) +
                                 " training / " + std::to_string(data_.split.heldout.size()) + " held-out problems");
  }

  runtime::StepOutput run(const runtime::StepInput& input) override {
    const int64_t P = spec_->data.prompts_per_step, G = spec_->data.samples_per_prompt;
    auto prompts = std::make_shared<PromptBatch>();
    std::vector<tasks::Problem> problems;
    int64_t skipped = 0;
    while (static_cast<int64_t>(problems.size()) < P) {
      const int64_t index = cursor_->next();
      tasks::Problem problem = data_.source->get(index);
      const auto ids = encode(format_prompt(spec_->data.prompt_template, problem.question));
      // data.max_prompt_len, or else room for at least one response token.
      const int64_t limit = spec_->data.max_prompt_len > 0 ? spec_->data.max_prompt_len : spec_->model.max_seq_len - 1;
      if (static_cast<int64_t>(ids.size()) > limit) {
        if (++skipped > cursor_->epoch_size())
          throw Error("every training prompt is longer than " + std::to_string(limit) +
                      " tokens (data.max_prompt_len, else model.max_seq_len - 1)");
        continue;
      }
      const int64_t group = input.step * P + static_cast<int64_t>(problems.size());
      for (int64_t g = 0; g < G; ++g) {
        prompts->prompt_ids.push_back(ids);
        prompts->answers.push_back(problem.answer);
        prompts->group_ids.push_back(group);
        prompts->problem_ids.push_back(index);
      }
      problems.push_back(std::move(problem));
    }
    runtime::StepOutput out;
    out.metrics["data/epoch"] = static_cast<double>(cursor_->position().epoch);
    if (skipped) out.metrics["data/skipped_long_prompts"] = static_cast<double>(skipped);
    out.ports["demos"] = demonstrations(*prompts, problems, G);
    out.ports["prompts"] = std::move(prompts);
    return out;
  }

  void save_state(const std::filesystem::path& dir) override {
    const auto pos = cursor_->position();
    std::ofstream(dir / "cursor.json") << nlohmann::json{{"epoch", pos.epoch}, {"offset", pos.offset}}.dump() << "\n";
  }

  void load_state(const std::filesystem::path& dir) override {
    std::ifstream in(dir / "cursor.json");
    if (!in) throw Error("checkpoint " + (dir / "cursor.json").string() + " is missing");
    const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("epoch") || !j.contains("offset"))
      throw Error("checkpoint " + (dir / "cursor.json").string() + ": expected {\"epoch\": N, \"offset\": N}");
    cursor_->restore({j["epoch"].get<int64_t>(), j["offset"].get<int64_t>()});
  }

 private:
  std::vector<int64_t> encode(const std::string& text) const {
    const auto ids = tokens_->tokenizer.encode(text);
    return std::vector<int64_t>(ids.begin(), ids.end());
  }

  // Prompt + worked solution + EOS, one row per problem (the SFT targets).
  runtime::PayloadPtr demonstrations(const PromptBatch& prompts, const std::vector<tasks::Problem>& problems,
                                     int64_t G) const {
    const int64_t B = static_cast<int64_t>(problems.size());
    std::vector<std::vector<int64_t>> answers;
    int64_t P = 0, R = 0;
    for (int64_t i = 0; i < B; ++i) {
      auto ids = encode(problems[i].answer_text);
      ids.push_back(tokens_->eos_token_ids.front());
      P = std::max<int64_t>(P, prompts.prompt_ids[i * G].size());
      R = std::max<int64_t>(R, ids.size());
      answers.push_back(std::move(ids));
    }
    auto demos = std::make_shared<RolloutBatch>();
    demos->prompt_width = P;
    demos->pad_token_id = tokens_->pad_token_id;
    demos->tokens = torch::full({B, P + R}, tokens_->pad_token_id, torch::kLong);
    demos->attention_mask = torch::zeros({B, P + R}, torch::kBool);
    demos->response_mask = torch::zeros({B, R}, torch::kBool);
    auto tok = demos->tokens.accessor<int64_t, 2>();
    auto attn = demos->attention_mask.accessor<bool, 2>();
    auto resp = demos->response_mask.accessor<bool, 2>();
    for (int64_t i = 0; i < B; ++i) {
      const auto& prompt = prompts.prompt_ids[i * G];
      const int64_t start = P - static_cast<int64_t>(prompt.size());
      for (size_t j = 0; j < prompt.size(); ++j) tok[i][start + j] = prompt[j], attn[i][start + j] = true;
      for (size_t j = 0; j < answers[i].size(); ++j)
        tok[i][P + j] = answers[i][j], attn[i][P + j] = true, resp[i][j] = true;
      demos->responses.push_back(problems[i].answer_text);
      demos->answers.push_back(problems[i].answer);
      demos->group_ids.push_back(prompts.group_ids[i * G]);
      demos->truncated.push_back(0);
    }
    return demos;
  }

  const dsl::PipelineSpec* spec_ = nullptr;
  std::unique_ptr<TokenizerInfo> tokens_;
  TaskData data_;
  std::unique_ptr<tasks::EpochCursor> cursor_;
};

}  // namespace

std::unique_ptr<runtime::Stage> make_data_stage() { return std::make_unique<DataStage>(); }

}  // namespace qerl::actors
