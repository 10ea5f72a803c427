// BPE: reading vocab and merges (both the "a b" string form and the [a, b]
// pair form), and HF's merge loop: a min-heap of candidate pairs by (rank,
// position) over a doubly linked list of symbols; stale heap entries (whose
// pair changed since they were pushed) are skipped when popped.
#include "models/tokenizer/detail/bpe_model.hpp"

#include <cstdio>
#include <queue>

#include "common/error.hpp"
#include "models/tokenizer/detail/utf8.hpp"

namespace qerl::models::detail {

namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return uint64_t{static_cast<uint32_t>(left)} << 32 | static_cast<uint32_t>(right);
}

struct Candidate {
  int32_t rank;
  size_t pos;  // index of the left symbol
  int32_t id;  // of the merged token
  bool operator>(const Candidate& other) const {
    return rank != other.rank ? rank > other.rank : pos > other.pos;
  }
};

}  // namespace

struct BpeModel::Symbol {
  int32_t id;
  std::ptrdiff_t prev, next;  // neighbours in the list; -1: none
  size_t length;              // bytes covered; 0: merged away
};

BpeModel::BpeModel(const Json& model, const JsonPath& at) {
  expect_object(model, at);
  if (const auto type = string_member(model, "type", at); type && *type != "BPE") {
    (at / "type").fail("unsupported model type '" + *type + "' (only BPE is supported)");
  }
  if (const Json* dropout = find_member(model, "dropout");
      dropout && !(dropout->is_number() && dropout->get<double>() == 0.0)) {
    (at / "dropout").fail("BPE dropout is not supported (it makes encoding random); set it to null");
  }
  origin_ = at.file;
  unk_token_ = string_member(model, "unk_token", at);
  continuing_subword_prefix_ = string_member(model, "continuing_subword_prefix", at).value_or("");
  end_of_word_suffix_ = string_member(model, "end_of_word_suffix", at).value_or("");
  fuse_unk_ = bool_member(model, "fuse_unk", false, at);
  byte_fallback_ = bool_member(model, "byte_fallback", false, at);
  ignore_merges_ = bool_member(model, "ignore_merges", false, at);

  const Json& vocab = require_member(model, "vocab", at);
  expect_object(vocab, at / "vocab");
  vocab_.reserve(vocab.size());
  tokens_.reserve(vocab.size());
  for (const auto& [token, id_json] : vocab.items()) {
    const int32_t id = id_value(id_json, at / "vocab" / token);
    vocab_[token] = id;
    tokens_[id] = token;
    max_id_ = std::max(max_id_, id);
  }
  read_merges(require_member(model, "merges", at), at / "merges");
}

void BpeModel::read_merges(const Json& merges, const JsonPath& at) {
  expect_array(merges, at);
  merges_.reserve(merges.size());
  const auto lookup = [&](const std::string& token, const JsonPath& where) {
    const auto found = vocab_.find(token);
    if (found == vocab_.end()) where.fail("token '" + token + "' is not in model.vocab");
    return found->second;
  };
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const JsonPath where = at[rank];
    const Json& merge = merges[rank];
    std::string left, right;
    if (merge.is_string()) {  // legacy "a b": exactly one space
      const std::string& text = merge.get_ref<const std::string&>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        where.fail("expected two tokens separated by one space, got '" + text + "'");
      }
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2) {
      left = expect_string(merge[0], where[0]);
      right = expect_string(merge[1], where[1]);
    } else {
      where.fail(std::string("expected \"a b\" or [\"a\", \"b\"], got ") + json_type_name(merge));
    }
    const int32_t left_id = lookup(left, where);
    const int32_t right_id = lookup(right, where);
    // As HF: the merged token is left + right minus as many bytes as the prefix has.
    const size_t prefix = continuing_subword_prefix_.size();
    if (right.size() < prefix) where.fail("token '" + right + "' is shorter than continuing_subword_prefix");
    const int32_t merged_id = lookup(left + right.substr(prefix), where);
    merges_[pair_key(left_id, right_id)] = {static_cast<int32_t>(rank), merged_id};  // later wins, as HF
  }
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  const auto found = vocab_.find(std::string(token));
  if (found == vocab_.end()) return std::nullopt;
  return found->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  const auto found = tokens_.find(id);
  return found == tokens_.end() ? nullptr : &found->second;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const auto whole = token_to_id(word)) {
      ids.push_back(*whole);
      return;
    }
  }
  const bool cacheable = word.size() <= max_cached_word;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (const auto hit = cache_.find(std::string(word)); hit != cache_.end()) {
      ids.insert(ids.end(), hit->second.begin(), hit->second.end());
      return;
    }
  }
  std::vector<int32_t> merged = merge_word(word);
  ids.insert(ids.end(), merged.begin(), merged.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() < cache_capacity) cache_.emplace(std::string(word), std::move(merged));
  }
}

std::vector<int32_t> BpeModel::merge_word(std::string_view word) const {
  // Initial symbols: one per character (with prefix/suffix decorations), or
  // its <0xXX> byte tokens, or the unknown token, or nothing (as HF).
  std::vector<Symbol> symbols;
  struct {
    int32_t id = -1;  // -1: none pending
    size_t length = 0;
  } unk;  // an unknown-token symbol not yet added (HF adds it lazily)
  const auto add = [&](int32_t id, size_t length) {
    const std::ptrdiff_t index = static_cast<std::ptrdiff_t>(symbols.size());
    symbols.push_back({id, index - 1, -1, length});
    if (index > 0) symbols[index - 1].next = index;
  };
  const auto flush_unk = [&] {
    if (unk.id >= 0) add(unk.id, unk.length);
    unk.id = -1;
  };
  for (size_t pos = 0; pos < word.size();) {
    const size_t length = scan_utf8(word, pos).length;
    std::string piece(word.substr(pos, length));
    if (pos != 0) piece = continuing_subword_prefix_ + piece;
    if (pos + length == word.size()) piece += end_of_word_suffix_;
    pos += length;
    if (const auto id = token_to_id(piece)) {
      flush_unk();
      add(*id, length);
      continue;
    }
    if (byte_fallback_) {
      std::vector<int32_t> bytes;
      for (unsigned char b : piece) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        const auto id = token_to_id(name);
        if (!id) break;
        bytes.push_back(*id);
      }
      if (bytes.size() == piece.size()) {
        for (int32_t id : bytes) add(id, 1);
        continue;
      }
    }
    if (!unk_token_) continue;  // HF drops the character
    const auto unk_id = token_to_id(*unk_token_);
    if (!unk_id) throw Error(origin_ + ": model.unk_token '" + *unk_token_ + "' is not in model.vocab");
    if (unk.id >= 0 && fuse_unk_) {
      unk.length += length;
    } else {
      flush_unk();
      unk.id = *unk_id;
      unk.length = length;
    }
  }
  flush_unk();

  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  const auto push_pair = [&](size_t left) {
    const auto right = symbols[left].next;
    if (right < 0) return;
    const auto found = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (found != merges_.end()) queue.push({found->second.rank, left, found->second.id});
  };
  for (size_t i = 0; i + 1 < symbols.size(); ++i) push_pair(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.length == 0 || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    const auto current = merges_.find(pair_key(left.id, right.id));
    if (current == merges_.end() || current->second.id != top.id) continue;  // stale entry
    left.id = top.id;
    left.length += right.length;
    left.next = right.next;
    right.length = 0;
    if (left.next >= 0) symbols[left.next].prev = static_cast<std::ptrdiff_t>(top.pos);
    if (left.prev >= 0) push_pair(static_cast<size_t>(left.prev));
    push_pair(top.pos);
  }
  std::vector<int32_t> ids;
  for (const Symbol& s : symbols) {
    if (s.length != 0) ids.push_back(s.id);
  }
  return ids;
}

}  // namespace qerl::models::detail
