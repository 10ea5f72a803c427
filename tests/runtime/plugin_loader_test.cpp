// Plugins: a test plugin loads, registers its typed stage type and runs
// inside a small graph fed by stages of this binary (payload types shared
// across the two shared objects); broken plugins (missing file, not a shared
// object, no entry point, other ABI, duplicate type) fail with the path and
// the reason, and leave the registry unchanged.
#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>

#include <fstream>

#include "common/error.hpp"
#include "runtime/driver.hpp"
#include "runtime/graph.hpp"
#include "runtime/placement.hpp"
#include "runtime/plugin_api.hpp"
#include "runtime/plugin_loader.hpp"
#include "tests/runtime/plugins/text_payloads.hpp"
#include "tests/runtime/test_spec.hpp"

using namespace qerl;
using namespace qerl::runtime;
using namespace qerl::runtime::testing;
using testing_plugins::TextBatch;
using testing_plugins::TextScores;

namespace {

std::string error_of(const std::string& path, StageRegistry& registry) {
  try {
    load_plugin(path, registry);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Test source: two texts per step; test sink: records the scores it gets.
struct Texts : Stage {
  StepOutput run(const StepInput& in) override {
    StepOutput out;
    out.ports["texts"] = std::make_shared<TextBatch>(std::vector<std::string>{
        "The answer is #### " + std::to_string(in.step), "no marker, but an ANSWER"});
    return out;
  }
};
struct ScoreSink : Stage {
  explicit ScoreSink(std::vector<std::vector<double>>* seen) : seen_(seen) {}
  StepOutput run(const StepInput& in) override {
    seen_->push_back(in.get<TextScores>("scores")->scores);
    return {};
  }
  std::vector<std::vector<double>>* seen_;
};

}  // namespace

TEST_CASE("a plugin's typed stage type loads and scores texts that this binary's stages send it") {
  StageRegistry registry;
  load_plugin(QERL_TEXT_PLUGIN, registry);
  const StageType* type = registry.find("test.keyword_count");
  REQUIRE(type);
  CHECK(type->implemented());
  // The plugin's copy of TextBatch's type info names the same type as ours.
  REQUIRE(type->schema.inputs.at(0).payload_type.has_value());
  CHECK(*type->schema.inputs.at(0).payload_type == payload_type<TextBatch>());
  CHECK(*type->schema.outputs.at(0).payload_type == payload_type<TextScores>());
  CHECK(type->schema.inputs.at(0).type == "TextBatch");
  CHECK_NOTHROW(load_plugin(QERL_TEXT_PLUGIN, registry));  // a second load is a no-op
  CHECK(registry.plugins().size() == 1);

  std::vector<std::vector<double>> seen;
  registry.add(StageType{type_schema("test.texts", {}, {runtime::port<TextBatch>("texts", "")}),
                         [] { return std::make_unique<Texts>(); }});
  registry.add(StageType{type_schema("test.score_sink", {runtime::port<TextScores>("scores", "")}, {}),
                         [&] { return std::make_unique<ScoreSink>(&seen); }});
  dsl::PipelineSpec spec = pipeline({stage("texts", "test.texts"),
                                     stage("count", "test.keyword_count", {input("texts", "texts.texts")}),
                                     stage("sink", "test.score_sink", {input("scores", "count")})},
                                    /*steps=*/2);
  // The loader fills key defaults in real runs; here they are set by hand.
  spec.stages[1].options["keywords"] = std::vector<std::string>{"####", "answer"};

  const Graph graph = Graph::build(spec, registry);
  const Placement placement = place(spec, graph, registry, /*physical_gpus=*/0);
  RunOptions options;
  options.log_sinks = {std::make_shared<spdlog::sinks::null_sink_mt>()};
  options.no_progress_timeout_s = 60;
  const RunResult result = run_pipeline(spec, graph, placement, registry, options);
  REQUIRE_MESSAGE(result.ok, result.error);
  // "The answer is #### t": both keywords; "no marker, but an ANSWER": one of two.
  CHECK(seen == std::vector<std::vector<double>>{{1.0, 0.5}, {1.0, 0.5}});
}

TEST_CASE("plugin errors name the path and what went wrong, leaving the registry unchanged") {
  StageRegistry registry;
  const auto dir = fresh_temp_dir("plugins");

  SUBCASE("missing file") {
    const std::string path = (dir / "libmissing.so").string();
    CHECK(error_of(path, registry) == "plugin '" + path + "': no such file");
  }
  SUBCASE("not a shared object") {
    const std::string path = (dir / "libtext.so").string();
    std::ofstream(path) << "this is not an ELF file\n";
    const std::string e = error_of(path, registry);
    CHECK(contains(e, "plugin '" + path + "': cannot load it as a shared library: "));
  }
  SUBCASE("a shared object without the entry points") {
    const std::string e = error_of(QERL_NO_ENTRY_PLUGIN, registry);
    CHECK(contains(e, std::string("plugin '") + QERL_NO_ENTRY_PLUGIN + "': not a qerl plugin"));
    CHECK(contains(e, "QERL_PLUGIN"));
  }
  SUBCASE("built for another ABI version") {
    const std::string e = error_of(QERL_BAD_ABI_PLUGIN, registry);
    CHECK(e == std::string("plugin '") + QERL_BAD_ABI_PLUGIN +
                   "': built for plugin ABI version 999, but this qerl has version " +
                   std::to_string(plugin_abi_version) + "; rebuild the plugin against this qerl");
  }
  SUBCASE("a stage type that is already registered") {
    registry.add(StageType{type_schema("test.keyword_count", {}, {}), {}});
    const std::string e = error_of(QERL_TEXT_PLUGIN, registry);
    CHECK(contains(e, "stage type 'test.keyword_count' is already registered"));
    CHECK_FALSE(registry.find("test.keyword_count")->implemented());  // the old one stays
    CHECK(registry.plugins().empty());
    return;
  }
  CHECK(registry.names().empty());
  CHECK(registry.plugins().empty());
}
