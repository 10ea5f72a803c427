#!/usr/bin/env python3
# Peer-parity oracle for qerl's tokenizer: trains small byte-level BPE
# tokenizers with HF `tokenizers` (GPT-2, Qwen2 and Llama-3 style, split
# variants, a char-level vocab, unk / byte-fallback models), saves each
# tokenizer.json, and writes HF's encodings and decodings of a test corpus to
# parity.json; plus unicode.json, Python's NFC and lossy UTF-8 decoding of
# tricky inputs, the reference for the Unicode helpers.
# Usage: make_parity_data.py OUT_DIR   (deterministic, seeded)
#        make_parity_data.py --fuzz-seeds OUT_DIR   (the same tokenizers, tiny
#        vocabularies, compact JSON under 8 KiB: seeds for fuzz_tokenizer)
import json
import os
import random
import sys
import unicodedata

import tokenizers
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors,
                        trainers)

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")

WORDS = ("the of and to in is that it was for on are with as his they be at one have this from or had by hot "
         "word but what some we can out other were all there when up use your how said an each she which do "
         "their time if will way about many then them write would like so these her long make thing see him "
         "two has look more day could go come did number sound no most people my over know water than call "
         "first who may down side been now find any new work part take get place made live where after back "
         "I'm you're we've they'll she'd it's don't can't WON'T He'S café naïve résumé Ångström façade "
         "def return import class self None True False print len range int str x_1 foo_bar").split()
SCRIPTS = ["你好世界我们是中文的测试", "こんにちは世界カタカナ", "한국어텍스트입니다", "Привет мир как дела",
           "Γειά σου κόσμε", "مرحبا بالعالم", "שלום עולם", "हिन्दी भाषा", "ภาษาไทย", "Tiếng Việt có dấu"]
EMOJI = ["😀", "👨‍👩‍👧‍👦", "👍🏽", "🇯🇵", "❤️", "🤖", "✨"]
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\n\n", "   \n", "\u00a0", "\u3000", "\u2003"]


def training_corpus(rng):
    lines = []
    for _ in range(4000):
        parts = []
        for _ in range(rng.randint(3, 18)):
            r = rng.random()
            if r < 0.7:
                parts.append(rng.choice(WORDS))
            elif r < 0.8:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 9))))
            elif r < 0.9:
                s = rng.choice(SCRIPTS)
                i = rng.randrange(len(s))
                parts.append(s[i:i + rng.randint(1, 6)])
            elif r < 0.95:
                parts.append(rng.choice(EMOJI))
            else:
                parts.append(rng.choice([",", ".", "!", "?", "(", ")", "{", "}", ":", ";", "==", "->", "#"]))
        lines.append("".join(p + rng.choice([" ", " ", " ", "", "\n", "  ", "\t"]) for p in parts))
    return lines


FIXED_LINES = [
    "", " ", "  ", "\t", "\n", "\r\n", "\n\n\n", "   \n  \n", "a", "Hello, world!", "hello world  ",
    "  leading and trailing spaces  ", "I'm sure you're right, they'll see it's fine; we've won. He'd go.",
    "DON'T SHOUT, IT'S LOUD'LL 'S 'T 'Re 'VE", "I\u017f a long s", "3141592653589793238462643383279502884197",
    "1234567890 12 123 1234 12345", "abc123def 4.5e-10 0x1F", "tab\tseparated\tvalues", "\t\tindented",
    "line one\nline two\r\nline three\n", "a  b   c    d", "end with newline\n", "spaces before newline   \n",
    "def f(x):\n    return x ** 2  # square\n", '{"key": [1, 2, 3], "nested": {"a": null}}',
    "x^2 + y^2 = z^2, ∑_{i=1}^{n} i = n(n+1)/2", "café naïve résumé Ångström façade",
    "cafe\u0301 (decomposed) A\u030angstro\u0308m", "\u212b angstrom sign, \u2126 ohm sign",
    "e\u0301\u0323 ordering \u1e0b\u0323 q\u0307\u0323", "\u1100\u1161\u11a8 jamo, \u1100\u1161 LV", "\u0958 excluded",
    "Tiếng Việt có dấu", "你好，世界！", "こんにちは世界", "한국어 텍스트", "Привет, мир!", "Γειά σου κόσμε",
    "مرحبا بالعالم", "שלום עולם", "हिन्दी भाषा", "ภาษาไทย", "😀😀😀", "family 👨‍👩‍👧‍👦 emoji",
    "thumbs 👍🏽 flag 🇯🇵 heart ❤️", "nbsp\u00a0here ideographic\u3000space em\u2003space",
    "nel\u0085next ls\u2028ps\u2029", "zero\u200bwidth bom\ufeff mongolian\u180evowel", "<|endoftext|>",
    "text<|endoftext|>more text", "a<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_start|>", "<|im_sta", "<|endoftext|", "<|begin_of_text|>hello<|eot_id|>",
    "special <|endoftext|> with spaces <|im_end|> around", "héllo world", "sw asw sw. _sw 1sw swé",
    "x  LS y", "x RS  y", "<<user>> says", "a\u0000b control\u0001chars\u007f",
]


def random_lines(rng, count):
    pool = (list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
            + list(" \t\n\r.,;:!?'\"()[]{}<>|-_") + list("éèüßñçÅøæœ") + ["\u0301", "\u0308", "\u0323"]
            + list("你好世界中文") + list("こんにちは") + list("한국어") + list("Привет") + EMOJI
            + ["<|endoftext|>", "<|im_start|>", "'s", "'ll", "\u00a0", "\u3000", "\r\n", "  "])
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 40))) for _ in range(count)]


CHAR_LEVEL_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # as char_level_test.cpp


def gpt2_bytes_to_unicode():
    """The character each byte stands for in GPT-2's byte-level alphabet, by byte value."""
    kept = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    out, extra = [], 0
    for b in range(256):
        out.append(chr(b) if b in kept else chr(0x100 + extra))
        extra += b not in kept
    return out


def train(corpus, pre_tokenizer, special_tokens, normalizer=None, vocab_size=1500):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=special_tokens, show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    return json.loads(tok.to_str())


def split_variant(base, split):
    j = json.loads(json.dumps(base))
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        split, {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    return j


def flavours(rng, tiny=False):
    corpus = training_corpus(rng)
    out = {}
    size = (lambda n: 262) if tiny else (lambda n: n)  # tiny: the byte alphabet and a few merges
    gpt2 = train(corpus, pre_tokenizers.ByteLevel(add_prefix_space=False), ["<|endoftext|>"],
                 vocab_size=size(1500))
    legacy = json.loads(json.dumps(gpt2))  # merges in the older "a b" string form
    legacy["model"]["merges"] = [" ".join(m) for m in gpt2["model"]["merges"]]
    out["gpt2"] = legacy

    prefix = json.loads(json.dumps(gpt2))
    prefix["pre_tokenizer"]["add_prefix_space"] = True
    t = Tokenizer.from_str(json.dumps(prefix))
    t.add_tokens([AddedToken("héllo", normalized=False), AddedToken("你好", normalized=True),
                  AddedToken("sw", single_word=True), AddedToken("LS", lstrip=True),
                  AddedToken("RS", rstrip=True), AddedToken("<<user>>", normalized=False, lstrip=True, rstrip=True)])
    t.add_special_tokens(["<|im_start|>"])
    out["gpt2_prefix_added"] = json.loads(t.to_str())

    qwen_pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    qwen2 = train(corpus, qwen_pre, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], normalizers.NFC(),
                  vocab_size=size(1500))
    out["qwen2"] = qwen2

    llama_pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    llama3 = train(corpus, llama_pre, ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
                   vocab_size=size(2000))
    llama3["model"]["ignore_merges"] = True
    bos = llama3["added_tokens"][0]["id"]
    bos_piece = {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}
    llama3["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [bos_piece, {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [bos_piece, {"Sequence": {"id": "A", "type_id": 0}}, bos_piece, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [bos],
                                                  "tokens": ["<|begin_of_text|>"]}}}]}
    out["llama3"] = llama3

    def split(pattern, behavior, invert=False, literal=False):
        return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern}, "behavior": behavior,
                "invert": invert}
    out["split_removed"] = split_variant(qwen2, split(r"\s+", "Removed"))
    out["split_merged_previous"] = split_variant(qwen2, split(r"[,.!?\s]", "MergedWithPrevious"))
    out["split_merged_next"] = split_variant(qwen2, split(r"\s", "MergedWithNext"))
    out["split_contiguous"] = split_variant(qwen2, split(r"\d", "Contiguous"))
    out["split_invert"] = split_variant(qwen2, split(r"\p{L}+", "Isolated", invert=True))
    out["split_literal"] = split_variant(qwen2, split(" ", "Removed", literal=True))

    vocab = {byte_char: b for b, byte_char in enumerate(gpt2_bytes_to_unicode())}  # id = byte value
    char_tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    char_tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    char_tok.decoder = decoders.ByteLevel()
    char_tok.add_special_tokens(CHAR_LEVEL_SPECIALS)
    out["charlevel"] = json.loads(char_tok.to_str())

    letters = {"<unk>": 0}
    for c in "abcdefghijklmnopqrstuvwxyz":
        letters[c] = len(letters)
    for a, b in [("t", "h"), ("th", "e"), ("e", "r"), ("i", "n")]:
        letters[a + b] = len(letters)
    merges = [["t", "h"], ["th", "e"], ["e", "r"], ["i", "n"]]
    unk = Tokenizer(models.BPE(vocab=letters, merges=[tuple(m) for m in merges], unk_token="<unk>",
                               fuse_unk=True))
    unk.pre_tokenizer = pre_tokenizers.Split(Regex(r"\s+"), behavior="removed")
    out["unk_fused"] = json.loads(unk.to_str())
    unk2 = json.loads(unk.to_str())
    unk2["model"]["fuse_unk"] = False
    out["unk_unfused"] = unk2

    fb = dict(letters)
    for b in range(256):
        fb["<0x%02X>" % b] = len(fb)
    fallback = Tokenizer(models.BPE(vocab=fb, merges=[tuple(m) for m in merges], unk_token="<unk>",
                                    byte_fallback=True))
    fallback.pre_tokenizer = pre_tokenizers.Split(Regex(r"\s+"), behavior="removed")
    out["byte_fallback"] = json.loads(fallback.to_str())
    return out


def cases_for(tok, lines, rng):
    cases = []
    for text in lines:
        ids = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = True
        ids_no_parse = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        half = ids[: len(ids) // 2 + (1 if len(ids) % 2 else 0)]
        cases.append({
            "text": text, "ids": ids,
            "ids_special": tok.encode(text, add_special_tokens=True).ids,
            "ids_no_parse": ids_no_parse,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip": tok.decode(ids, skip_special_tokens=True),
            "half_ids": half, "decoded_half": tok.decode(half, skip_special_tokens=False),
        })
    size = tok.get_vocab_size()
    for _ in range(100):  # random id sequences: partial characters, specials, unknown ids
        ids = [rng.randrange(size + 3) for _ in range(rng.randint(1, 8))]
        cases.append({"text": None, "half_ids": ids,
                      "decoded_half": tok.decode(ids, skip_special_tokens=False),
                      "decoded_half_skip": tok.decode(ids, skip_special_tokens=True)})
    return cases


def unicode_cases(rng):
    nfc = []
    marks = [chr(c) for c in range(0x300, 0x370)] + ["\u0591", "\u05b0", "\u093c", "\u094d", "\u3099",
                                                     "\u309a", "\U0001d165", "\u0f71", "\u0f72", "\u0e38"]
    bases = list("aeiouAEIOUnNcCsSzZ") + ["\u0391", "\u03b1", "\u0415", "\u0928", "\u304b", "\u30cf", "\u0f40"]
    for cp in range(0x110000):  # every character with a canonical decomposition, composed and decomposed
        d = unicodedata.decomposition(chr(cp))
        if d and not d.startswith("<"):
            for text in (chr(cp), unicodedata.normalize("NFD", chr(cp))):
                nfc.append([text, unicodedata.normalize("NFC", text)])
    for cp in range(0xAC00, 0xD7A4, 97):  # Hangul syllables, decomposed
        text = unicodedata.normalize("NFD", chr(cp))
        nfc.append([text, unicodedata.normalize("NFC", text)])
    for _ in range(3000):  # bases with combining marks in random order
        text = "".join(rng.choice(bases) + "".join(rng.choice(marks) for _ in range(rng.randint(0, 4)))
                       for _ in range(rng.randint(1, 4)))
        nfc.append([text, unicodedata.normalize("NFC", text)])
    lossy = []
    fragments = [b"\xe4\xbd\xa0", b"\xf0\x9f\x98\x80", b"\xc3\xa9", b"a", b"\xed\xa0\x80",
                 b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf8\x88\x80\x80\x80", b"\xff", b"\x80",
                 b"\xbf", b"\xef\xbb\xbf"]
    for _ in range(3000):
        data = b"".join(rng.choice(fragments) for _ in range(rng.randint(1, 6)))
        cut = rng.randint(0, len(data))
        data = data[:cut] + data[cut + rng.randint(0, 2):]  # drop a byte or two: broken sequences
        lossy.append([data.hex(), data.decode("utf-8", errors="replace")])
    return {"unicode_version": unicodedata.unidata_version, "nfc": nfc, "lossy": lossy}


def write_fuzz_seeds(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name, spec in flavours(random.Random(7), tiny=True).items():
        text = json.dumps(spec, ensure_ascii=False, separators=(",", ":"))
        with open(os.path.join(out_dir, name + ".json"), "w", encoding="utf-8") as f:
            f.write(text)
        print(f"{name}: {len(text.encode())} bytes")
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"eos_token": "<|im_end|>", "bos_token": None, "add_bos_token": False,
                   "pad_token": {"content": "<|endoftext|>", "special": True}}, f)


def main():
    if sys.argv[1] == "--fuzz-seeds":
        return write_fuzz_seeds(sys.argv[2])
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(20240607)
    lines = FIXED_LINES + random_lines(rng, 300)
    result = {"tokenizers_version": tokenizers.__version__, "flavours": []}
    for name, spec in flavours(rng).items():
        path = os.path.join(out_dir, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(spec, f, ensure_ascii=False)
        tok = Tokenizer.from_file(path)
        vocab = tok.get_vocab(with_added_tokens=True)
        result["flavours"].append({
            "name": name, "file": path, "vocab_entries": len(vocab), "max_id": max(vocab.values()),
            "special": {t.content: i for i, t in tok.get_added_tokens_decoder().items() if t.special},
            "cases": cases_for(tok, lines, rng)})
    with open(os.path.join(out_dir, "parity.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=True)
    with open(os.path.join(out_dir, "unicode.json"), "w", encoding="utf-8") as f:
        json.dump(unicode_cases(rng), f, ensure_ascii=True)


if __name__ == "__main__":
    main()
