// Writing the char-level tokenizer.json with nlohmann_json; the alphabet
// comes from detail/byte_level so that it matches what encoding expects.
#include "models/tokenizer/char_level.hpp"

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "models/tokenizer/detail/byte_level.hpp"

namespace qerl::models {

std::string char_level_tokenizer_json(const std::vector<std::string>& special_tokens) {
  using Json = nlohmann::ordered_json;
  Json vocab = Json::object();
  for (int byte = 0; byte < 256; ++byte)
    vocab[detail::to_byte_level(std::string(1, static_cast<char>(byte)))] = byte;
  Json added = Json::array();
  for (size_t i = 0; i < special_tokens.size(); ++i) {
    if (special_tokens[i].empty()) throw Error("char_level_tokenizer_json: empty special token");
    added.push_back({{"id", 256 + i},
                     {"content", special_tokens[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  const Json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  const Json tokenizer = {{"version", "1.0"},
                          {"truncation", nullptr},
                          {"padding", nullptr},
                          {"added_tokens", added},
                          {"normalizer", nullptr},
                          {"pre_tokenizer", byte_level},
                          {"post_processor", nullptr},
                          {"decoder", byte_level},
                          {"model",
                           {{"type", "BPE"},
                            {"dropout", nullptr},
                            {"unk_token", nullptr},
                            {"continuing_subword_prefix", nullptr},
                            {"end_of_word_suffix", nullptr},
                            {"fuse_unk", false},
                            {"byte_fallback", false},
                            {"ignore_merges", false},
                            {"vocab", vocab},
                            {"merges", Json::array()}}}};
  return tokenizer.dump(2);
}

}  // namespace qerl::models
