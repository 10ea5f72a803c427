// Checkpoint folders on their own: when one is due, what counts as complete
// (step_<N> with manifest.json; never .tmp), the newest one with its
// manifest checked, commit by rename, pruning of the oldest, clearing what a
// resumed run would overwrite, and trimming metrics.jsonl for a resume.
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.hpp"
#include "runtime/checkpoint.hpp"
#include "tests/runtime/test_spec.hpp"

using namespace qerl;
using namespace qerl::runtime;
namespace fs = std::filesystem;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

// A checkpoint as the stages and the driver leave it.
fs::path make_complete(const fs::path& out_dir, int64_t steps) {
  write(partial_checkpoint_dir(out_dir, steps) / "learner" / "model.bin", "w" + std::to_string(steps));
  return commit_checkpoint(out_dir, CheckpointManifest{steps, "run", steps * 10, 1700000000});
}

std::vector<int64_t> complete_steps(const fs::path& out_dir) {
  std::vector<int64_t> out;
  for (const auto& c : list_checkpoints(out_dir)) out.push_back(c.steps_completed);
  return out;
}

}  // namespace

TEST_CASE("a checkpoint follows every N-th step and the last step; never with N = 0") {
  std::vector<int64_t> due;
  for (int64_t t = 0; t < 10; ++t)
    if (checkpoint_due(t, /*every=*/3, /*total_steps=*/10)) due.push_back(t);
  CHECK(due == std::vector<int64_t>{2, 5, 8, 9});  // steps_completed 3, 6, 9, 10
  due.clear();
  for (int64_t t = 0; t < 8; ++t)
    if (checkpoint_due(t, 4, 8)) due.push_back(t);
  CHECK(due == std::vector<int64_t>{3, 7});  // no double checkpoint at the end
  CHECK(checkpoint_due(4, 50, 5));
  CHECK_FALSE(checkpoint_due(3, 50, 5));
  for (int64_t t = 0; t < 5; ++t) CHECK_FALSE(checkpoint_due(t, 0, 5));
}

TEST_CASE("checkpoint folders are named by steps completed; replicas > 0 get .r<k>") {
  CHECK(checkpoint_dir("runs/x", 6) == fs::path("runs/x/checkpoints/step_000006"));
  CHECK(partial_checkpoint_dir("runs/x", 1234567) == fs::path("runs/x/checkpoints/step_1234567.tmp"));
  CHECK(stage_state_name("rollout", 0) == "rollout");
  CHECK(stage_state_name("rollout", 2) == "rollout.r2");
}

TEST_CASE("commit makes a .tmp folder complete with its manifest; only complete ones are listed") {
  const fs::path dir = testing::fresh_temp_dir("ckpt_commit");
  CHECK(list_checkpoints(dir).empty());
  CHECK_FALSE(latest_checkpoint(dir).has_value());
  make_complete(dir, 12);
  make_complete(dir, 3);
  write(partial_checkpoint_dir(dir, 15) / "learner" / "model.bin", "partial");   // a crash mid-save
  write(checkpoint_dir(dir, 20) / "learner" / "model.bin", "no manifest");        // not complete
  write(checkpoints_folder(dir) / "step_7x" / "manifest.json", "{}");              // not a checkpoint name
  CHECK(complete_steps(dir) == std::vector<int64_t>{3, 12});  // numeric order
  const auto latest = latest_checkpoint(dir);
  REQUIRE(latest);
  CHECK(latest->steps_completed == 12);
  CHECK(read(latest->dir / "learner" / "model.bin") == "w12");
  CHECK_FALSE(fs::exists(partial_checkpoint_dir(dir, 12)));
  const CheckpointManifest m = read_manifest(latest->dir);
  CHECK(m.steps_completed == 12);
  CHECK(m.run == "run");
  CHECK(m.weight_version == 120);
  CHECK(m.created_unix == 1700000000);
  // A checkpoint that exists already is never replaced.
  write(partial_checkpoint_dir(dir, 12) / "learner" / "model.bin", "again");
  CHECK_THROWS_AS(commit_checkpoint(dir, CheckpointManifest{12, "run", 0, 0}), Error);
  CHECK(read(checkpoint_dir(dir, 12) / "learner" / "model.bin") == "w12");
}

TEST_CASE("a corrupt or mismatched manifest of the newest checkpoint is an error naming it") {
  const fs::path dir = testing::fresh_temp_dir("ckpt_corrupt");
  make_complete(dir, 4);
  const fs::path manifest = make_complete(dir, 8) / "manifest.json";
  write(manifest, "{\"steps_completed\": 8, \"run\": ");
  try {
    (void)latest_checkpoint(dir);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find(manifest.string()) != std::string::npos);
  }
  write(manifest, "{\"steps_completed\": 9, \"run\": \"r\", \"weight_version\": 0, \"created_unix\": 0}");
  CHECK_THROWS_WITH_AS(latest_checkpoint(dir), doctest::Contains("named for 8"), Error);
}

TEST_CASE("pruning keeps the newest N complete checkpoints; 0 keeps all") {
  const fs::path dir = testing::fresh_temp_dir("ckpt_prune");
  for (int64_t s : {2, 4, 6, 8, 10}) make_complete(dir, s);
  CHECK(prune_checkpoints(dir, 0).empty());
  CHECK(complete_steps(dir).size() == 5);
  const auto removed = prune_checkpoints(dir, 2);
  CHECK(removed.size() == 3);
  CHECK(complete_steps(dir) == std::vector<int64_t>{8, 10});
  CHECK_FALSE(fs::exists(checkpoint_dir(dir, 2)));
  CHECK_FALSE(fs::exists(partial_checkpoint_dir(dir, 2)));  // deleted, not left as .tmp
}

TEST_CASE("before a run at step S: partial folders and checkpoints past S are deleted") {
  const fs::path dir = testing::fresh_temp_dir("ckpt_clear");
  for (int64_t s : {3, 6, 9}) make_complete(dir, s);
  write(partial_checkpoint_dir(dir, 12) / "a" / "x", "partial");
  write(checkpoints_folder(dir) / "notes.txt", "user file");
  // A step_<N> without manifest (a commit cut short, a hand copy) is no
  // checkpoint: left in place, the run would fail on reaching step N.
  write(checkpoint_dir(dir, 15) / "a" / "x", "no manifest");
  write(checkpoint_dir(dir, 4) / "a" / "x", "no manifest, before the start");
  const auto removed = clear_checkpoints_after(dir, 6);
  REQUIRE(removed.size() == 4);
  CHECK(removed[0].dir == checkpoint_dir(dir, 4));
  CHECK(removed[0].incomplete);
  CHECK(removed[1].dir == checkpoint_dir(dir, 9));
  CHECK_FALSE(removed[1].incomplete);  // complete, but ahead of the start
  CHECK(removed[2].incomplete);
  CHECK(removed[3].incomplete);
  CHECK(complete_steps(dir) == std::vector<int64_t>{3, 6});
  CHECK_FALSE(fs::exists(partial_checkpoint_dir(dir, 12)));
  CHECK_FALSE(fs::exists(checkpoint_dir(dir, 15)));
  CHECK_FALSE(fs::exists(checkpoint_dir(dir, 4)));
  CHECK(fs::exists(checkpoints_folder(dir) / "notes.txt"));  // not ours: kept
  CHECK(clear_checkpoints_after(testing::fresh_temp_dir("ckpt_clear_none"), 0).empty());
}

TEST_CASE("metrics.jsonl is trimmed to the steps before the resume point") {
  const fs::path dir = testing::fresh_temp_dir("ckpt_metrics");
  const fs::path file = dir / "metrics.jsonl";
  std::string text;
  for (int s = 0; s < 6; ++s) text += "{\"step\":" + std::to_string(s) + ",\"x\":" + std::to_string(s * 1.5) + "}\n";
  write(file, text + "{\"step\":6,\"x\":");  // torn last line of a crashed run
  CHECK(keep_metrics_before(file, 4) == 4);
  std::istringstream kept(read(file));
  int n = 0;
  for (std::string line; std::getline(kept, line); ++n) {
    const auto j = nlohmann::json::parse(line);
    CHECK(j["step"] == n);
    CHECK(j["x"].get<double>() == doctest::Approx(n * 1.5));
  }
  CHECK(n == 4);
  CHECK(keep_metrics_before(dir / "missing.jsonl", 4) == 0);
  CHECK_FALSE(fs::exists(dir / "missing.jsonl"));
  write(file, "{\"step\":0}\nnot json\n{\"step\":2}\n");
  CHECK_THROWS_WITH_AS(keep_metrics_before(file, 4), doctest::Contains("metrics.jsonl:2"), Error);
  CHECK(read(file) == "{\"step\":0}\nnot json\n{\"step\":2}\n");  // untouched on error
}
