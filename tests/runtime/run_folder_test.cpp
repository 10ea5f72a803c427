// Run-folder files: atomic_write_file replaces a file whole (no temp file
// left behind), and metrics.jsonl holds one parseable JSON object per line.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

#include "common/error.hpp"
#include "runtime/metrics_sink.hpp"
#include "common/atomic_file.hpp"
#include "tests/runtime/test_spec.hpp"

using namespace qerl;
using namespace qerl::runtime;
namespace fs = std::filesystem;

namespace {
std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

TEST_CASE("atomic_write_file replaces the content whole and leaves no temp file") {
  const fs::path dir = testing::fresh_temp_dir("atomic");
  const fs::path file = dir / "resolved.toml";
  write_file_atomically(file, "a = 1\n");
  write_file_atomically(file, "b = 2\n");
  CHECK(read(file) == "b = 2\n");
  CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}) == 1);
  CHECK_THROWS_AS(write_file_atomically(dir / "missing" / "x.toml", "x"), Error);
}

TEST_CASE("metrics.jsonl: one JSON object per step, non-finite values as null") {
  const fs::path dir = testing::fresh_temp_dir("metrics");
  {
    MetricsSink sink((dir / "metrics.jsonl").string());
    StepRecord r;
    r.metrics = {{"critic/rewards/mean", 0.25}, {"timing_s/learner", 1.5}};
    sink.write(r);
    r.step = 1;
    r.weight_version = 1;
    r.metrics["critic/rewards/mean"] = std::nan("");
    sink.write(r);
  }
  std::ifstream in(dir / "metrics.jsonl");
  std::string line;
  std::vector<nlohmann::json> lines;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["step"] == 0);
  CHECK(lines[0]["critic/rewards/mean"] == 0.25);
  CHECK(lines[0]["timing_s/learner"] == 1.5);
  CHECK(lines[1]["weight_version"] == 1);
  CHECK(lines[1]["critic/rewards/mean"].is_null());
  CHECK_THROWS_AS(MetricsSink((dir / "no" / "metrics.jsonl").string()), Error);
}
