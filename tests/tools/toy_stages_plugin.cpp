// Test-only plugin (not shipped): tiny stages that let the qerl-run tests
// drive a real run end to end — a counting source, a squaring stage with a
// metric, a sink that checks what arrives, a stage that throws at a chosen
// step, and a type that is declared but has no implementation.
#include <cmath>

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

// Squares its input; reports it as a metric; throws at `fail_at_step` (-1 = never).
class Square : public runtime::Stage {
 public:
  void setup(const runtime::StageContext& ctx) override {
    fail_at_step_ = ctx.stage->option<int64_t>("fail_at_step");
  }
  StepOutput run(const StepInput& in) override {
    if (in.step == fail_at_step_) throw Error("injected failure (fail_at_step)");
    const int64_t v = in.get<Number>("in")->value;
    StepOutput out;
    out.ports["out"] = std::make_shared<Number>(v * v);
    out.metrics["toy/square"] = static_cast<double>(v * v);
    return out;
  }

 private:
  int64_t fail_at_step_ = -1;
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
  dsl::KeySpec fail_at;
  fail_at.name = "fail_at_step";
  fail_at.kind = dsl::ValueKind::integer;
  fail_at.default_value = int64_t{-1};
  fail_at.doc = "Throw at this step (-1 = never).";
  square.schema.keys.push_back(fail_at);
  registry.add(std::move(square));
  registry.add(type("toy.sink", {number_port("in")}, {}, [] { return std::make_unique<Sink>(); }));
  registry.add(type("toy.declared_only", {number_port("in")}, {}, {}));
}
