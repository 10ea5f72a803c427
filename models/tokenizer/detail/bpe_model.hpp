// The BPE model of a tokenizer.json ("model": {"type": "BPE", ...}): vocab,
// merges by rank, and how one pre-tokenized word becomes ids. Merges are
// applied lowest rank first, leftmost first among equals, exactly as HF's
// Word::merge_all; results are cached per word. An empty merges list gives a
// character-level vocabulary (the tiny model's tokenizer).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "models/tokenizer/detail/json_path.hpp"

namespace qerl::models::detail {

class BpeModel {
 public:
  // `model` is tokenizer.json's "model" object (type BPE or absent).
  BpeModel(const Json& model, const JsonPath& at);

  // Appends the ids of one word (pre-tokenized, non-empty).
  void tokenize(std::string_view word, std::vector<int32_t>& ids) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;  // nullptr: no such id
  size_t size() const { return vocab_.size(); }      // HF's model vocab size
  int32_t max_id() const { return max_id_; }         // -1 for an empty vocab

 private:
  struct Symbol;
  std::vector<int32_t> merge_word(std::string_view word) const;
  void read_merges(const Json& merges, const JsonPath& at);

  struct MergeTarget {
    int32_t rank;
    int32_t id;  // of the merged token
  };
  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<int32_t, std::string> tokens_;
  std::unordered_map<uint64_t, MergeTarget> merges_;  // (left id << 32 | right id)
  int32_t max_id_ = -1;
  std::string origin_;  // the file, for errors at encode time
  std::optional<std::string> unk_token_;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;

  static constexpr size_t cache_capacity = 10'000;  // words, as HF's default
  static constexpr size_t max_cached_word = 256;    // bytes
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace qerl::models::detail
