// tokenizer.json's "added_tokens": special tokens (<|endoftext|>,
// <|im_start|>) and other added tokens, which are cut out of the text before
// normalization and pre-tokenization, leftmost-longest match first, honouring
// single_word / lstrip / rstrip / normalized as HF's AddedVocabulary does.
// Ids are assigned as HF does when it loads the file (the stored id is only a
// hint): the model's id for a token it knows, else the next free id.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "models/tokenizer/detail/bpe_model.hpp"
#include "models/tokenizer/detail/json_path.hpp"
#include "models/tokenizer/detail/normalizer.hpp"
#include "models/tokenizer/detail/pcre_regex.hpp"

namespace qerl::models::detail {

struct AddedToken {
  std::string content;
  bool single_word = false;  // only as a whole word (no \w on either side)
  bool lstrip = false;       // swallows the whitespace on its left
  bool rstrip = false;       // ... on its right
  bool normalized = true;    // matched in the normalized text
  bool special = false;      // skipped by decode(skip_special_tokens)
};

// A run of text, or (id >= 0) an added token cut out of it.
struct TextPiece {
  std::string text;
  int32_t id = -1;
};

class AddedVocabulary {
 public:
  AddedVocabulary(const Json& added_tokens, const JsonPath& at, const BpeModel& model,
                  const Normalizer& normalizer);

  // Cuts the tokens of one matching set out of `text`: the raw-text set
  // (normalized=false) or the normalized-text set. With parse_special false,
  // special tokens are left in the text (HF's encode_special_tokens).
  std::vector<TextPiece> split(std::string_view text, bool normalized_set, bool parse_special) const;

  std::optional<int32_t> token_to_id(std::string_view content) const;
  const AddedToken* token(int32_t id) const;  // nullptr: not an added token
  bool is_special(std::string_view content) const { return special_.count(std::string(content)) != 0; }
  int32_t max_id() const { return max_id_; }  // -1: none

 private:
  // A byte trie of token contents for leftmost-longest matching.
  struct Trie {
    struct Node {
      std::vector<std::pair<unsigned char, int32_t>> next;
      int32_t id = -1;  // a token ends here
    };
    std::vector<Node> nodes{Node{}};
    void insert(std::string_view content, int32_t id);
    // Longest token starting at text[pos]: (end, id), or id -1.
    std::pair<size_t, int32_t> longest_at(std::string_view text, size_t pos) const;
  };

  void add(const AddedToken& token, const BpeModel& model, const JsonPath& at);
  bool is_word_char_before(std::string_view text, size_t end) const;
  bool is_word_char_at(std::string_view text, size_t pos) const;

  std::unordered_map<std::string, int32_t> ids_;         // content -> id
  std::unordered_map<int32_t, AddedToken> tokens_;       // id -> latest definition
  std::vector<AddedToken> order_special_, order_other_;  // insertion order, as HF's lists
  std::unordered_set<std::string> special_;
  int32_t max_id_ = -1;
  Trie raw_trie_, normalized_trie_;
  Regex word_char_;  // Rust regex \w: one word character at the start
};

}  // namespace qerl::models::detail
