// Reading the normalizer: Sequences flatten (NFC twice is NFC once); depth
// is bounded so that a hostile file cannot recurse without end.
#include "models/tokenizer/detail/normalizer.hpp"

#include "models/tokenizer/detail/unicode_nfc.hpp"

namespace qerl::models::detail {

namespace {

constexpr int max_depth = 8;  // nested Sequences

}  // namespace

Normalizer::Normalizer(const Json& normalizer, const JsonPath& at) {
  if (!normalizer.is_null()) read(normalizer, at, 0);
}

void Normalizer::read(const Json& normalizer, const JsonPath& at, int depth) {
  if (depth > max_depth) at.fail("Sequences nested deeper than " + std::to_string(max_depth));
  const std::string& type = expect_string(require_member(normalizer, "type", at), at / "type");
  if (type == "NFC") {
    nfc_ = true;
  } else if (type == "Sequence") {
    const Json& steps = require_member(normalizer, "normalizers", at);
    expect_array(steps, at / "normalizers");
    for (size_t i = 0; i < steps.size(); ++i) read(steps[i], (at / "normalizers")[i], depth + 1);
  } else {
    (at / "type").fail("unsupported normalizer '" + type + "' (supported: NFC, Sequence)");
  }
}

std::string Normalizer::apply(std::string_view text) const { return nfc_ ? to_nfc(text) : std::string(text); }

}  // namespace qerl::models::detail
