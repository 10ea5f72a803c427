// Values derived from other values, and settings that contradict each other
// (e.g. aqn.sigma_end > aqn.sigma_start, nvfp4 with group_size 32, QAT
// without a scheme). A check is skipped when one of its keys was already
// rejected, so one mistake is reported once.
#include <algorithm>
#include <filesystem>

#include "dsl/cluster.hpp"
#include "dsl/detail/convert.hpp"
#include "dsl/detail/validate.hpp"

namespace qerl::dsl::detail {

namespace {

struct Checker {
  const Node& root;
  PipelineSpec& spec;
  Context& ctx;

  bool ok(std::initializer_list<const char*> keys) const {
    for (const char* k : keys)
      if (ctx.invalid.count(k)) return false;
    return true;
  }
  bool set(const char* key) const { return ctx.provided.count(key) > 0; }
  // Where to point for `key`: its value if the pipeline sets it, else its
  // section header, else the top of the file.
  SourcePos pos(const std::string& key) const {
    auto it = ctx.provided.find(key);
    if (it != ctx.provided.end()) return it->second->pos;
    const Node* section = root.find(key.substr(0, key.find('.')));
    return section ? section->key_pos : root.pos;
  }
  // The position of whichever of two keys the user set (preferring the first).
  std::string pick(const char* a, const char* b) const { return set(a) || !set(b) ? a : b; }
  void error(const std::string& key, std::string message) { ctx.error(pos(key), key, std::move(message)); }
  void warning(const std::string& key, std::string message) { ctx.warning(pos(key), key, std::move(message)); }
};

std::string num(double v) { return number_text(v); }

void derive(Checker& c) {
  PipelineSpec& s = c.spec;
  if (s.run.name.empty()) {
    s.run.name = std::filesystem::path(s.source_file).stem().string();
    if (s.run.name.empty()) s.run.name = "pipeline";
  }
  if (s.run.out_dir.empty()) s.run.out_dir = "runs/" + s.run.name;
  QuantizationSpec& q = s.quantization;
  if (q.group_size == 0) q.group_size = models::group_size(q.scheme);
  q.quant.scheme = q.scheme;
  q.quant.quantize_inputs = q.mode == models::QuantMode::w4a4;
  q.quant.ignore = q.ignore;
  q.quant.fuse_scales = q.fuse_scales;
  // Paths in the file are relative to the file, so a resolved copy of the
  // pipeline (written elsewhere) must hold them absolute.
  if (c.set("model.path") && s.model.path.empty()) c.error("model.path", "must name a model folder, got \"\"");
  if (c.set("model.path") && !s.model.path.empty()) s.model.path = c.ctx.resolve_path(s.model.path, c.pos("model.path"));
  if (c.set("model.tokenizer") && !s.model.tokenizer.empty())
    s.model.tokenizer = c.ctx.resolve_path(s.model.tokenizer, c.pos("model.tokenizer"));
  if (c.set("data.source") && s.data.source.rfind("builtin:", 0) != 0 && !s.data.source.empty())
    s.data.source = c.ctx.resolve_path(s.data.source, c.pos("data.source"));
}

void check_quantization_and_lora(Checker& c) {
  const QuantizationSpec& q = c.spec.quantization;
  if (c.ok({"quantization.scheme", "quantization.group_size"})) {
    const int64_t expected = models::group_size(q.scheme);
    if (expected && q.group_size != expected)
      c.error("quantization.group_size", "must be " + std::to_string(expected) + " for scheme '" +
                                             enum_name(q.scheme) + "', got " + std::to_string(q.group_size));
    if (!expected && q.group_size != 0)
      c.warning("quantization.group_size", "ignored: quantization.scheme is 'none'");
  }
  if (c.ok({"quantization.train", "quantization.scheme"}) && q.train == QuantTrain::qat &&
      q.scheme == models::QuantScheme::none)
    c.error(c.pick("quantization.train", "quantization.scheme"),
            "train = 'qat' needs a quantization.scheme (nvfp4 or mxfp4), got scheme 'none'");
  if (c.ok({"quantization.mode", "quantization.scheme"}) && q.mode == models::QuantMode::w4a4 &&
      q.scheme == models::QuantScheme::none)
    c.error(c.pick("quantization.mode", "quantization.scheme"),
            "mode = 'w4a4' needs a quantization.scheme (nvfp4 or mxfp4), got scheme 'none'");
  const int64_t rank = c.spec.lora.rank;
  if (c.ok({"quantization.train", "lora.rank"})) {
    if (q.train == QuantTrain::lora && rank == 0)
      c.error(c.pick("quantization.train", "lora.rank"),
              "train = 'lora' needs lora.rank > 0, got lora.rank = 0");
    if (q.train != QuantTrain::lora && rank > 0)
      c.error(c.pick("lora.rank", "quantization.train"), "lora.rank = " + std::to_string(rank) +
                                                              " needs quantization.train = 'lora', got '" +
                                                              enum_name(q.train) + "'");
  }
  if (rank == 0 && !c.set("lora.rank") && (c.set("lora.alpha") || c.set("lora.dropout") || c.set("lora.target_modules")))
    c.warning("lora", "[lora] keys are set but lora.rank = 0, so no adapters are created");
}

void check_aqn(Checker& c) {
  const AqnSpec& a = c.spec.aqn;
  if (!c.ok({"aqn.sigma_start", "aqn.sigma_end", "aqn.enabled"})) return;
  if (a.sigma_end > a.sigma_start)
    c.error(c.pick("aqn.sigma_end", "aqn.sigma_start"),
            "must be <= aqn.sigma_start (" + num(a.sigma_start) + "), got " + num(a.sigma_end));
  if (a.enabled && a.sigma_start <= 0) c.error("aqn.sigma_start", "must be > 0 when aqn.enabled, got 0");
  if (a.enabled && a.sigma_end <= 0) c.error("aqn.sigma_end", "must be > 0 when aqn.enabled, got 0");
  if (a.enabled && c.ok({"aqn.num_stages", "run.steps"}) && a.num_stages > c.spec.run.steps)
    c.error(c.pick("aqn.num_stages", "run.steps"), "must be <= run.steps (" + std::to_string(c.spec.run.steps) +
                                                       "), got " + std::to_string(a.num_stages));
}

void check_training(Checker& c) {
  const PipelineSpec& s = c.spec;
  // Supervised pipelines (learners all in mode "sft") have no groups to compare.
  const auto is_learner = [](const StageSpec& st) { return st.uses == "learner"; };
  const bool supervised =
      std::any_of(s.stages.begin(), s.stages.end(), is_learner) &&
      std::all_of(s.stages.begin(), s.stages.end(), [&](const StageSpec& st) {
        const auto mode = st.options.find("mode");
        return !is_learner(st) || (mode != st.options.end() && std::holds_alternative<std::string>(mode->second) &&
                                   std::get<std::string>(mode->second) == "sft");
      });
  if (c.ok({"algorithm.name", "data.samples_per_prompt"}) && s.algorithm.name == rl::Advantage::grpo && !supervised &&
      s.data.samples_per_prompt < 2)
    c.error("data.samples_per_prompt", "GRPO compares samples within a group and needs >= 2, got " +
                                           std::to_string(s.data.samples_per_prompt));
  const int64_t batch = s.data.prompts_per_step * s.data.samples_per_prompt;
  const int64_t mini = s.algorithm.mini_batch_size;
  if (c.ok({"algorithm.mini_batch_size", "data.prompts_per_step", "data.samples_per_prompt"}) && mini > 0 &&
      (mini > batch || batch % mini != 0))
    c.error("algorithm.mini_batch_size", "must divide the batch of data.prompts_per_step * "
                                         "data.samples_per_prompt = " + std::to_string(batch) +
                                         " sequences, got " + std::to_string(mini));
  if (c.ok({"data.max_prompt_len", "model.max_seq_len"}) && s.data.max_prompt_len >= s.model.max_seq_len)
    c.error(c.pick("data.max_prompt_len", "model.max_seq_len"),
            "must be < model.max_seq_len (" + std::to_string(s.model.max_seq_len) + ") to leave room for a response, got " +
                std::to_string(s.data.max_prompt_len));
  if (c.ok({"data.prompt_template"}) && s.data.prompt_template.find("{question}") == std::string::npos)
    c.error("data.prompt_template", "must contain {question} (where the problem text goes), got \"" +
                                        s.data.prompt_template + "\"");
  if (c.ok({"run.checkpoint_every", "run.steps"}) && s.run.checkpoint_every > s.run.steps)
    c.warning("run.checkpoint_every", "larger than run.steps: only the final checkpoint is written");
  if (c.ok({"algorithm.warmup_steps", "run.steps"}) && s.algorithm.warmup_steps > s.run.steps)
    c.warning("algorithm.warmup_steps", "larger than run.steps: the learning rate never reaches algorithm.lr");
}

// cluster.workers: "local" alone, or host:port entries; every stage's
// worker = N must name one of them (N <= the list's length).
void check_cluster(Checker& c) {
  const PipelineSpec& s = c.spec;
  if (!c.ok({"cluster.workers"})) return;
  const auto& workers = s.cluster.workers;
  const bool local = local_workers(s.cluster);
  if (!local) {
    for (const std::string& w : workers) {
      std::string problem;
      if (w == "local") {
        c.error("cluster.workers", "\"local\" stands alone (workers = \"local\"), not in a list of host:port");
        return;
      }
      if (!parse_worker_address(w, &problem)) {
        c.error("cluster.workers", problem + " (or \"local\")");
        return;
      }
    }
  }
  for (const StageSpec& stage : s.stages) {
    if (stage.worker == 0) continue;
    const std::string key = "stages." + stage.name + ".worker";
    if (workers.empty())
      c.ctx.error(stage.pos_of("worker"), key,
                  "worker = " + std::to_string(stage.worker) +
                      " but cluster.workers is empty (set it to \"local\" or a list of \"host:port\")");
    else if (!local && stage.worker > static_cast<int64_t>(workers.size()))
      c.ctx.error(stage.pos_of("worker"), key,
                  "worker = " + std::to_string(stage.worker) + " but cluster.workers names only " +
                      std::to_string(workers.size()) + " (expected 0.." + std::to_string(workers.size()) + ")");
  }
}

}  // namespace

void finish_and_cross_check(const Node& root, PipelineSpec& spec, Context& ctx) {
  Checker c{root, spec, ctx};
  derive(c);
  check_quantization_and_lora(c);
  check_aqn(c);
  check_training(c);
  check_cluster(c);
}

}  // namespace qerl::dsl::detail
