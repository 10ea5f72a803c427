// The tiny model's tokenizer as an HF tokenizer.json: a character-level
// vocabulary over GPT-2's byte alphabet (BPE without merges; token id = byte
// value, so any UTF-8 text encodes), ByteLevel pre-tokenizer and decoder,
// and the given special tokens after the bytes (ids 256, 257, ...). HF
// `tokenizers` loads the file as is; tests check it encodes as HF does.
#pragma once

#include <string>
#include <vector>

namespace qerl::models {

// tokenizer.json text; special_tokens e.g. {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}.
std::string char_level_tokenizer_json(const std::vector<std::string>& special_tokens);

}  // namespace qerl::models
