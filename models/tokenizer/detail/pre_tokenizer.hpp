// tokenizer.json's "pre_tokenizer": how a piece of text is cut into words
// before BPE. Supported: ByteLevel (GPT-2 split regex, add_prefix_space,
// use_regex), Split (regex or literal pattern, the five delimiter behaviours,
// invert) and Sequences of them, as in GPT-2, Qwen2/Qwen3 and Llama-3.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/tokenizer/detail/json_path.hpp"
#include "models/tokenizer/detail/pcre_regex.hpp"

namespace qerl::models::detail {

class PreTokenizer {
 public:
  PreTokenizer() = default;  // no pre-tokenizer: a piece is one word
  PreTokenizer(const Json& pre_tokenizer, const JsonPath& at);

  // The non-empty words of `piece` (valid UTF-8), in order; after a ByteLevel
  // step the words are spelled in the byte-level alphabet.
  std::vector<std::string> split(std::string_view piece) const;

 private:
  enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };
  struct Step {
    bool byte_level = false;     // else a Split
    std::optional<Regex> regex;  // ByteLevel: only with use_regex
    Behavior behavior = Behavior::isolated;
    bool invert = false;
    bool add_prefix_space = false;  // ByteLevel only
  };

  void read(const Json& pre_tokenizer, const JsonPath& at, int depth);
  static std::vector<std::string> apply(const Step& step, std::string_view piece);

  std::vector<Step> steps_;  // Sequences flattened
};

}  // namespace qerl::models::detail
