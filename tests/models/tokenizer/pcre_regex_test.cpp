// Split patterns mean what they mean in HF's Oniguruma: \s is Unicode
// White_Space without U+180E (PCRE2's own \s includes it), \w covers marks,
// \h is a hex digit; literal patterns match only themselves; empty matches
// are skipped; a catastrophic pattern fails with qerl::Error, not a hang.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/error.hpp"
#include "models/tokenizer/detail/onig_syntax.hpp"
#include "models/tokenizer/detail/pcre_regex.hpp"

using namespace qerl::models::detail;

namespace {

std::vector<std::string> matches(const Regex& re, const std::string& text) {
  std::vector<std::string> out;
  for (const RegexMatch& m : re.find_all(text)) out.push_back(text.substr(m.start, m.end - m.start));
  return out;
}

}  // namespace

TEST_CASE("\\s, \\w and \\h follow Oniguruma, inside and outside classes") {
  const Regex space(R"(\s+)", "test");
  CHECK(matches(space, "a\xC2\x85" "b\xE3\x80\x80" "c\xE1\xA0\x8E" "d") ==
        std::vector<std::string>{"\xC2\x85", "\xE3\x80\x80"});  // NEL, ideographic space; not U+180E
  const Regex not_space(R"([^\s\p{L}]+)", "test");
  CHECK(matches(not_space, "a1\xE3\x80\x80\xE1\xA0\x8E" "2") == std::vector<std::string>{"1", "\xE1\xA0\x8E" "2"});
  const Regex word(R"(\w+)", "test");
  CHECK(matches(word, "e\xCC\x81_x-y") == std::vector<std::string>{"e\xCC\x81_x", "y"});
  const Regex hex(R"(\h+)", "test");
  CHECK(matches(hex, "0x1f zz") == std::vector<std::string>{"0", "1f"});
  CHECK(onig_to_pcre2(R"(\\s[\]\s]\Q\s\E[[:alpha:]\S])") ==
        std::string(R"(\\s[\]\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}])") +
            R"(\Q\s\E[[:alpha:]\S])");
}

TEST_CASE("literal patterns match only their text and empty matches are skipped") {
  const Regex literal("a.b", "test", /*literal=*/true);
  CHECK(matches(literal, "axb a.b") == std::vector<std::string>{"a.b"});
  const Regex maybe_x("x*", "test");
  CHECK(matches(maybe_x, "axxbx") == std::vector<std::string>{"xx", "x"});
}

TEST_CASE("invalid and catastrophic patterns fail with qerl::Error") {
  CHECK_THROWS_WITH_AS(Regex("(a", "file.json: pre_tokenizer.pattern"),
                       doctest::Contains("file.json: pre_tokenizer.pattern: invalid regex '(a'"), qerl::Error);
  const Regex catastrophic("(a+)+$", "test");
  CHECK_THROWS_AS(catastrophic.find_all(std::string(64, 'a') + "!"), qerl::Error);
}
