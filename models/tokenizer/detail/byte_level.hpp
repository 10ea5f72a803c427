// GPT-2's byte-level alphabet: every byte 0..255 stands for one printable
// Unicode character (printable Latin-1 bytes for themselves, the others for
// U+0100 upward), so that BPE over text never sees a space or control byte.
// Used by the ByteLevel pre-tokenizer (bytes -> characters) and the ByteLevel
// decoder (characters -> bytes).
#pragma once

#include <string>
#include <string_view>

namespace qerl::models::detail {

// Each byte of `bytes` replaced by its alphabet character (UTF-8 encoded).
std::string to_byte_level(std::string_view bytes);

// Appends the bytes a token stands for, as HF's ByteLevel decoder does: when
// every character of the token is in the alphabet, the bytes they stand for;
// otherwise (e.g. an added token "你好") the token's own UTF-8 bytes.
void append_token_bytes(std::string& out, std::string_view token);

}  // namespace qerl::models::detail
