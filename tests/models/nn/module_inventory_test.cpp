// module_inventory (the memory plan's view of a model) against the modules
// and parameters a built CausalLM registers: the same names in the same
// order, the same shapes, for every architecture and flag that changes them.
#include <doctest/doctest.h>

#include <map>

#include "models/nn/linear.hpp"
#include "models/nn/module_inventory.hpp"
#include "models/nn/rms_norm.hpp"
#include "tiny_model.hpp"

using namespace qerl::models;
using namespace qerl::models::testing;
using nlohmann::json;

TEST_CASE("module_inventory names every parameter-holding module of a CausalLM, in order, with its shapes") {
  for (const json& c : config_variants()) {
    CAPTURE(c.dump());
    const ModelConfig config = parse_model_config(c);
    CausalLM lm(config);
    // The built model's own view: modules with parameters of their own, in named_modules order.
    std::vector<std::pair<std::string, std::map<std::string, std::vector<int64_t>>>> built;
    for (const auto& item : lm->named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
      const auto own = item.value()->named_parameters(/*recurse=*/false);
      if (own.is_empty()) continue;
      std::map<std::string, std::vector<int64_t>> shapes;
      for (const auto& p : own) shapes[p.key()] = p.value().sizes().vec();
      built.emplace_back(item.key(), shapes);
    }
    const auto inventory = module_inventory(config);
    REQUIRE(inventory.size() == built.size());
    int64_t numel = 0;
    for (size_t i = 0; i < inventory.size(); ++i) {
      const ModuleShape& m = inventory[i];
      CAPTURE(m.name);
      CHECK(m.name == built[i].first);
      const auto& shapes = built[i].second;
      std::vector<int64_t> weight;
      if (m.kind == ModuleKind::rms_norm) weight = {m.in_features};
      else if (m.kind == ModuleKind::embedding) weight = {m.out_features, m.in_features};
      else weight = {m.out_features, m.in_features};
      REQUIRE(shapes.count("weight"));
      CHECK(shapes.at("weight") == weight);
      CHECK(shapes.count("bias") == (m.bias ? 1u : 0u));
      if (m.bias) CHECK(shapes.at("bias") == std::vector<int64_t>{m.out_features});
      const bool linear = lm->named_modules()[m.name]->as<LinearImpl>() != nullptr;
      CHECK(linear == (m.kind == ModuleKind::linear));
      numel += m.parameter_numel();
    }
    int64_t parameters = 0;
    for (const auto& p : lm->parameters()) parameters += p.numel();
    CHECK(numel == parameters);
  }
}
