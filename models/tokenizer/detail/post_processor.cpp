// Reading post-processors into (before, after) id lists: TemplateProcessing's
// "single" template (SpecialToken pieces around the one Sequence piece, ids
// from its special_tokens map), Roberta/Bert's cls + sequence + sep, ByteLevel
// (ids unchanged), and Sequences of those, applied in order.
#include "models/tokenizer/detail/post_processor.hpp"

#include <string>

namespace qerl::models::detail {

namespace {

constexpr int max_depth = 8;  // nested Sequences

}  // namespace

PostProcessor::PostProcessor(const Json& post_processor, const JsonPath& at) {
  if (!post_processor.is_null()) read(post_processor, at, 0);
}

void PostProcessor::read(const Json& node, const JsonPath& at, int depth) {
  if (depth > max_depth) at.fail("Sequences nested deeper than " + std::to_string(max_depth));
  const std::string& type = expect_string(require_member(node, "type", at), at / "type");
  if (type == "ByteLevel") return;
  if (type == "Sequence") {
    const Json& steps = require_member(node, "processors", at);
    expect_array(steps, at / "processors");
    for (size_t i = 0; i < steps.size(); ++i) read(steps[i], (at / "processors")[i], depth + 1);
  } else if (type == "TemplateProcessing") {
    read_template(node, at);
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    const auto id_of = [&](const char* key) {  // "cls": ["<s>", 0]
      const Json& pair = require_member(node, key, at);
      if (!pair.is_array() || pair.size() != 2) (at / key).fail("expected [token, id]");
      return id_value(pair[1], (at / key)[1]);
    };
    wraps_.push_back({{id_of("cls")}, {id_of("sep")}});
  } else {
    (at / "type")
        .fail("unsupported post_processor '" + type +
              "' (supported: TemplateProcessing, ByteLevel, RobertaProcessing, BertProcessing, Sequence)");
  }
}

void PostProcessor::read_template(const Json& node, const JsonPath& at) {
  const Json& single = require_member(node, "single", at);
  expect_array(single, at / "single");
  const Json& specials = require_member(node, "special_tokens", at);
  expect_object(specials, at / "special_tokens");
  std::pair<std::vector<int32_t>, std::vector<int32_t>> wrap;
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const JsonPath where = (at / "single")[i];
    const Json& piece = single[i];
    if (const Json* special = find_member(piece, "SpecialToken")) {
      const std::string& name = expect_string(require_member(*special, "id", where / "SpecialToken"),
                                              where / "SpecialToken" / "id");
      const JsonPath entry_at = at / "special_tokens" / name;
      const auto entry = specials.find(name);
      if (entry == specials.end()) entry_at.fail("missing (named by " + where.path + ")");
      const Json& ids = require_member(*entry, "ids", entry_at);
      expect_array(ids, entry_at / "ids");
      auto& side = seen_sequence ? wrap.second : wrap.first;
      for (size_t k = 0; k < ids.size(); ++k) side.push_back(id_value(ids[k], (entry_at / "ids")[k]));
    } else if (find_member(piece, "Sequence") != nullptr) {
      if (seen_sequence) where.fail("a single-sequence template names a sequence twice");
      seen_sequence = true;
    } else {
      where.fail("expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    }
  }
  if (!seen_sequence) (at / "single").fail("the template has no Sequence piece");
  wraps_.push_back(std::move(wrap));
}

std::vector<int32_t> PostProcessor::added_ids() const {
  std::vector<int32_t> ids;
  for (const auto& [before, after] : wraps_) {
    ids.insert(ids.end(), before.begin(), before.end());
    ids.insert(ids.end(), after.begin(), after.end());
  }
  return ids;
}

std::vector<int32_t> PostProcessor::apply(std::vector<int32_t> ids) const {
  for (const auto& [before, after] : wraps_) {
    std::vector<int32_t> wrapped(before);
    wrapped.insert(wrapped.end(), ids.begin(), ids.end());
    wrapped.insert(wrapped.end(), after.begin(), after.end());
    ids = std::move(wrapped);
  }
  return ids;
}

}  // namespace qerl::models::detail
