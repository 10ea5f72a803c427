// qerl-run with worker processes (issue 17), end to end on loopback and the
// CPU: r3_aqn_nvfp4.toml with learner + reference in worker 1 and rollout +
// eval in worker 2 gives the single-process metrics at the same seed; a
// worker killed with SIGKILL stops the run with one line and exit 1, its
// checkpoint resumes to the uninterrupted metrics; workers of another build,
// secret or pipeline refuse the coordinator; a stray TCP client that sends
// garbage does not harm a worker.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iomanip>
#include <map>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "run_tool.hpp"
#include "tests/common/clocked_metric.hpp"

namespace fs = std::filesystem;
using qerl::test::Outcome;
using qerl::test::slurp;

namespace {

fs::path scratch(const std::string& name) { return qerl::test::scratch_dir("qerl_cluster_test", name); }

Outcome qerl_run(const std::string& args, const fs::path& dir) { return qerl::test::run_tool(QERL_RUN_EXE, args, dir); }

std::string pipeline(const std::string& name) { return std::string(QERL_SOURCE_DIR) + "/pipelines/" + name; }

// r3_aqn_nvfp4.toml cut to seconds (as in qerl_run_test.cpp), `steps` steps.
std::string small_r3(const fs::path& out, int steps, const std::string& extra = "") {
  return pipeline("r3_aqn_nvfp4.toml") + " --out " + out.string() +
         " --set model.dtype=fp32 --set run.steps=" + std::to_string(steps) +
         " --set aqn.num_stages=2 --set data.heldout_size=4 --set stages.eval.every=2"
         " --set stages.rollout.max_new_tokens=8 --set stages.eval.max_new_tokens=8"
         " --set data.prompts_per_step=2 --set data.samples_per_prompt=2 " +
         extra;
}

// Learner + reference in worker 1, rollout + eval in worker 2.
const std::string two_workers =
    " --set cluster.workers=local --set stages.learner.worker=1 --set stages.reference.worker=1"
    " --set stages.rollout.worker=2 --set stages.eval.worker=2 ";

std::vector<nlohmann::json> metrics_lines(const fs::path& file) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// Metrics lines without what depends on the clock.
std::vector<nlohmann::json> timeless_metrics(const fs::path& run_dir) {
  std::vector<nlohmann::json> lines = metrics_lines(run_dir / "metrics.jsonl");
  for (auto& line : lines) {
    for (auto it = line.begin(); it != line.end();)
      it = qerl::testing::clocked_metric(it.key()) ? line.erase(it) : std::next(it);
  }
  return lines;
}

size_t line_count(const fs::path& file) {
  std::ifstream in(file);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

// Waits until the output in `dir` (stdout.txt: spdlog's lines, stderr.txt)
// holds a match of `pattern`; returns its first group.
std::string wait_for(const fs::path& dir, const std::regex& pattern, double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    std::smatch m;
    const std::string text = slurp(dir / "stdout.txt") + slurp(dir / "stderr.txt");
    if (std::regex_search(text, m, pattern)) return m[1];
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return "";
}

// A worker process the test started; killed when it goes out of scope
// (also when a REQUIRE fails first).
struct Worker {
  pid_t pid = -1;
  int port = 0;
  fs::path dir;
  Worker() = default;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  Worker(Worker&& other) noexcept : pid(other.pid), port(other.port), dir(other.dir) { other.pid = -1; }
  ~Worker() {
    if (pid > 0) ::kill(pid, SIGKILL), qerl::test::wait_tool(pid, dir);
  }
};

// `qerl-run --worker --listen 0 <args>` with `secret` in its environment.
Worker start_worker(const std::string& name, const std::string& secret, const std::string& args) {
  Worker w;
  w.dir = scratch(name);
  w.pid = qerl::test::spawn_tool("env QERL_CLUSTER_SECRET=" + secret + " " + QERL_RUN_EXE,
                                 "--worker --listen 0 " + args, w.dir);
  const std::string port = wait_for(w.dir, std::regex("listening on 127\\.0\\.0\\.1:(\\d+)"), 60);
  REQUIRE(!port.empty());
  w.port = std::stoi(port);
  return w;
}

void stop_worker(Worker& w) {
  ::kill(w.pid, SIGKILL);
  qerl::test::wait_tool(w.pid, w.dir);
  w.pid = -1;
}

// Connects to 127.0.0.1:port, sends `bytes`, closes.
bool send_garbage(int port, const std::string& bytes) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                  ::write(fd, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ::close(fd);
  return ok;
}

}  // namespace

TEST_CASE("two worker processes give the single-process metrics at the same seed (staleness 0)") {
  const fs::path one = scratch("one_process"), two = scratch("two_workers");
  const Outcome a = qerl_run(small_r3(one, 3), one);
  INFO(a.err);
  REQUIRE(a.status == 0);
  const Outcome b = qerl_run(small_r3(two, 3, two_workers), two);
  INFO(b.err);
  REQUIRE(b.status == 0);
  CHECK(b.out.find("local worker 1 started") != std::string::npos);
  CHECK(b.out.find("local worker 2 started") != std::string::npos);
  const auto expected = timeless_metrics(one);
  REQUIRE(expected.size() == 3);
  CHECK(timeless_metrics(two) == expected);

  // --dry-run says which process each stage runs in.
  const Outcome dry = qerl_run(small_r3(two, 3, two_workers + " --dry-run"), two);
  CHECK(dry.status == 0);
  CHECK(dry.out.find("learner: worker 1 (local process 1), device cpu") != std::string::npos);
  CHECK(dry.out.find("rollout: worker 2 (local process 2), device cpu") != std::string::npos);
  CHECK(dry.out.find("data: coordinator (this qerl-run process)") != std::string::npos);
}

TEST_CASE("a worker killed with SIGKILL stops the run with one line and exit 1; --resume continues from its checkpoint") {
  const fs::path whole = scratch("kill_whole");
  const std::string every2 = " --set run.checkpoint_every=2 --set run.keep_checkpoints=3 ";
  const Outcome w = qerl_run(small_r3(whole, 6, every2), whole);
  INFO(w.err);
  REQUIRE(w.status == 0);
  const auto expected = timeless_metrics(whole);
  REQUIRE(expected.size() == 6);

  for (int victim : {1, 2}) {
    CAPTURE(victim);
    const fs::path dir = scratch("killed_worker_" + std::to_string(victim));
    const pid_t run = qerl::test::spawn_tool(QERL_RUN_EXE, small_r3(dir, 6, two_workers + every2), dir);
    const std::string pid = wait_for(dir,
                                     std::regex("local worker " + std::to_string(victim) +
                                                " started: 127\\.0\\.0\\.1:\\d+, pid (\\d+)"),
                                     120);
    REQUIRE(!pid.empty());
    // Kill it once step 2's checkpoint exists (3 steps done): mid-run.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(300);
    while (line_count(dir / "metrics.jsonl") < 3 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    REQUIRE(line_count(dir / "metrics.jsonl") >= 3);
    REQUIRE(::kill(std::stoi(pid), SIGKILL) == 0);
    const auto killed_at = std::chrono::steady_clock::now();
    const Outcome o = qerl::test::wait_tool(run, dir);
    const double stop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
    INFO(o.err);
    CHECK(o.status == 1);
    CHECK(stop_s < 15);
    const std::regex lost("qerl-run: error: worker " + std::to_string(victim) +
                          " \\(127\\.0\\.0\\.1:\\d+, pid " + pid + "; stages " +
                          (victim == 1 ? "reference, learner" : "rollout, eval") +
                          "\\) was lost after finishing step \\d+");
    CHECK(std::regex_search(o.err, lost));
    CHECK(fs::exists(dir / "checkpoints" / "step_000002"));  // complete checkpoints only are renamed to step_N
    // Resumed (in two processes again), it ends as if never stopped.
    const Outcome resumed = qerl_run("--resume " + dir.string(), dir);
    INFO(resumed.err);
    REQUIRE(resumed.status == 0);
    CHECK(timeless_metrics(dir) == expected);
  }
}

TEST_CASE("workers refuse a coordinator of another build, secret or pipeline, naming both; garbage does not harm them") {
  const std::string secret = "cluster-test-secret";
  const fs::path dir = scratch("refusals");
  const std::string all_on_worker =
      " --set stages.data.worker=1 --set stages.rollout.worker=1 --set stages.reward.worker=1"
      " --set stages.reference.worker=1 --set stages.learner.worker=1 --set stages.weight_sync.worker=1"
      " --set stages.eval.worker=1 ";
  auto run_against = [&](const Worker& w, const std::string& with_secret, const std::string& extra = "") {
    return qerl::test::run_tool("env QERL_CLUSTER_SECRET=" + with_secret + " " + QERL_RUN_EXE,
                                "--overwrite " + small_r3(dir, 2, all_on_worker + extra) +
                                    " --set 'cluster.workers=[\"127.0.0.1:" + std::to_string(w.port) + "\"]'",
                                dir);
  };

  Worker other_build = start_worker("other_build", secret, "--pretend-build 'qerl 000000000000 built long ago'");
  Outcome o = run_against(other_build, secret);
  CHECK(o.status == 1);
  CHECK(o.err.find("refused by the worker: different qerl builds: the coordinator runs 'qerl ") != std::string::npos);
  CHECK(o.err.find("this worker runs 'qerl 000000000000 built long ago'") != std::string::npos);
  stop_worker(other_build);

  Worker worker = start_worker("right_build", secret, "");
  o = run_against(worker, "not-the-secret");
  CHECK(o.status == 1);
  CHECK(o.err.find("does not hold this run's cluster secret") != std::string::npos);
  CHECK(o.err.find("not-the-secret") == std::string::npos);
  CHECK((slurp(worker.dir / "stdout.txt") + slurp(worker.dir / "stderr.txt")).find("not-the-secret") == std::string::npos);

  // A stray client: garbage bytes, then an empty connection; then the real run.
  CHECK(send_garbage(worker.port, std::string(4096, '\x7f') + "GET / HTTP/1.1\r\n\r\n"));
  CHECK(send_garbage(worker.port, ""));
  o = run_against(worker, secret);
  INFO(o.err);
  CHECK(o.status == 0);
  CHECK(line_count(dir / "metrics.jsonl") == 2);
  stop_worker(worker);

  // A worker started for a pipeline accepts only that one.
  Worker pinned = start_worker("pinned", secret, small_r3(dir, 2, all_on_worker) +
                                                         " --set cluster.workers=local --set algorithm.lr=1e-5");
  o = run_against(pinned, secret);
  CHECK(o.status == 1);
  CHECK(o.err.find("refused by the worker: different pipelines: the coordinator runs pipeline ") != std::string::npos);
  stop_worker(pinned);
}

TEST_CASE("staleness 1 across processes: the run finishes and rollout of step t+1 overlaps the learner's step t") {
  const fs::path dir = scratch("staleness1");
  const Outcome o = qerl_run(small_r3(dir, 4, two_workers + " --set 'stages.rollout.inputs.weights={ from = \"weight_sync.weights\", staleness = 1 }'"
                                                            " --log-level debug"),
                             dir);
  INFO(o.err.substr(o.err.size() > 4000 ? o.err.size() - 4000 : 0));
  REQUIRE(o.status == 0);
  CHECK(line_count(dir / "metrics.jsonl") == 4);
  // "<stage>[0] ran step <t> from <start> to <end> (unix s)", from the driver.
  std::map<std::string, std::map<int, std::pair<double, double>>> ran;
  const std::regex line("(\\w+)\\[0\\] ran step (\\d+) from ([0-9.]+) to ([0-9.]+) \\(unix s\\)");
  const std::string log = o.out + o.err;
  for (std::sregex_iterator it(log.begin(), log.end(), line), end; it != end; ++it)
    ran[(*it)[1]][std::stoi((*it)[2])] = {std::stod((*it)[3]), std::stod((*it)[4])};
  REQUIRE(ran["rollout"].size() == 4);
  REQUIRE(ran["learner"].size() == 4);
  int overlapping = 0;
  const double t0 = ran["rollout"][0].first;
  for (int t = 0; t + 1 < 4; ++t) {
    const auto [rollout_start, rollout_end] = ran["rollout"][t + 1];
    const auto [learner_start, learner_end] = ran["learner"][t];
    std::ostringstream line_text;
    line_text << std::fixed << std::setprecision(3) << "learner step " << t << " ran " << learner_start - t0 << ".."
              << learner_end - t0 << " s, rollout step " << t + 1 << " ran " << rollout_start - t0 << ".."
              << rollout_end - t0 << " s (from rollout step 0's start)";
    MESSAGE(line_text.str());
    if (rollout_start < learner_end && learner_start < rollout_end) ++overlapping;
  }
  CHECK(overlapping >= 1);
}

TEST_CASE("a worker that hangs (SIGSTOP: no heartbeats) stops the run within the connection timeout, exit 1") {
  const fs::path dir = scratch("stopped_worker");
  const pid_t run = qerl::test::spawn_tool(
      QERL_RUN_EXE, small_r3(dir, 8, two_workers + " --set run.checkpoint_every=2 --set stages.rollout.max_new_tokens=32"),
      dir);
  const std::string pid = wait_for(dir, std::regex("local worker 2 started: 127\\.0\\.0\\.1:\\d+, pid (\\d+)"), 120);
  REQUIRE(!pid.empty());
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (line_count(dir / "metrics.jsonl") < 2 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(::kill(std::stoi(pid), SIGSTOP) == 0);
  const auto stopped_at = std::chrono::steady_clock::now();
  const Outcome o = qerl::test::wait_tool(run, dir);
  const double stop_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped_at).count();
  ::kill(std::stoi(pid), SIGKILL);
  INFO(o.err);
  CHECK(o.status == 1);
  CHECK(stop_s < 40);  // 15 s without heartbeats, then the shutdown
  CHECK(o.err.find("qerl-run: error: worker 2 (127.0.0.1:") != std::string::npos);
  CHECK(o.err.find("stages rollout, eval) was lost after finishing step") != std::string::npos);
  CHECK(o.err.find("went silent for 15 s") != std::string::npos);
}
