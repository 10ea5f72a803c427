// The stateful toy stages. State files are plain text with 17 significant
// digits (doubles round-trip exactly), so a resumed run can match an
// uninterrupted one bit for bit.
#include "tests/runtime/stateful_stages.hpp"

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <numeric>
#include <random>
#include <sstream>

#include "common/error.hpp"
#include "runtime/checkpoint.hpp"
#include "runtime/stage.hpp"
#include "tests/runtime/test_spec.hpp"
#include "tests/runtime/toy_loop.hpp"

namespace qerl::runtime::testing {
namespace {

namespace fs = std::filesystem;
using Values = std::vector<double>;

double mean(const Values& v) { return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size(); }

void write_text(const fs::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
  if (!out) throw Error("cannot write " + file.string());
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error("no state file " + file.string());
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string values_line(const Values& v) {
  std::ostringstream out;
  out << std::setprecision(17) << v.size();
  for (double x : v) out << ' ' << x;
  return out.str() + "\n";
}

Values read_values(std::istream& in) {
  size_t n = 0;
  in >> n;
  Values v(n);
  for (double& x : v) in >> x;
  if (!in) throw Error("bad values in a state file");
  return v;
}

// Common plumbing: name, replica, start step, and the injected failures.
class ToyBase : public Stage {
 public:
  explicit ToyBase(std::shared_ptr<StatefulToys> toys) : toys_(std::move(toys)) {}
  void setup(const StageContext& context) override {
    context_ = context;
    seed_ = static_cast<uint32_t>(context.pipeline->run.seed);
  }
  StepOutput run(const StepInput& in) override {
    if (failing(toys_->fail_run_at, in.step)) throw Error("injected failure");
    step_ = in.step;
    return step(in);
  }
  void save_state(const fs::path& dir) override {
    ++toys_->saves;
    if (failing(toys_->fail_save_at, step_)) throw Error("injected save failure");
    save(dir);
  }
  void load_state(const fs::path& dir) override {
    ++toys_->loads;
    load(dir);
  }

 protected:
  virtual StepOutput step(const StepInput& in) = 0;
  virtual void save(const fs::path&) {}
  virtual void load(const fs::path&) {}

  std::shared_ptr<StatefulToys> toys_;
  StageContext context_;
  uint32_t seed_ = 0;
  int64_t step_ = -1;  // of the last run()

 private:
  bool failing(int64_t at, int64_t step) const {
    return at == step && toys_->fail_stage == context_.stage->name && toys_->fail_replica == context_.replica;
  }
};

// Draws `rows` uniform numbers per step from one RNG stream.
class Counter : public ToyBase {
 public:
  using ToyBase::ToyBase;
  void setup(const StageContext& context) override {
    ToyBase::setup(context);
    rng_.seed(seed_);
  }

 protected:
  StepOutput step(const StepInput&) override {
    std::uniform_real_distribution<double> dist(0.0, 1.0);
    Values v(toys_->rows);
    for (double& x : v) x = dist(rng_);
    StepOutput out;
    out.metrics["counter/mean"] = mean(v);
    out.ports["out"] = std::make_shared<Numbers>(std::move(v));
    return out;
  }
  void save(const fs::path& dir) override {
    std::ostringstream s;
    s << rng_;
    write_text(dir / "rng.txt", s.str());
  }
  void load(const fs::path& dir) override {
    std::istringstream s(read_text(dir / "rng.txt"));
    s >> rng_;
    if (!s) throw Error("bad rng.txt");
  }

 private:
  std::mt19937 rng_;
};

// total(t) = x(t) + 0.5 total(t-1) + 0.25 total(t-2), the older totals
// coming back over the two back-edges (or, right after a resume, from the
// restored state).
class Accumulator : public ToyBase {
 public:
  using ToyBase::ToyBase;

 protected:
  StepOutput step(const StepInput& in) override {
    const Values& x = in.get<Numbers>("x")->values;
    const Values p0 = fed_back(in, "prev0", in.step - 1, last_);
    const Values p1 = fed_back(in, "prev1", in.step - 2, before_);
    Values total(x.size());
    for (size_t i = 0; i < x.size(); ++i) total[i] = x[i] + 0.5 * p0[i] + 0.25 * p1[i];
    before_ = last_;
    last_ = total;
    StepOutput out;
    out.metrics["acc/mean"] = mean(total);
    out.ports["total"] = std::make_shared<Numbers>(std::move(total));
    out.weight_version = in.step + 1;
    return out;
  }
  void save(const fs::path& dir) override { write_text(dir / "history.txt", values_line(before_) + values_line(last_)); }
  void load(const fs::path& dir) override {
    std::istringstream s(read_text(dir / "history.txt"));
    before_ = read_values(s);
    last_ = read_values(s);
  }

 private:
  // The total of step `of` as the back-edge `port` brings it, checked
  // against `remembered`.
  Values fed_back(const StepInput& in, const std::string& port, int64_t of, const Values& remembered) {
    const std::string at = port + " at step " + std::to_string(in.step);
    if (in.has(port)) {
      const Values& got = in.get<Numbers>(port)->values;
      if (got != remembered) throw Error(at + " carried another step's total");
      return got;
    }
    if (of < 0) return Values(toys_->rows, 0.0);
    if (of >= context_.start_step) throw Error(at + " is absent although step " + std::to_string(of) + " ran");
    if (remembered.empty()) throw Error(at + ": the restored state lacks the total of step " + std::to_string(of));
    return remembered;
  }

  Values last_, before_;  // totals of steps t-1, t-2
};

class Relay : public ToyBase {
 public:
  using ToyBase::ToyBase;

 protected:
  StepOutput step(const StepInput& in) override {
    StepOutput out;
    out.ports["out"] = in.ports.at("in");
    return out;
  }
};

// Running sum of its shard. At a step that a checkpoint follows, the
// accumulator's state must already be on disk: it saves before sending.
class Sink : public ToyBase {
 public:
  using ToyBase::ToyBase;

 protected:
  StepOutput step(const StepInput& in) override {
    const auto& run = context_.pipeline->run;
    if (!context_.out_dir.empty() && checkpoint_due(in.step, run.checkpoint_every, run.steps)) {
      const fs::path saved = partial_checkpoint_dir(context_.out_dir, in.step + 1) / "acc" / "history.txt";
      if (!fs::exists(saved)) throw Error("acc sent step " + std::to_string(in.step) + " before saving its state");
    }
    for (double x : in.get<Numbers>("in")->values) sum_ += x;
    ++steps_;
    StepOutput out;
    out.metrics["sink/sum"] = sum_;
    out.metrics["sink/steps"] = static_cast<double>(steps_);
    return out;
  }
  void save(const fs::path& dir) override {
    std::ostringstream s;
    s << std::setprecision(17) << sum_ << ' ' << steps_ << '\n';
    write_text(dir / "sum.txt", s.str());
  }
  void load(const fs::path& dir) override {
    std::istringstream s(read_text(dir / "sum.txt"));
    s >> sum_ >> steps_;
    if (!s) throw Error("bad sum.txt");
  }

 private:
  double sum_ = 0;
  int64_t steps_ = 0;
};

template <class T>
StageType toy_type(dsl::StageTypeSchema schema, std::shared_ptr<StatefulToys> toys) {
  return StageType{std::move(schema), [toys] { return std::make_unique<T>(toys); }};
}

}  // namespace

void register_stateful_toys(StageRegistry& registry, std::shared_ptr<StatefulToys> toys) {
  registry.add(toy_type<Counter>(type_schema("ck.counter", {}, {port("out", "Nums")}), toys));
  registry.add(toy_type<Accumulator>(
      type_schema("ck.acc",
                  {port("x", "Nums"), port("prev0", "Nums", /*optional=*/true),
                   port("prev1", "Nums", /*optional=*/true)},
                  {port("total", "Nums")}),
      toys));
  registry.add(toy_type<Relay>(type_schema("ck.relay", {port("in", "Nums")}, {port("out", "Nums")}), toys));
  registry.add(toy_type<Sink>(type_schema("ck.sink", {port("in", "Nums")}, {}), toys));
}

dsl::PipelineSpec stateful_spec(int64_t steps, int64_t checkpoint_every, int64_t keep_checkpoints) {
  dsl::PipelineSpec spec = pipeline(
      {stage("counter", "ck.counter"),
       stage("acc", "ck.acc",
             {input("x", "counter.out"), input("prev0", "acc.total", /*staleness=*/0),
              input("prev1", "relay.out", /*staleness=*/1)}),
       stage("relay", "ck.relay", {input("in", "acc.total")}),
       stage("sink", "ck.sink", {input("in", "acc.total")}, {}, /*replicas=*/2)},
      steps);
  spec.run.seed = 7;
  spec.run.checkpoint_every = checkpoint_every;
  spec.run.keep_checkpoints = keep_checkpoints;
  return spec;
}

std::string counter_state_after(int64_t steps, int rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(0.0, 1.0);
  for (int64_t i = 0; i < steps * rows; ++i) (void)dist(rng);
  std::ostringstream s;
  s << rng;
  return s.str();
}

}  // namespace qerl::runtime::testing
