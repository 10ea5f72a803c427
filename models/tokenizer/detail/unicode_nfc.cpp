// NFC in three passes over code points: full canonical decomposition (tables
// plus the Hangul syllable arithmetic), a stable sort of each run of
// non-starters by combining class, then composition of each character with
// the last starter unless a character in between blocks it.
#include "models/tokenizer/detail/unicode_nfc.hpp"

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "models/tokenizer/detail/unicode_nfc_data.hpp"
#include "models/tokenizer/detail/utf8.hpp"

namespace qerl::models::detail {

namespace {

// Hangul syllables: S = SBase + (L * VCount + V) * TCount + T.
constexpr uint32_t s_base = 0xAC00, l_base = 0x1100, v_base = 0x1161, t_base = 0x11A7;
constexpr uint32_t l_count = 19, v_count = 21, t_count = 28;
constexpr uint32_t n_count = v_count * t_count, s_count = l_count * n_count;

struct Tables {
  std::unordered_map<uint32_t, std::pair<uint32_t, uint32_t>> decomposition;
  std::unordered_map<uint64_t, uint32_t> composition;  // (first << 32 | second) -> composite

  Tables() {
    decomposition.reserve(canonical_decompositions_size);
    for (size_t i = 0; i < canonical_decompositions_size; ++i) {
      const CanonicalDecomposition& d = canonical_decompositions[i];
      decomposition.emplace(d.code_point, std::make_pair(d.first, d.second));
    }
    composition.reserve(primary_composites_size);
    for (size_t i = 0; i < primary_composites_size; ++i) {
      const PrimaryComposite& c = primary_composites[i];
      composition.emplace(uint64_t{c.first} << 32 | c.second, c.composite);
    }
  }
};

const Tables& tables() {
  static const Tables instance;  // immutable after first use
  return instance;
}

uint32_t combining_class(uint32_t cp) {
  if (cp < 0x300) return 0;
  const CombiningClassRange* end = combining_class_ranges + combining_class_ranges_size;
  const CombiningClassRange* it = std::upper_bound(
      combining_class_ranges, end, cp, [](uint32_t c, const CombiningClassRange& r) { return c < r.first; });
  if (it == combining_class_ranges) return 0;
  --it;
  return cp <= it->last ? it->ccc : 0;
}

void decompose(uint32_t cp, const Tables& t, std::vector<uint32_t>& out) {
  if (cp >= s_base && cp < s_base + s_count) {
    const uint32_t s = cp - s_base;
    out.push_back(l_base + s / n_count);
    out.push_back(v_base + (s % n_count) / t_count);
    if (s % t_count != 0) out.push_back(t_base + s % t_count);
    return;
  }
  const auto found = t.decomposition.find(cp);
  if (found == t.decomposition.end()) {
    out.push_back(cp);
    return;
  }
  decompose(found->second.first, t, out);  // depth <= 4 in Unicode data
  if (found->second.second != 0) decompose(found->second.second, t, out);
}

// 0 when the pair does not compose.
uint32_t compose(uint32_t first, uint32_t second, const Tables& t) {
  if (first >= l_base && first < l_base + l_count && second >= v_base && second < v_base + v_count) {
    return s_base + ((first - l_base) * v_count + (second - v_base)) * t_count;
  }
  if (first >= s_base && first < s_base + s_count && (first - s_base) % t_count == 0 && second > t_base &&
      second < t_base + t_count) {
    return first + (second - t_base);
  }
  const auto found = t.composition.find(uint64_t{first} << 32 | second);
  return found == t.composition.end() ? 0 : found->second;
}

}  // namespace

std::string to_nfc(std::string_view text) {
  if (std::all_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0xCC; })) {
    return std::string(text);  // every code point is below U+0300: already NFC
  }
  const Tables& t = tables();
  std::vector<uint32_t> cps;
  cps.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) decompose(next_code_point(text, pos), t, cps);

  // Canonical ordering: stable sort of each maximal run of non-starters.
  std::vector<uint32_t> ccc(cps.size());
  for (size_t i = 0; i < cps.size(); ++i) ccc[i] = combining_class(cps[i]);
  for (size_t i = 0; i < cps.size();) {
    if (ccc[i] == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && ccc[j] != 0) ++j;
    std::vector<std::pair<uint32_t, uint32_t>> run;  // (ccc, cp)
    for (size_t k = i; k < j; ++k) run.emplace_back(ccc[k], cps[k]);
    std::stable_sort(run.begin(), run.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t k = i; k < j; ++k) std::tie(ccc[k], cps[k]) = run[k - i];
    i = j;
  }

  // Composition: out[starter] absorbs each following character it composes
  // with, unless a character in between has class 0 or >= that character's.
  std::vector<uint32_t> out;
  out.reserve(cps.size());
  size_t starter = SIZE_MAX;
  int last_ccc = -1;  // class of the last character kept after the starter; -1: none
  for (size_t i = 0; i < cps.size(); ++i) {
    const int c = static_cast<int>(ccc[i]);
    if (starter != SIZE_MAX && (last_ccc == -1 || last_ccc < c)) {
      if (const uint32_t composite = compose(out[starter], cps[i], t)) {
        out[starter] = composite;
        continue;
      }
    }
    if (c == 0) {
      starter = out.size();
      last_ccc = -1;
    } else {
      last_ccc = c;
    }
    out.push_back(cps[i]);
  }
  std::string result;
  result.reserve(text.size());
  for (uint32_t cp : out) append_utf8(result, cp);
  return result;
}

}  // namespace qerl::models::detail
