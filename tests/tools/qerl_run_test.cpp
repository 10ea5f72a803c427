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

#include "run_tool.hpp"

namespace fs = std::filesystem;

namespace {

using qerl::test::Outcome;
using qerl::test::slurp;

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
  const Outcome o = qerl_run(pipeline("r3_aqn_nvfp4.toml") + " --dry-run --out " + dir.string(), dir);
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
  CHECK(again.err.find("already holds metrics.jsonl") != std::string::npos);
  CHECK(slurp(dir / "metrics.jsonl") == before);
  CHECK(qerl_run(toy_args(dir, "--set run.seed=5 --overwrite"), dir).status == 0);
  CHECK(metrics_lines(dir / "metrics.jsonl").front()["toy/sqrt"].get<double>() == doctest::Approx(5.0));
}

namespace {

std::string resume_args(const fs::path& dir, const std::string& extra = "") {
  return std::string(QERL_SOURCE_DIR) + "/tests/tools/data/toy_resume.toml --out " + dir.string() +
         " --set 'plugins=[\"" + QERL_TOY_PLUGIN + "\"]' " + extra;
}

// Metrics lines without what depends on the clock (elapsed_s, timing_s/*).
std::vector<nlohmann::json> timeless_metrics(const fs::path& run_dir) {
  std::vector<nlohmann::json> lines = metrics_lines(run_dir / "metrics.jsonl");
  for (auto& line : lines) {
    line.erase("elapsed_s");
    for (auto it = line.begin(); it != line.end();)
      it = it.key().rfind("timing_s/", 0) == 0 ? line.erase(it) : std::next(it);
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
