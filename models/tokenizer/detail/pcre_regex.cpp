// PCRE2 glue: compile once (with JIT when the platform has it), match with a
// per-call match-data block so that one Regex serves many threads. Limits on
// backtracking turn catastrophic patterns into an error; a JIT stack overflow
// falls back to the interpreter, which keeps its frames on the heap.
#include "models/tokenizer/detail/pcre_regex.hpp"

#include <pcre2.h>

#include "common/error.hpp"
#include "models/tokenizer/detail/onig_syntax.hpp"
#include "models/tokenizer/detail/utf8.hpp"

namespace qerl::models::detail {

namespace {

constexpr uint32_t match_limit = 10'000'000;  // backtracking steps per match
constexpr uint32_t depth_limit = 10'000;      // nested backtracking frames
constexpr size_t heap_limit_kib = 64 * 1024;  // interpreter frames

std::string pcre_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

// The pattern for an error line: control characters as '?', at most 120 bytes.
std::string shown(std::string_view pattern) {
  std::string out(pattern.substr(0, 120));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '?';
  }
  return pattern.size() > 120 ? out + "..." : out;
}

}  // namespace

struct Regex::Compiled {
  pcre2_code* code = nullptr;
  pcre2_match_context* context = nullptr;
  bool jit = false;
  std::string where;

  ~Compiled() {
    pcre2_match_context_free(context);
    pcre2_code_free(code);
  }

  // pcre2_match's return code; falls back to the interpreter on JIT stack overflow.
  int match(std::string_view text, size_t start, uint32_t options, pcre2_match_data* data) const {
    const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    int rc = pcre2_match(code, subject, text.size(), start, options, data, context);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
      rc = pcre2_match(code, subject, text.size(), start, options | PCRE2_NO_JIT, data, context);
    }
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
      throw Error(where + ": regex matching failed: " + pcre_message(rc));
    }
    return rc;
  }
};

Regex::Regex(std::string_view pattern, std::string where, bool literal) {
  auto compiled = std::make_shared<Compiled>();
  compiled->where = std::move(where);
  int error = 0;
  PCRE2_SIZE offset = 0;
  // PCRE2_LITERAL takes no UCP; escapes are rewritten to Oniguruma's meaning.
  const std::string source = literal ? std::string(pattern) : onig_to_pcre2(pattern);
  const uint32_t options = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP;
  compiled->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(), options, &error,
                                 &offset, nullptr);
  if (compiled->code == nullptr) {
    const std::string at_offset = source == pattern ? " at offset " + std::to_string(offset) : "";
    throw Error(compiled->where + ": invalid regex '" + shown(pattern) + "'" + at_offset + ": " +
                pcre_message(error));
  }
  compiled->jit = pcre2_jit_compile(compiled->code, PCRE2_JIT_COMPLETE) == 0;
  compiled->context = pcre2_match_context_create(nullptr);
  if (compiled->context == nullptr) throw Error(compiled->where + ": out of memory");
  pcre2_set_match_limit(compiled->context, match_limit);
  pcre2_set_depth_limit(compiled->context, depth_limit);
  pcre2_set_heap_limit(compiled->context, heap_limit_kib);
  compiled_ = std::move(compiled);
}

std::vector<RegexMatch> Regex::find_all(std::string_view text) const {
  std::vector<RegexMatch> matches;
  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> data(
      pcre2_match_data_create_from_pattern(compiled_->code, nullptr), pcre2_match_data_free);
  if (!data) throw Error(compiled_->where + ": out of memory");
  size_t pos = 0;
  while (pos <= text.size()) {
    if (compiled_->match(text, pos, PCRE2_NO_UTF_CHECK, data.get()) < 0) break;
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const size_t start = ovector[0], end = ovector[1];
    if (end <= start) {  // empty match (or \K trickery): step over one character
      if (start >= text.size()) break;
      pos = start + scan_utf8(text, start).length;
      continue;
    }
    matches.push_back({start, end});
    pos = end;
  }
  return matches;
}

bool Regex::matches_prefix(std::string_view text) const {
  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> data(
      pcre2_match_data_create_from_pattern(compiled_->code, nullptr), pcre2_match_data_free);
  if (!data) throw Error(compiled_->where + ": out of memory");
  return compiled_->match(text, 0, PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED, data.get()) >= 0;
}

}  // namespace qerl::models::detail
