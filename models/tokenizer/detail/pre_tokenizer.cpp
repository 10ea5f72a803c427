// Pre-tokenization as HF runs it: each step maps every current word to
// words. A split first labels the text as alternating delimiter / other
// segments, then the behaviour decides which segments are dropped or glued
// to a neighbour; empty words are dropped. ByteLevel optionally prepends a
// space, splits with GPT-2's regex, and spells the bytes in its alphabet.
#include "models/tokenizer/detail/pre_tokenizer.hpp"

#include <algorithm>

#include "models/tokenizer/detail/byte_level.hpp"

namespace qerl::models::detail {

namespace {

constexpr int max_depth = 8;  // nested Sequences
constexpr const char* gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Segment {
  size_t start, end;
  bool flag;  // before the behaviour: is a delimiter; after: is removed
};

}  // namespace

PreTokenizer::PreTokenizer(const Json& pre_tokenizer, const JsonPath& at) {
  if (!pre_tokenizer.is_null()) read(pre_tokenizer, at, 0);
}

void PreTokenizer::read(const Json& node, const JsonPath& at, int depth) {
  if (depth > max_depth) at.fail("Sequences nested deeper than " + std::to_string(max_depth));
  const std::string& type = expect_string(require_member(node, "type", at), at / "type");
  Step step;
  if (type == "Sequence") {
    const Json& steps = require_member(node, "pretokenizers", at);
    expect_array(steps, at / "pretokenizers");
    for (size_t i = 0; i < steps.size(); ++i) read(steps[i], (at / "pretokenizers")[i], depth + 1);
    return;
  }
  if (type == "ByteLevel") {
    step.byte_level = true;
    step.add_prefix_space = bool_member(node, "add_prefix_space", true, at);
    if (bool_member(node, "use_regex", true, at)) step.regex.emplace(gpt2_pattern, at.file + ": " + at.path);
  } else if (type == "Split") {
    const Json& pattern = require_member(node, "pattern", at);
    expect_object(pattern, at / "pattern");
    if (const Json* regex = find_member(pattern, "Regex")) {
      step.regex.emplace(expect_string(*regex, at / "pattern" / "Regex"),
                         at.file + ": " + (at / "pattern").path);
    } else if (const Json* literal = find_member(pattern, "String")) {
      step.regex.emplace(expect_string(*literal, at / "pattern" / "String"),
                         at.file + ": " + (at / "pattern").path,
                         /*literal=*/true);
    } else {
      (at / "pattern").fail("expected {\"Regex\": ...} or {\"String\": ...}");
    }
    const std::string& behavior = expect_string(require_member(node, "behavior", at), at / "behavior");
    static const std::pair<const char*, Behavior> behaviors[] = {
        {"Removed", Behavior::removed},
        {"Isolated", Behavior::isolated},
        {"MergedWithPrevious", Behavior::merged_with_previous},
        {"MergedWithNext", Behavior::merged_with_next},
        {"Contiguous", Behavior::contiguous}};
    const auto* found = std::find_if(std::begin(behaviors), std::end(behaviors),
                                     [&](const auto& b) { return behavior == b.first; });
    if (found == std::end(behaviors)) (at / "behavior").fail("unknown split behavior '" + behavior + "'");
    step.behavior = found->second;
    step.invert = bool_member(node, "invert", false, at);
  } else {
    (at / "type").fail("unsupported pre_tokenizer '" + type + "' (supported: ByteLevel, Split, Sequence)");
  }
  steps_.push_back(std::move(step));
}

std::vector<std::string> PreTokenizer::split(std::string_view piece) const {
  std::vector<std::string> words;
  if (piece.empty()) return words;
  words.emplace_back(piece);
  for (const Step& step : steps_) {
    std::vector<std::string> next;
    for (const std::string& word : words) {
      for (std::string& part : apply(step, word)) next.push_back(std::move(part));
    }
    words = std::move(next);
  }
  return words;
}

std::vector<std::string> PreTokenizer::apply(const Step& step, std::string_view piece) {
  std::string prefixed;
  if (step.byte_level && step.add_prefix_space && piece.front() != ' ') {
    prefixed = " " + std::string(piece);
    piece = prefixed;
  }
  std::vector<Segment> segments;
  if (step.regex) {
    size_t previous = 0;
    for (const RegexMatch& m : step.regex->find_all(piece)) {
      if (previous < m.start) segments.push_back({previous, m.start, step.invert});
      segments.push_back({m.start, m.end, !step.invert});
      previous = m.end;
    }
    if (previous < piece.size()) segments.push_back({previous, piece.size(), step.invert});
  } else {
    segments.push_back({0, piece.size(), false});
  }

  // Behaviour: from "is a delimiter" to "is removed", gluing as asked.
  std::vector<Segment> kept;
  bool previous_match = false;
  switch (step.behavior) {
    case Behavior::isolated:
      for (const Segment& s : segments) kept.push_back({s.start, s.end, false});
      break;
    case Behavior::removed: kept = segments; break;
    case Behavior::contiguous:
      for (const Segment& s : segments) {
        const bool glue = s.flag == previous_match && !kept.empty();  // adjacent delimiters
        if (glue) kept.back().end = s.end;
        if (!glue) kept.push_back({s.start, s.end, false});
        previous_match = s.flag;
      }
      break;
    case Behavior::merged_with_previous:
      for (const Segment& s : segments) {
        const bool glue = s.flag && !previous_match && !kept.empty();  // onto the previous piece
        if (glue) kept.back().end = s.end;
        if (!glue) kept.push_back({s.start, s.end, false});
        previous_match = s.flag;
      }
      break;
    case Behavior::merged_with_next:
      for (auto s = segments.rbegin(); s != segments.rend(); ++s) {
        const bool glue = s->flag && !previous_match && !kept.empty();  // onto the next piece
        if (glue) kept.back().start = s->start;
        if (!glue) kept.push_back({s->start, s->end, false});
        previous_match = s->flag;
      }
      std::reverse(kept.begin(), kept.end());
      break;
  }
  std::vector<std::string> words;
  for (const Segment& s : kept) {
    if (s.flag || s.end <= s.start) continue;
    const std::string_view word = piece.substr(s.start, s.end - s.start);
    words.push_back(step.byte_level ? to_byte_level(word) : std::string(word));
  }
  return words;
}

}  // namespace qerl::models::detail
