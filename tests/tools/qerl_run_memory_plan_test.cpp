// qerl-run's memory plan end to end: --dry-run prints a table per device for
// the shipped pipeline and for the A2.7B benchmark pipelines (planned for a
// GPU from this machine with --assume-gpus and --device-memory, from a
// folder holding only their config.json); a plan over a device's capacity
// is refused with one line and exit status 2, at --dry-run and at run start,
// unless --allow-overcommit.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include "run_tool.hpp"

namespace fs = std::filesystem;

namespace {

using qerl::test::Outcome;

fs::path plan_scratch(const std::string& name) { return qerl::test::scratch_dir("qerl_tools_test_plan", name); }

Outcome plan_run(const std::string& args, const fs::path& dir) { return qerl::test::run_tool(QERL_RUN_EXE, args, dir); }

std::string source_file(const std::string& path) { return std::string(QERL_SOURCE_DIR) + "/" + path; }

// The memory-plan section of a --dry-run's output.
std::string plan_section(const std::string& out) {
  const auto at = out.find("# memory plan");
  return at == std::string::npos ? std::string() : out.substr(at);
}

// A model folder holding only the A2.7B config.json: all the plan reads.
fs::path a27b_config_only() {
  const fs::path dir = plan_scratch("a27b_model");
  fs::copy_file(source_file("pipelines/bench/a27b_config.json"), dir / "config.json");
  return dir;
}

}  // namespace

TEST_CASE("--dry-run of the shipped pipeline ends with the memory plan of its device") {
  const fs::path dir = plan_scratch("shipped");
  const Outcome o = plan_run(source_file("pipelines/r3_aqn_nvfp4.toml") + " --dry-run --set cluster.device=cpu", dir);
  INFO(o.err);
  REQUIRE(o.status == 0);
  const std::string plan = plan_section(o.out);
  REQUIRE_FALSE(plan.empty());
  CHECK(plan.find("cpu: capacity ") != std::string::npos);
  CHECK(plan.find("(/proc/meminfo MemTotal)") != std::string::npos);
  for (const char* line : {"rollout    packed base", "rollout    kv cache", "reference  weights", "learner    adam moments",
                           "learner    activations (est.)", "eval       kv cache"})
    CHECK_MESSAGE(plan.find(line) != std::string::npos, line);
  CHECK(plan.find("= planned peak ") != std::string::npos);
  CHECK(plan.find(": fits") != std::string::npos);
}

TEST_CASE("a placement over the device's capacity is refused at --dry-run and at run start, naming the numbers") {
  const fs::path dir = plan_scratch("refused");
  const std::string pipeline = source_file("pipelines/r3_aqn_nvfp4.toml") + " --set cluster.device=cpu";
  const Outcome dry = plan_run(pipeline + " --dry-run --device-memory 1MiB", dir);
  CHECK(dry.status == 2);
  CHECK(plan_section(dry.out).find("DOES NOT FIT") != std::string::npos);
  INFO(dry.err);
  CHECK(dry.err.rfind("qerl-run: error: memory plan: cpu needs ", 0) == 0);
  CHECK(dry.err.find(" but has 1 MiB (--device-memory); largest parts: learner activations (est.) ") != std::string::npos);
  CHECK(std::count(dry.err.begin(), dry.err.end(), '\n') == 1);

  const Outcome expert = plan_run(pipeline + " --dry-run --device-memory cpu=1MiB --allow-overcommit", dir);
  CHECK(expert.status == 0);

  const fs::path out = dir / "run";
  const Outcome run = plan_run(pipeline + " --device-memory 1MiB --set run.steps=10 --no-tensorboard --out " + out.string(), dir);
  INFO(run.err);
  CHECK(run.status == 2);
  CHECK(run.err.find("qerl-run: error: memory plan: cpu needs ") != std::string::npos);
  CHECK_FALSE(fs::exists(out / "metrics.jsonl"));

  const Outcome bad = plan_run(pipeline + " --dry-run --device-memory 12parsecs", dir);
  CHECK(bad.status == 2);
  CHECK(bad.err.find("unknown unit 'parsecs'") != std::string::npos);
  const Outcome assume = plan_run(pipeline + " --assume-gpus 1 --out " + out.string(), dir);
  CHECK(assume.status == 2);
  CHECK(assume.err.find("--assume-gpus") != std::string::npos);
}

TEST_CASE("the A2.7B benchmark pipelines: NVFP4 fits an 80 GiB GPU in 256-row chunks and 8-row micro-batches, 141 GiB whole; the bf16 twin 141 GiB") {
  const fs::path dir = plan_scratch("bench");
  const fs::path model = a27b_config_only();
  const auto dry = [&](const std::string& file, const std::string& memory, const std::string& extra = "") {
    return plan_run(source_file("pipelines/bench/" + file) + " --dry-run --assume-gpus 1 --device-memory " + memory +
                        " --set model.path=" + model.string() + extra,
                    dir);
  };
  const Outcome nvfp4 = dry("a27b_lora_nvfp4.toml", "141GiB");
  INFO(nvfp4.err);
  REQUIRE(nvfp4.status == 0);
  const std::string plan = plan_section(nvfp4.out);
  CHECK(plan.find("cuda:0: capacity 141 GiB (--device-memory)") != std::string::npos);
  CHECK(plan.find("cpu:") == std::string::npos);  // data, reward, weight_sync hold no model
  // 13,690,208,256 quantized weights (every expert, shared expert and attention Linear) at 0.5625 bytes + 4 per Linear.
  CHECK(plan.find("rollout    packed base           7.17 GiB") != std::string::npos);
  // The reference scores with the same packed base (weights = "base"), not a 26.7 GiB bf16 copy.
  CHECK(plan.find("reference  packed base           7.17 GiB") != std::string::npos);
  // gpu_memory_fraction 0.35 of 141 GiB holds the whole step: 24 layers x 2 x 16 heads x 128 x 2 bytes x 512 tokens
  // x 512 rows = 48 GiB, released after the step (kv_cache = "release").
  CHECK(plan.find("rollout    kv cache              48 GiB      its turn   512 rows x 512 tokens") != std::string::npos);
  CHECK(plan.find("persistent 30.6 GiB + largest turn rollout 48 GiB = planned peak 78.7 GiB") != std::string::npos);
  CHECK(plan.find("eval") == std::string::npos);

  // On 80 GiB the same fraction holds 256 rows at a time.
  const Outcome h100 = dry("a27b_lora_nvfp4.toml", "80GiB");
  INFO(h100.err);
  REQUIRE(h100.status == 0);
  CHECK(plan_section(h100.out).find("rollout    kv cache              24 GiB      its turn   256 rows x 512 tokens") !=
        std::string::npos);
  // There the learner's micro-batch of 8 rows (activations and logits estimated) is the largest turn.
  CHECK(plan_section(h100.out).find("persistent 30.6 GiB + largest turn learner 24.8 GiB = planned peak 55.5 GiB") !=
        std::string::npos);
  // A rollout that keeps its cache between steps holds it while the learner runs: persistent.
  const Outcome kept = dry("a27b_lora_nvfp4.toml", "80GiB", " --set stages.rollout.kv_cache=keep");
  REQUIRE(kept.status == 0);
  CHECK(plan_section(kept.out).find("rollout    kv cache              24 GiB      persistent") != std::string::npos);
  CHECK(plan_section(kept.out).find("persistent 54.6 GiB + largest turn learner 24.8 GiB") != std::string::npos);
  // The reference's own bf16 weights (26.7 GiB) instead of the base.
  const Outcome dense_reference = dry("a27b_lora_nvfp4.toml", "80GiB", " --set stages.reference.weights=model");
  REQUIRE(dense_reference.status == 0);
  CHECK(plan_section(dense_reference.out).find("reference  weights               26.7 GiB") != std::string::npos);

  // The bf16 twin: three bf16 copies (rollout, reference, learner) and the 48 GiB cache.
  const Outcome bf16 = dry("a27b_lora_bf16.toml", "141GiB");
  INFO(bf16.err);
  REQUIRE(bf16.status == 0);
  CHECK(plan_section(bf16.out).find("packed base") == std::string::npos);
  CHECK(plan_section(bf16.out).find("persistent 85.6 GiB + largest turn rollout 48 GiB = planned peak 134 GiB") !=
        std::string::npos);
  const Outcome bf16_small = dry("a27b_lora_bf16.toml", "80GiB");
  CHECK(bf16_small.status == 2);
  CHECK(bf16_small.err.find("memory plan: cuda:0 needs 110 GiB (persistent 85.6 GiB + learner's turn 24.8 GiB)") !=
        std::string::npos);

  // Without the model folder the pipelines still validate; the plan says what it lacks.
  if (!fs::exists(source_file("models/a27b/config.json"))) {
    const Outcome bare = plan_run(source_file("pipelines/bench/a27b_lora_nvfp4.toml") + " --dry-run --assume-gpus 1", dir);
    CHECK(bare.status == 0);
    CHECK(plan_section(bare.out).find("has no config.json") != std::string::npos);
  }
}
