// NamePatterns follows compressed-tensors' ignore semantics: "re:" is
// Python's re.match (anchored at the start, not at the end), other entries
// are exact names; unmatched() lists the patterns that never matched and an
// invalid regex is a one-line qerl::Error naming it.
#include <doctest/doctest.h>

#include "common/error.hpp"
#include "common/name_pattern.hpp"

using qerl::NamePatterns;

TEST_CASE("re: patterns are anchored at the start only; plain entries are exact names") {
  NamePatterns p({"lm_head", "re:.*mlp\\.gate$", "re:model\\.layers\\.1\\.", "re:never.*"}, "quantization.ignore");
  CHECK(p.matches("lm_head"));
  CHECK_FALSE(p.matches("model.lm_head"));              // exact, not a substring
  CHECK(p.matches("model.layers.0.mlp.gate"));          // `$` written by the user
  CHECK_FALSE(p.matches("model.layers.0.mlp.gate_proj"));
  CHECK(p.matches("model.layers.1.self_attn.q_proj"));  // no implicit `$`: a prefix match
  CHECK_FALSE(p.matches("x.model.layers.1.q_proj"));    // anchored at the start
  CHECK(p.unmatched() == std::vector<std::string>{"re:never.*"});
}

TEST_CASE("an invalid regex names the context and the pattern") {
  CHECK_THROWS_WITH_AS(NamePatterns({"re:(unclosed"}, "aqn.targets"),
                       doctest::Contains("aqn.targets: invalid regex in pattern \"re:(unclosed\""), qerl::Error);
  CHECK(NamePatterns({}, "x").empty());
}
