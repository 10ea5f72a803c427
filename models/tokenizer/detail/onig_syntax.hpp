// HF compiles split patterns with Oniguruma; qerl with PCRE2. The two agree
// on everything the GPT-2 / Qwen2 / Llama-3 patterns use except the meaning
// of a few escapes, which this rewrites into explicit PCRE2 classes:
// \s (Oniguruma: no U+180E), \w (letters, marks, numbers, connectors), \h
// (Oniguruma: a hex digit), and their negations.
#pragma once

#include <string>
#include <string_view>

namespace qerl::models::detail {

std::string onig_to_pcre2(std::string_view pattern);

}  // namespace qerl::models::detail
