// tokenizer.json's "post_processor", for add_special_tokens: the special
// ids a single sequence is wrapped in (Llama-3's TemplateProcessing adds
// <|begin_of_text|>; ByteLevel adds nothing). Pair templates are not used:
// qerl encodes one sequence at a time.
#pragma once

#include <cstdint>
#include <vector>

#include "models/tokenizer/detail/json_path.hpp"

namespace qerl::models::detail {

class PostProcessor {
 public:
  PostProcessor() = default;  // adds nothing
  PostProcessor(const Json& post_processor, const JsonPath& at);

  // ids of the sequence -> ids with the template's special tokens around them.
  std::vector<int32_t> apply(std::vector<int32_t> ids) const;

  // Every id the processor adds (the loader checks they are in the vocabulary).
  std::vector<int32_t> added_ids() const;

 private:
  void read(const Json& node, const JsonPath& at, int depth);
  void read_template(const Json& node, const JsonPath& at);

  // Each processor of a Sequence as (ids before, ids after) the sequence.
  std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> wraps_;
};

}  // namespace qerl::models::detail
