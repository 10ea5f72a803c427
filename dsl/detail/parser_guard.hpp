// Guard against a toml++ 3.3.0 bug (marzer/tomlplusplus#190, #295; fixed
// upstream after 3.3.0): is_non_ascii_horizontal_whitespace() reaches
// TOML_UNREACHABLE (undefined behaviour) for code points such as U+00E9 or
// U+3001 when the parser asks "is this whitespace?", which it does outside
// strings and comments, and in multi-line basic strings right after a
// backslash. find_parser_hazards() finds every such code point so the
// loader never hands one to toml++ (its parser looks ahead, so neutralizing
// only the first is not enough). Private to dsl/.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qerl::dsl::detail {

struct ParserHazard {
  size_t offset = 0;  // byte offset of the code point
  size_t length = 0;  // its UTF-8 length in bytes
  int line = 0;       // 1-based, as toml++ counts
  int column = 0;     // 1-based, in code points, as toml++ counts
  char32_t code_point = 0;
  bool in_string = false;  // after a backslash in a multi-line string (valid TOML)
};

// All hazards in text order (empty = safe to parse as is).
std::vector<ParserHazard> find_parser_hazards(std::string_view text);

// What toml++ 3.3.0's is_non_ascii_horizontal_whitespace would do with c:
// true = reach its TOML_UNREACHABLE. Mirrors that function's lookup exactly.
bool hits_toml_unreachable(char32_t c);

}  // namespace qerl::dsl::detail
