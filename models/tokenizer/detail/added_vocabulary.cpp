// Added tokens: HF's id assignment on load, two byte tries (raw and
// normalized contents), and HF's find_matches: scan for the leftmost-longest
// token, drop it when single_word fails (or it is special and special tokens
// are not parsed), widen it over whitespace for lstrip/rstrip, and resume
// scanning after the raw match either way.
#include "models/tokenizer/detail/added_vocabulary.hpp"

#include <algorithm>
#include <cstdint>

#include "models/tokenizer/detail/utf8.hpp"

namespace qerl::models::detail {

namespace {

// Rust regex \w: Alphabetic, marks, decimal digits, connector punctuation, joiners.
constexpr const char* word_char_pattern = R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\x{200C}\x{200D}])";

// Unicode White_Space (Rust regex \s).
bool is_white_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

// Start of the character that ends at `end` (> 0) in valid UTF-8.
size_t previous_char_start(std::string_view text, size_t end) {
  size_t pos = end - 1;
  while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) --pos;
  return pos;
}

// Where the whitespace that text[..end] ends with starts.
size_t trailing_space_start(std::string_view text, size_t end) {
  while (end > 0) {
    size_t start = previous_char_start(text, end), at = start;
    if (!is_white_space(next_code_point(text, at))) break;
    end = start;
  }
  return end;
}

// Where the whitespace that text[pos..] starts with ends.
size_t leading_space_end(std::string_view text, size_t pos) {
  while (pos < text.size()) {
    size_t at = pos;
    if (!is_white_space(next_code_point(text, at))) break;
    pos = at;
  }
  return pos;
}

AddedToken read_token(const Json& entry, const JsonPath& at) {
  expect_object(entry, at);
  AddedToken token;
  token.content = expect_string(require_member(entry, "content", at), at / "content");
  if (const Json* id = find_member(entry, "id")) id_value(*id, at / "id");  // a hint only, as in HF
  token.special = bool_member(entry, "special", false, at);
  token.single_word = bool_member(entry, "single_word", false, at);
  token.lstrip = bool_member(entry, "lstrip", false, at);
  token.rstrip = bool_member(entry, "rstrip", false, at);
  token.normalized = bool_member(entry, "normalized", !token.special, at);
  return token;
}

bool same(const AddedToken& a, const AddedToken& b) {
  return a.content == b.content && a.single_word == b.single_word && a.lstrip == b.lstrip &&
         a.rstrip == b.rstrip && a.normalized == b.normalized && a.special == b.special;
}

}  // namespace

void AddedVocabulary::Trie::insert(std::string_view content, int32_t id) {
  int32_t node = 0;
  for (unsigned char byte : content) {
    auto& next = nodes[node].next;
    auto it = std::find_if(next.begin(), next.end(), [&](const auto& edge) { return edge.first == byte; });
    if (it == next.end()) {
      nodes.emplace_back();
      nodes[node].next.emplace_back(byte, static_cast<int32_t>(nodes.size() - 1));
      node = static_cast<int32_t>(nodes.size() - 1);
    } else {
      node = it->second;
    }
  }
  if (nodes[node].id < 0) nodes[node].id = id;  // the first of equal contents wins
}

std::pair<size_t, int32_t> AddedVocabulary::Trie::longest_at(std::string_view text, size_t pos) const {
  std::pair<size_t, int32_t> best{pos, -1};
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto& next = nodes[node].next;
    const unsigned char byte = static_cast<unsigned char>(text[i]);
    auto it = std::find_if(next.begin(), next.end(), [&](const auto& edge) { return edge.first == byte; });
    if (it == next.end()) break;
    node = it->second;
    if (nodes[node].id >= 0) best = {i + 1, nodes[node].id};
  }
  return best;
}

AddedVocabulary::AddedVocabulary(const Json& added_tokens, const JsonPath& at, const BpeModel& model,
                                 const Normalizer& normalizer)
    : word_char_(word_char_pattern, "tokenizer: word-character class") {
  if (!added_tokens.is_null()) {
    expect_array(added_tokens, at);
    for (size_t i = 0; i < added_tokens.size(); ++i) add(read_token(added_tokens[i], at[i]), model, at[i]);
  }
  for (const auto* list : {&order_special_, &order_other_}) {
    for (const AddedToken& token : *list) {
      const int32_t id = *token_to_id(token.content);
      if (token.normalized) {
        const std::string content = normalizer.apply(token.content);
        if (!content.empty()) normalized_trie_.insert(content, id);
      } else {
        raw_trie_.insert(token.content, id);
      }
    }
  }
}

void AddedVocabulary::add(const AddedToken& token, const BpeModel& model, const JsonPath& at) {
  if (token.special && !token.content.empty() && special_.insert(token.content).second) {
    order_special_.push_back(token);
  }
  if (token.content.empty()) return;
  std::optional<int32_t> id = token_to_id(token.content);
  if (id) {  // an identical definition is ignored, as in HF
    const auto existing = tokens_.find(*id);
    if (existing != tokens_.end() && same(existing->second, token)) return;
  }
  if (!id) id = model.token_to_id(token.content);
  if (!id) {  // the next free id, as HF counts it
    const int32_t model_size = static_cast<int32_t>(model.size());
    if (max_id_ == INT32_MAX) at.fail("token ids exhausted");
    id = max_id_ < 0 || (max_id_ < model_size && model_size != 0) ? model_size : max_id_ + 1;
  }
  ids_[token.content] = *id;
  tokens_[*id] = token;
  max_id_ = std::max(max_id_, *id);
  if (special_.count(token.content) == 0) order_other_.push_back(token);
}

std::optional<int32_t> AddedVocabulary::token_to_id(std::string_view content) const {
  const auto found = ids_.find(std::string(content));
  if (found == ids_.end()) return std::nullopt;
  return found->second;
}

const AddedToken* AddedVocabulary::token(int32_t id) const {
  const auto found = tokens_.find(id);
  return found == tokens_.end() ? nullptr : &found->second;
}

bool AddedVocabulary::is_word_char_before(std::string_view text, size_t end) const {
  const size_t start = previous_char_start(text, end);
  return word_char_.matches_prefix(text.substr(start, end - start));
}

bool AddedVocabulary::is_word_char_at(std::string_view text, size_t pos) const {
  return word_char_.matches_prefix(text.substr(pos, scan_utf8(text, pos).length));
}

std::vector<TextPiece> AddedVocabulary::split(std::string_view text, bool normalized_set,
                                              bool parse_special) const {
  const Trie& trie = normalized_set ? normalized_trie_ : raw_trie_;
  std::vector<TextPiece> pieces;
  const auto emit = [&](size_t start, size_t stop, int32_t id) {
    pieces.push_back({std::string(text.substr(start, stop - start)), id});
  };
  size_t start_offset = 0;
  size_t pos = 0;
  while (pos < text.size() && trie.nodes[0].next.size() > 0) {
    size_t start = pos;
    std::pair<size_t, int32_t> found{0, -1};
    for (; start < text.size(); ++start) {
      found = trie.longest_at(text, start);
      if (found.second >= 0) break;
    }
    if (found.second < 0) break;
    size_t stop = found.first;
    pos = stop;  // the scan resumes after the raw match, whatever happens below
    const AddedToken& token = tokens_.at(found.second);
    if (!parse_special && is_special(token.content)) continue;
    if (token.single_word) {
      const bool space_before = start == 0 || !is_word_char_before(text, start);
      const bool space_after = stop == text.size() || !is_word_char_at(text, stop);
      if (!space_before || !space_after) continue;
    }
    if (token.lstrip) start = std::max(trailing_space_start(text, start), start_offset);
    if (token.rstrip) stop = leading_space_end(text, stop);
    if (start_offset < start) emit(start_offset, start, -1);
    emit(start, stop, found.second);
    start_offset = stop;
  }
  if (start_offset < text.size()) emit(start_offset, text.size(), -1);
  return pieces;
}

}  // namespace qerl::models::detail
