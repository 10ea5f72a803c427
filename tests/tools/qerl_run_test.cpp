// qerl-run end to end, as a user runs it: exit statuses, what it prints, and
// what it leaves in the run folder. Each case runs the real executable in a
// child process on the shipped pipelines or on test-only toy stages.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "kernels/bf16.hpp"
#include "run_tool.hpp"
#include "stored_tensors.hpp"
#include "tests/common/clocked_metric.hpp"

namespace fs = std::filesystem;

namespace {

using qerl::test::Outcome;
using qerl::test::slurp;
using qerl::test::bf16_words;
using qerl::test::f32_values;
using qerl::test::read_tensors;

fs::path scratch_dir(const std::string& name) { return qerl::test::scratch_dir("qerl_tools_test", name); }

// Runs qerl-run with `args` (already shell-quoted where needed).
Outcome qerl_run(const std::string& args, const fs::path& dir) { return qerl::test::run_tool(QERL_RUN_EXE, args, dir); }

std::string pipeline(const std::string& name) {
  return std::string(QERL_SOURCE_DIR) + "/pipelines/" + name;
}

std::string toy_args(const fs::path& dir, const std::string& extra = "") {
  return std::string(QERL_SOURCE_DIR) + "/tests/tools/data/toy_run.toml --out " + dir.string() +
         " --set 'plugins=[\"" + QERL_TOY_PLUGIN + "\"]' " + extra;
}

std::vector<nlohmann::json> metrics_lines(const fs::path& file) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

const char* const headline_stages[] = {"data", "rollout", "reward", "reference", "learner",
                                       "weight_sync"};

}  // namespace

TEST_CASE("--dry-run of the headline pipeline prints every stage with its device") {
  const fs::path dir = scratch_dir("dry_run");
  const Outcome o = qerl_run(pipeline("r3_aqn_nvfp4.toml") + " --dry-run --dot " + (dir / "graph.dot").string(), dir);
  INFO(o.err);
  REQUIRE(o.status == 0);
  const std::string placement = o.out.substr(o.out.find("# placement"));
  for (const char* stage : headline_stages) {
    CAPTURE(stage);
    CHECK(o.out.find(std::string("[stages.") + stage + "]") != std::string::npos);  // resolved
    CHECK(placement.find(stage) != std::string::npos);
  }
  CHECK(o.out.find("mode = \"R3\"") != std::string::npos);
  CHECK(fs::exists(dir / "graph.dot"));
  CHECK(slurp(dir / "graph.dot").find("digraph") != std::string::npos);
}

TEST_CASE("colocated and disaggregated variants differ in placement only") {
  const fs::path a = scratch_dir("coloc"), b = scratch_dir("disagg");
  const Outcome coloc = qerl_run(pipeline("r3_aqn_nvfp4.toml") + " --dry-run --out " + a.string(), a);
  const Outcome disagg =
      qerl_run(pipeline("r3_aqn_nvfp4_disagg.toml") + " --dry-run --out " + b.string(), b);
  REQUIRE(coloc.status == 0);
  REQUIRE(disagg.status == 0);
  const auto section = [](const std::string& s, const char* from, const char* to) {
    const auto begin = s.find(from);
    return s.substr(begin, s.find(to, begin) - begin);
  };
  // Same graph, different placement.
  CHECK(section(coloc.out, "# actor graph", "# placement") ==
        section(disagg.out, "# actor graph", "# placement"));
  CHECK(coloc.out.substr(coloc.out.find("# placement")) !=
        disagg.out.substr(disagg.out.find("# placement")));
}

TEST_CASE("a malformed pipeline prints file:line:col errors and exits 2 without crashing") {
  const fs::path dir = scratch_dir("malformed");
  std::ofstream(dir / "bad.toml") << "[run]\nname = \"x\"\nsteps = \"many\"\n\n[algorithm]\nlrr = 1e-5\n";
  const Outcome o = qerl_run((dir / "bad.toml").string(), dir);
  CHECK(o.status == 2);
  CHECK(o.err.find("bad.toml:3:") != std::string::npos);
  CHECK(o.err.find("bad.toml:6:") != std::string::npos);
  CHECK(o.err.find("did you mean 'lr'") != std::string::npos);
  CHECK(o.err.find("terminate") == std::string::npos);
}

TEST_CASE("a bad --set is rejected with the override named") {
  const fs::path dir = scratch_dir("bad_set");
  const Outcome o = qerl_run(pipeline("r3_aqn_nvfp4.toml") + " --dry-run --set run.steps=abc", dir);
  CHECK(o.status == 2);
  CHECK(o.err.find("<--set>") != std::string::npos);
  CHECK(o.err.find("run.steps") != std::string::npos);
}

TEST_CASE("--explain describes a key from the schema") {
  const fs::path dir = scratch_dir("explain");
  const Outcome o = qerl_run("--explain aqn.sigma_end", dir);
  REQUIRE(o.status == 0);
  CHECK(o.out.find("sigma_end") != std::string::npos);
  CHECK(o.out.find("default 1e-04") != std::string::npos);
  const Outcome stage = qerl_run("--explain rollout", dir);
  REQUIRE(stage.status == 0);
  CHECK(stage.out.find("RolloutBatch") != std::string::npos);
}

TEST_CASE("docs/pipeline-reference.md is what the schema generates (docs cannot drift)") {
  const fs::path dir = scratch_dir("reference");
  const Outcome o = qerl_run("--print-reference", dir);
  REQUIRE(o.status == 0);
  CHECK(o.out == slurp(std::string(QERL_SOURCE_DIR) + "/docs/pipeline-reference.md"));
}

TEST_CASE("a real run writes resolved.toml and one complete metrics line per step") {
  const fs::path dir = scratch_dir("toy_run");
  const Outcome o = qerl_run(toy_args(dir), dir);
  INFO(o.err);
  REQUIRE(o.status == 0);
  const auto lines = metrics_lines(dir / "metrics.jsonl");
  REQUIRE(lines.size() == 6);
  for (size_t i = 0; i < lines.size(); ++i) {
    CHECK(lines[i]["step"] == static_cast<int>(i));
    const double v = static_cast<double>(i * 10 + 3);  // seed = 3
    CHECK(lines[i]["toy/square"].get<double>() == doctest::Approx(v * v));
    CHECK(lines[i]["toy/sqrt"].get<double>() == doctest::Approx(v));
    for (const char* stage : {"source", "square", "sink"})
      CHECK(lines[i].contains(std::string("timing_s/") + stage));
  }
  // The resolved pipeline is a complete pipeline: it runs again as is.
  const fs::path again = scratch_dir("toy_run_again");
  const Outcome re = qerl_run((dir / "resolved.toml").string() + " --out " + again.string(), again);
  INFO(re.err);
  CHECK(re.status == 0);
  const auto without_out_dir = [](std::string text) {
    const auto begin = text.find("out_dir = ");
    return text.erase(begin, text.find('\n', begin) - begin);
  };
  CHECK(without_out_dir(slurp(again / "resolved.toml")) == without_out_dir(slurp(dir / "resolved.toml")));
}

TEST_CASE("a stage that throws stops the run with one line and leaves complete files") {
  const fs::path dir = scratch_dir("toy_fail");
  const Outcome o = qerl_run(toy_args(dir, "--set stages.square.fail_at_step=3"), dir);
  CHECK(o.status == 1);
  CHECK(o.err.find("stage 'square'") != std::string::npos);
  CHECK(o.err.find("step 3") != std::string::npos);
  CHECK(o.err.find("injected failure") != std::string::npos);
  const auto lines = metrics_lines(dir / "metrics.jsonl");  // throws on a partial line
  CHECK(lines.size() <= 3);  // steps 0..2 may finish before the failure stops the run
  for (size_t i = 0; i < lines.size(); ++i) CHECK(lines[i]["step"] == static_cast<int>(i));
  CHECK(slurp(dir / "resolved.toml").find("fail_at_step = 3") != std::string::npos);
}

TEST_CASE("a stage type without an implementation fails before anything runs") {
  const fs::path dir = scratch_dir("toy_declared");
  const Outcome o = qerl_run(toy_args(dir, "--set stages.sink.uses=toy.declared_only"), dir);
  CHECK(o.status == 2);
  CHECK(o.err.find("toy.declared_only") != std::string::npos);
  CHECK(!fs::exists(dir / "metrics.jsonl"));
}

TEST_CASE("an explicit GPU that does not exist is an error on a machine without it") {
  const fs::path dir = scratch_dir("no_gpu");
  const Outcome o = qerl_run(pipeline("r3_aqn_nvfp4_disagg.toml") +
                                 " --dry-run --set cluster.device=cuda --set 'stages.learner.gpus=[63]'",
                             dir);
  CHECK(o.status == 2);
  CHECK(o.err.find("stages.learner.gpus") != std::string::npos);
}

TEST_CASE("a run folder that holds a run is not overwritten without --overwrite") {
  const fs::path dir = scratch_dir("toy_rerun");
  REQUIRE(qerl_run(toy_args(dir), dir).status == 0);
  const std::string before = slurp(dir / "metrics.jsonl");
  const Outcome again = qerl_run(toy_args(dir, "--set run.seed=5"), dir);
  CHECK(again.status == 2);
  CHECK(again.err.find("already holds a run (steps in metrics.jsonl or checkpoints/)") != std::string::npos);
  CHECK(slurp(dir / "metrics.jsonl") == before);
  CHECK(qerl_run(toy_args(dir, "--set run.seed=5 --overwrite"), dir).status == 0);
  CHECK(metrics_lines(dir / "metrics.jsonl").front()["toy/sqrt"].get<double>() == doctest::Approx(5.0));
}

namespace {

std::string resume_args(const fs::path& dir, const std::string& extra = "") {
  return std::string(QERL_SOURCE_DIR) + "/tests/tools/data/toy_resume.toml --out " + dir.string() +
         " --set 'plugins=[\"" + QERL_TOY_PLUGIN + "\"]' " + extra;
}

// Metrics lines without what depends on the clock (elapsed_s, timing_s/*, throughputs).
std::vector<nlohmann::json> timeless_metrics(const fs::path& run_dir) {
  std::vector<nlohmann::json> lines = metrics_lines(run_dir / "metrics.jsonl");
  for (auto& line : lines) {
    for (auto it = line.begin(); it != line.end();)
      it = qerl::testing::clocked_metric(it.key()) ? line.erase(it) : std::next(it);
  }
  return lines;
}

fs::path checkpoint(const fs::path& run_dir, int steps) {
  std::string digits = std::to_string(steps);
  return run_dir / "checkpoints" / ("step_" + std::string(6 - digits.size(), '0') + digits);
}

}  // namespace

TEST_CASE("--resume continues a failed run from its newest checkpoint as if it never failed") {
  const fs::path whole = scratch_dir("resume_whole");
  const Outcome reference = qerl_run(resume_args(whole), whole);
  INFO(reference.err);
  REQUIRE(reference.status == 0);
  const auto expected = timeless_metrics(whole);
  REQUIRE(expected.size() == 7);
  int64_t sum_of_squares = 0;
  for (int t = 0; t < 7; ++t) {
    sum_of_squares += (t * 10 + 3) * (t * 10 + 3);  // seed = 3
    CHECK(expected[t]["toy/total"].get<double>() == doctest::Approx(sum_of_squares));
  }
  // A checkpoint after steps 2, 4, 6 and the last (7); keep_checkpoints = 2.
  CHECK_FALSE(fs::exists(checkpoint(whole, 4)));
  CHECK(fs::exists(checkpoint(whole, 6) / "manifest.json"));
  CHECK(slurp(checkpoint(whole, 7) / "total" / "total.txt") == std::to_string(sum_of_squares) + "\n");

  const fs::path dir = scratch_dir("resume_failed");
  const Outcome failed = qerl_run(resume_args(dir, "--set stages.total.fail_once_at_step=5"), dir);
  CHECK(failed.status == 1);
  CHECK(failed.err.find("stage 'total' (replica 0) failed at step 5: injected failure") != std::string::npos);
  CHECK(fs::exists(checkpoint(dir, 4) / "manifest.json"));  // steps 0..4 finished before step 5 could start
  CHECK_FALSE(fs::exists(checkpoint(dir, 6)));

  const Outcome resumed = qerl_run("--resume " + dir.string(), dir);
  INFO(resumed.out, resumed.err);
  REQUIRE(resumed.status == 0);
  CHECK((resumed.out + resumed.err).find("resuming run 'toy_resume' at step 4 of 7") != std::string::npos);
  CHECK(resumed.err.find("step 5/7") != std::string::npos);  // the progress line counts on
  CHECK(resumed.err.find("step 1/7") == std::string::npos);
  CHECK(timeless_metrics(dir) == expected);
  CHECK(slurp(checkpoint(dir, 7) / "total" / "total.txt") == slurp(checkpoint(whole, 7) / "total" / "total.txt"));

  const Outcome again = qerl_run("--resume " + dir.string(), dir);
  CHECK(again.status == 0);
  CHECK(again.out.find("run 'toy_resume' is already complete (7 of 7 steps)") != std::string::npos);
  CHECK(timeless_metrics(dir) == expected);

  // Only run.steps may change: a longer run continues from the final checkpoint.
  const Outcome other = qerl_run("--resume " + dir.string() + " --set run.seed=4", dir);
  CHECK(other.status == 2);
  CHECK(other.err.find("--resume allows only --set run.steps=N, got --set run.seed=4") != std::string::npos);
  const Outcome longer = qerl_run("--resume " + dir.string() + " --set run.steps=9", dir);
  INFO(longer.err);
  REQUIRE(longer.status == 0);
  const fs::path whole9 = scratch_dir("resume_whole9");
  REQUIRE(qerl_run(resume_args(whole9, "--set run.steps=9"), whole9).status == 0);
  CHECK(timeless_metrics(dir) == timeless_metrics(whole9));
  CHECK(slurp(dir / "resolved.toml").find("steps = 9") != std::string::npos);
}

TEST_CASE("--resume without a checkpoint, with a pipeline, or of no run folder exits 2 with one line") {
  const fs::path dir = scratch_dir("resume_none");
  REQUIRE(qerl_run(toy_args(dir), dir).status == 0);  // checkpoint_every = 0: no checkpoints
  const std::string metrics = slurp(dir / "metrics.jsonl");
  const Outcome none = qerl_run("--resume " + dir.string(), dir);
  CHECK(none.status == 2);
  CHECK(none.err == "qerl-run: error: cannot resume '" + dir.string() + "': no complete checkpoint in " +
                        (dir / "checkpoints").string() + " (run.checkpoint_every = 0 writes none)\n");
  CHECK(slurp(dir / "metrics.jsonl") == metrics);  // untouched

  const Outcome both = qerl_run("--resume " + dir.string() + " " + pipeline("r3_aqn_nvfp4.toml"), dir);
  CHECK(both.status == 2);
  CHECK(both.err.find("do not also pass a pipeline file") != std::string::npos);
  const Outcome nowhere = qerl_run("--resume " + (dir / "missing").string(), dir);
  CHECK(nowhere.status == 2);
  CHECK(nowhere.err.find("holds no resolved.toml") != std::string::npos);
}

TEST_CASE("grpo_tiny.toml trains the shipped model for 3 steps; r3_aqn_nvfp4.toml says what it does not do yet") {
  const fs::path dir = scratch_dir("grpo_tiny");
  // heldout_size 20 keeps the first 20 of the same held-out permutation:
  // problems the shipped model never trained on.
  const Outcome o = qerl_run(pipeline("grpo_tiny.toml") + " --out " + dir.string() +
                                 " --set run.steps=3 --set data.heldout_size=20",
                             dir);
  INFO(o.err);
  REQUIRE(o.status == 0);
  const auto lines = metrics_lines(dir / "metrics.jsonl");
  REQUIRE(lines.size() == 3);
  // The shipped model is trained (a random one answers none of these).
  CHECK(lines[0]["val/initial_accuracy"].get<double>() >= 0.1);
  CHECK(lines[2].contains("val/accuracy"));
  for (const auto& line : lines) {
    CHECK(line["rollout/tokens_per_s"].get<double>() > 0);
    CHECK(line["reward/format_rate"].get<double>() > 0.5);  // it writes "#### N" answers
    CHECK(std::abs(line["rollout_corr/kl"].get<double>()) < 1e-3);  // fp32 sampler = learner
  }
  double grad_norms = 0;  // an update happened (a step whose groups all agree has none)
  for (const auto& line : lines) grad_norms += line["actor/grad_norm"].get<double>();
  CHECK(grad_norms > 0);
  CHECK(lines[2]["weight_version"].get<int64_t>() == 3);
  CHECK(lines[2]["rollout/weight_version"].get<double>() == 2);  // step 2 sampled with 2 updates

  const fs::path r3 = scratch_dir("r3");
  const Outcome h = qerl_run(pipeline("r3_aqn_nvfp4.toml") + " --out " + r3.string() +
                                 " --set run.steps=2 --set aqn.num_stages=2 --set run.checkpoint_every=0"
                                 " --set data.heldout_size=4 --set stages.eval.every=2"
                                 " --set stages.rollout.max_new_tokens=8 --set stages.eval.max_new_tokens=8"
                                 " --set data.prompts_per_step=2 --set data.samples_per_prompt=2",
                             r3);
  INFO(h.out << h.err);
  REQUIRE(h.status == 0);
  CHECK((h.out + h.err).find("declared but") == std::string::npos);
  const auto r3_lines = metrics_lines(r3 / "metrics.jsonl");
  REQUIRE(r3_lines.size() == 2);
  // R3 is real: the learner replays the rollout's routes and reports how often its own router disagrees.
  for (const auto& line : r3_lines) {
    REQUIRE(line.contains("router/mismatch_rate"));
    CHECK(line["router/mismatch_rate"].get<double>() >= 0);
    CHECK(line["router/mismatch_rate"].get<double>() <= 1);
    CHECK(line.contains("router/load_imbalance/layer_0"));
  }
  // LoRA on the NVFP4 base: weight sync carries the adapters only (rank 16, fp32):
  // per layer 4 attention projections and 8 experts x 3, each r * (in + out) values.
  const double hidden = 128, attention = 4 * 32, kv = 2 * 32, expert = 128;
  const double per_layer = 16 * ((hidden + attention) + 2 * (hidden + kv) + (attention + hidden)) +
                           8 * 16 * (2 * (hidden + expert) + (expert + hidden));
  CHECK(r3_lines[0]["weight_sync/bytes"].get<double>() == doctest::Approx(4 * 4 * per_layer));
  // The sampler's packed weights: NVFP4 on trained weights, about 20 dB.
  CHECK(r3_lines[0]["quant/sqnr_db"].get<double>() > 18);
  CHECK(r3_lines[0]["quant/sqnr_db"].get<double>() < 23);
  // AQN (2 stages over 2 steps): step 0 samples clean, step 1 with sigma_start on the norms.
  CHECK(r3_lines[0]["aqn/sigma"].get<double>() == 0);
  CHECK(r3_lines[0]["aqn/applied_rms"].get<double>() == 0);
  const double sigma = r3_lines[1]["aqn/sigma"].get<double>();
  CHECK(sigma > 0);
  CHECK(r3_lines[1]["aqn/applied_rms"].get<double>() == doctest::Approx(sigma).epsilon(0.15));
}

namespace {

// r3_aqn_nvfp4.toml cut to seconds: fp32 (so packing at start and
// qerl-quantize give the same codes), no reference (kl_coef 0: the
// reference would see the dequantized weights of a quantized model.path).
std::string small_r3(const std::string& pipeline_file, const fs::path& dir, const std::string& extra = "") {
  return pipeline(pipeline_file) + " --out " + dir.string() +
         " --set model.dtype=fp32 --set algorithm.kl_coef=0 --set run.steps=2 --set aqn.num_stages=2"
         " --set run.checkpoint_every=0 --set data.heldout_size=4 --set stages.eval.every=2"
         " --set stages.rollout.max_new_tokens=8 --set stages.eval.max_new_tokens=8"
         " --set data.prompts_per_step=2 --set data.samples_per_prompt=2 " +
         extra;
}

}  // namespace

TEST_CASE("a compressed-tensors model.path is the frozen base: LoRA trains on it exactly as on the base packed at start") {
  const fs::path dir = scratch_dir("prequantized");
  const fs::path folder = dir / "tiny-moe-nvfp4a16";
  const Outcome q = qerl::test::run_tool(QERL_QUANTIZE_EXE,
                                         std::string(QERL_SOURCE_DIR) + "/assets/tiny-moe " + folder.string() +
                                             " --scheme nvfp4a16",
                                         dir);
  INFO(q.out << q.err);
  REQUIRE(q.status == 0);
  const fs::path at_start = scratch_dir("prequantized_at_start"), stored = scratch_dir("prequantized_stored");
  const Outcome a = qerl_run(small_r3("r3_aqn_nvfp4.toml", at_start), at_start);
  INFO(a.err);
  REQUIRE(a.status == 0);
  const Outcome b = qerl_run(small_r3("r3_aqn_nvfp4.toml", stored, "--set model.path=" + folder.string()), stored);
  INFO(b.err);
  REQUIRE(b.status == 0);
  auto packed_at_start = timeless_metrics(at_start);
  const auto from_folder = timeless_metrics(stored);
  REQUIRE(packed_at_start.size() == 2);
  for (auto& line : packed_at_start) {
    CHECK(line.contains("quant/sqnr_db"));
    line.erase("quant/sqnr_db");  // loaded codes: the dense originals are not known
    CHECK(line.contains("val/accuracy") == (&line == &packed_at_start.back()));
  }
  CHECK(from_folder == packed_at_start);  // same codes, same samples, same updates, same accuracy

  // The checkpoint's scheme and mode decide; a pipeline that says otherwise is told so.
  const fs::path wrong = scratch_dir("prequantized_wrong");
  const Outcome w = qerl_run(small_r3("r3_aqn_nvfp4.toml", wrong,
                                      "--set model.path=" + folder.string() + " --set quantization.scheme=mxfp4"),
                             wrong);
  CHECK(w.status == 1);
  CHECK(w.err.find("holds a nvfp4-pack-quantized W4A16 checkpoint: quantization.scheme must be \"nvfp4\", got "
                   "\"mxfp4\"") != std::string::npos);
}

namespace {

// Runs 4 steps with checkpoints at 2 and 4 into WHOLE, then the same run as
// if it had crashed after its step-2 checkpoint (a copy without step 4 and
// its metrics lines), resumed: the metrics must be the uninterrupted ones.
void check_resume(const std::string& pipeline_file, const std::string& extra, const fs::path& whole,
                  const fs::path& dir) {
  const Outcome w = qerl_run(small_r3(pipeline_file, whole,
                                      "--set run.steps=4 --set run.checkpoint_every=2 --set run.keep_checkpoints=2 " +
                                          extra),
                             whole);
  INFO(w.err);
  REQUIRE(w.status == 0);
  fs::copy(whole, dir, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  fs::remove_all(checkpoint(dir, 4));
  const auto expected = timeless_metrics(whole);
  REQUIRE(expected.size() == 4);
  {
    std::ofstream out(dir / "metrics.jsonl", std::ios::trunc);
    std::ifstream in(whole / "metrics.jsonl");
    std::string line;
    for (int i = 0; i < 2 && std::getline(in, line); ++i) out << line << "\n";
  }
  const Outcome resumed = qerl_run("--resume " + dir.string(), dir);
  INFO(resumed.err);
  REQUIRE(resumed.status == 0);
  CHECK((resumed.out + resumed.err).find("at step 2 of 4") != std::string::npos);
  CHECK(timeless_metrics(dir) == expected);
}

}  // namespace

TEST_CASE("LoRA on NVFP4 resumes from a checkpoint as if never stopped") {
  const fs::path whole = scratch_dir("lora_whole"), dir = scratch_dir("lora_resumed");
  check_resume("r3_aqn_nvfp4.toml", "", whole, dir);  // adapters, optimizer, AQN draw, codes: all as uninterrupted
  CHECK(fs::exists(checkpoint(whole, 2) / "rollout" / "packed.safetensors"));
  CHECK(fs::exists(checkpoint(whole, 2) / "learner" / "lora.safetensors"));
  CHECK(fs::exists(checkpoint(whole, 2) / "learner" / "adapter" / "adapter_config.json"));  // PEFT / qerl-merge
  CHECK_FALSE(fs::exists(checkpoint(whole, 2) / "learner" / "policy"));  // only the base, which is model.path
  CHECK_FALSE(fs::exists(checkpoint(whole, 2) / "rollout" / "weights.safetensors"));  // the base is model.path's
  CHECK_FALSE(fs::exists(checkpoint(whole, 2) / "learner" / "master.safetensors"));  // fp32 adapters need none
}

TEST_CASE("QAT on a bf16 policy steps fp32 masters, which its checkpoints keep for an exact resume") {
  const fs::path whole = scratch_dir("qat_bf16_whole"), dir = scratch_dir("qat_bf16_resumed");
  // The entropy bonus gives every step a gradient, whatever the (often all-zero) rewards of so short a run.
  check_resume("r3_aqn_nvfp4_qat.toml", "--set model.dtype=bf16 --set algorithm.entropy_coef=0.01", whole, dir);
  const auto masters = read_tensors(checkpoint(whole, 2) / "learner" / "master.safetensors");
  const auto policy = read_tensors(checkpoint(whole, 2) / "learner" / "policy" / "model.safetensors");
  CHECK(masters.size() == policy.size());
  int64_t finer = 0;  // master elements that hold more than their bf16 rounding: updates below one bf16 ulp
  for (const auto& [name, master] : masters) {
    CAPTURE(name);
    const auto found = policy.find(name);
    REQUIRE(found != policy.end());
    CHECK(found->second.shape == master.shape);
    const std::vector<float> values = f32_values(master);
    const std::vector<uint16_t> words = bf16_words(found->second);
    REQUIRE(values.size() == words.size());
    int64_t differ = 0;  // the policy is its masters rounded to bf16
    for (size_t i = 0; i < values.size(); ++i) {
      differ += qerl::kernels::bf16_bits(values[i]) != words[i];
      finer += qerl::kernels::round_to_bf16(values[i]) != values[i];
    }
    CHECK(differ == 0);
  }
  CHECK(finer > 0);
}

TEST_CASE("QAT: weight sync sends the packed codes the learner's forward uses") {
  const fs::path qat = scratch_dir("qat_packed"), full = scratch_dir("qat_dense");
  // No AQN: its noise on the sampler's norms is a deliberate learner/sampler difference.
  const Outcome a = qerl_run(small_r3("r3_aqn_nvfp4_qat.toml", qat, "--set aqn.enabled=false"), qat);
  INFO(a.err);
  REQUIRE(a.status == 0);
  const Outcome b = qerl_run(
      small_r3("r3_aqn_nvfp4_qat.toml", full, "--set aqn.enabled=false --set quantization.train=none"), full);
  INFO(b.err);
  REQUIRE(b.status == 0);
  const auto packed_lines = metrics_lines(qat / "metrics.jsonl"), dense_lines = metrics_lines(full / "metrics.jsonl");
  const double ratio = packed_lines[0]["weight_sync/bytes"].get<double>() / dense_lines[0]["weight_sync/bytes"].get<double>();
  MESSAGE("QAT packed weight sync: " << packed_lines[0]["weight_sync/bytes"].get<double>() << " bytes, "
                                     << ratio << " of the dense fp32 update");
  // fp32 -> 4.5 bits on the quantized Linears (most of the model); embeddings, norms, routers, lm_head stay dense.
  CHECK(ratio < 0.35);
  CHECK(ratio > 0.1);
  // The sampler computes with the learner's QAT weights: their log-probs agree up to float32 summation order.
  for (const auto& line : packed_lines) CHECK(std::abs(line["rollout_corr/kl"].get<double>()) < 1e-5);
}
