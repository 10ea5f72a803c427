// Test-only plugin (not shipped): tiny stages that let the qerl-run tests
// drive a real run end to end — a counting source, a squaring stage with a
// metric, a sink that checks what arrives, a stage that throws at a chosen
// step, a running total with state to checkpoint (fed back its own total)
// that can fail once, and a type that is declared but has no implementation.
#include <chrono>
#include <cmath>
#include <thread>
#include <filesystem>
#include <fstream>

#include "common/error.hpp"
#include "dsl/pipeline_spec.hpp"
#include "runtime/plugin.hpp"
#include "runtime/stage.hpp"
#include "runtime/stage_registry.hpp"

namespace {

using namespace qerl;
using runtime::StepInput;
using runtime::StepOutput;

struct Number : runtime::Payload {
  explicit Number(int64_t v) : value(v) {}
  int64_t value;
};

dsl::PortSpec number_port(const std::string& name) { return {name, "ToyNumber", "an integer", false}; }

// Emits step * 10 + seed-derived offset each step.
class Source : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& ctx) override { offset_ = ctx.pipeline->run.seed; }
  StepOutput run(const StepInput& in) override {
    StepOutput out;
    out.ports["out"] = std::make_shared<Number>(in.step * 10 + offset_);
    return out;
  }

 private:
  int64_t offset_ = 0;
};

// Squares its input; reports it as a metric; throws at `fail_at_step` (-1 =
// never) or in setup (`fail_in_setup` = 1); takes `sleep_ms` per step (a
// slow stage, for the tests that act while a run is going on).
class Square : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& ctx) override {
    if (ctx.stage->option<int64_t>("fail_in_setup") == 1) throw Error("injected failure (fail_in_setup)");
    fail_at_step_ = ctx.stage->option<int64_t>("fail_at_step");
    sleep_ms_ = ctx.stage->option<int64_t>("sleep_ms");
  }
  StepOutput run(const StepInput& in) override {
    if (sleep_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms_));
    if (in.step == fail_at_step_) throw Error("injected failure (fail_at_step)");
    const int64_t v = in.get<Number>("in")->value;
    StepOutput out;
    out.ports["out"] = std::make_shared<Number>(v * v);
    out.metrics["toy/square"] = static_cast<double>(v * v);
    return out;
  }

 private:
  int64_t fail_at_step_ = -1;
  int64_t sleep_ms_ = -1;
};

// Checks that the squared value matches the source's formula.
class Sink : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& ctx) override { offset_ = ctx.pipeline->run.seed; }
  StepOutput run(const StepInput& in) override {
    const int64_t expected = (in.step * 10 + offset_) * (in.step * 10 + offset_);
    const int64_t got = in.get<Number>("in")->value;
    if (got != expected)
      throw Error("sink got " + std::to_string(got) + ", expected " + std::to_string(expected));
    StepOutput out;
    out.metrics["toy/sqrt"] = std::sqrt(static_cast<double>(got));
    return out;
  }

 private:
  int64_t offset_ = 0;
};

// Running total of its input: out(t) = out(t-1) + in(t), out(t-1) coming
// back over a back-edge (staleness 0) and checked against the total it
// keeps; after a resume the restored total stands in for the message sent
// before the checkpoint. Throws at `fail_once_at_step` unless the run folder
// has the marker of an earlier failure there (a transient fault: the resumed
// run gets past it).
class Accumulate : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& ctx) override {
    fail_once_at_step_ = ctx.stage->option<int64_t>("fail_once_at_step");
    out_dir_ = ctx.out_dir;
    start_step_ = ctx.start_step;
  }
  StepOutput run(const StepInput& in) override {
    if (in.step == fail_once_at_step_ && !out_dir_.empty()) {
      const auto marker = std::filesystem::path(out_dir_) / ("toy_failed_at_" + std::to_string(in.step));
      if (!std::filesystem::exists(marker)) {
        std::ofstream{marker} << "failed once\n";
        throw Error("injected failure (fail_once_at_step)");
      }
    }
    if (in.has("prev")) {
      const int64_t prev = in.get<Number>("prev")->value;
      if (prev != total_)
        throw Error("prev carried " + std::to_string(prev) + ", the total is " + std::to_string(total_));
    } else if (in.step > 0 && in.step - 1 >= start_step_) {
      throw Error("prev is absent although step " + std::to_string(in.step - 1) + " ran");
    }
    total_ += in.get<Number>("in")->value;
    StepOutput out;
    out.ports["out"] = std::make_shared<Number>(total_);
    out.metrics["toy/total"] = static_cast<double>(total_);
    return out;
  }
  void save_state(const std::filesystem::path& dir) override { std::ofstream{dir / "total.txt"} << total_ << "\n"; }
  void load_state(const std::filesystem::path& dir) override {
    std::ifstream file(dir / "total.txt");
    if (!(file >> total_)) throw Error("no total in " + (dir / "total.txt").string());
  }

 private:
  int64_t fail_once_at_step_ = -1;
  std::string out_dir_;
  int64_t start_step_ = 0;
  int64_t total_ = 0;
};

dsl::KeySpec integer_key(const std::string& name, const std::string& doc) {
  dsl::KeySpec k;
  k.name = name;
  k.kind = dsl::ValueKind::integer;
  k.default_value = int64_t{-1};
  k.doc = doc;
  return k;
}

runtime::StageType type(const std::string& name, std::vector<dsl::PortSpec> inputs,
                        std::vector<dsl::PortSpec> outputs,
                        std::function<std::unique_ptr<runtime::Stage>()> make) {
  runtime::StageType t;
  t.schema.name = name;
  t.schema.doc = "test-only toy stage";
  t.schema.inputs = std::move(inputs);
  t.schema.outputs = std::move(outputs);
  t.make = std::move(make);
  return t;
}

}  // namespace

QERL_PLUGIN(registry) {
  registry.add(type("toy.source", {}, {number_port("out")}, [] { return std::make_unique<Source>(); }));
  auto square = type("toy.square", {number_port("in")}, {number_port("out")},
                     [] { return std::make_unique<Square>(); });
  square.schema.keys.push_back(integer_key("fail_at_step", "Throw at this step (-1 = never)."));
  square.schema.keys.push_back(integer_key("fail_in_setup", "1 = throw in setup."));
  square.schema.keys.push_back(integer_key("sleep_ms", "Sleep this long in each step (-1 = not)."));
  registry.add(std::move(square));
  dsl::PortSpec prev = number_port("prev");
  prev.optional = true;
  auto accumulate = type("toy.accumulate", {number_port("in"), prev}, {number_port("out")},
                         [] { return std::make_unique<Accumulate>(); });
  accumulate.schema.keys.push_back(integer_key(
      "fail_once_at_step", "Throw at this step unless an earlier run in the folder did (-1 = never)."));
  registry.add(std::move(accumulate));
  registry.add(type("toy.sink", {number_port("in")}, {}, [] { return std::make_unique<Sink>(); }));
  registry.add(type("toy.declared_only", {number_port("in")}, {}, {}));
}
