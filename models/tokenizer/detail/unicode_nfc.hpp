// Unicode Normalization Form C (canonical decomposition, canonical ordering,
// canonical composition; UAX #15) for the tokenizer's NFC normalizer, as
// Qwen2/Qwen3 tokenizer.json files ask for. The tables come from Python's
// unicodedata (unicode_nfc_data.cpp), which Python's own NFC uses.
#pragma once

#include <string>
#include <string_view>

namespace qerl::models::detail {

// NFC of valid UTF-8 text. Text below U+0300 is returned unchanged at once.
std::string to_nfc(std::string_view text);

}  // namespace qerl::models::detail
