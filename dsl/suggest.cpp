// "Did you mean": optimal-string-alignment distance (Levenshtein plus
// adjacent transpositions, so "sigma_ned" finds "sigma_end"). A candidate is
// offered only within a third of the word's length, and a case-insensitive
// exact match ("r3" -> "R3") always wins.
#include "dsl/suggest.hpp"

#include <algorithm>
#include <cctype>

namespace qerl::dsl {

namespace {

constexpr size_t max_word_length = 64;  // longer words are not typos of keys

std::string lower(const std::string& s) {
  std::string out = s;
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

size_t osa_distance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size(), w = m + 1;
  std::vector<size_t> d((n + 1) * w);  // d[i * w + j]: distance of a[0, i) and b[0, j)
  for (size_t i = 0; i <= n; ++i) d[i * w] = i;
  for (size_t j = 0; j <= m; ++j) d[j] = j;
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      size_t best = std::min({d[(i - 1) * w + j] + 1, d[i * w + j - 1] + 1, d[(i - 1) * w + j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        best = std::min(best, d[(i - 2) * w + j - 2] + 1);
      d[i * w + j] = best;
    }
  }
  return d[n * w + m];
}

}  // namespace

std::optional<std::string> closest_match(const std::string& word,
                                         const std::vector<std::string>& candidates) {
  if (word.empty() || word.size() > max_word_length) return std::nullopt;
  const std::string word_lower = lower(word);
  for (const std::string& c : candidates)
    if (lower(c) == word_lower) return c;
  const size_t limit = std::min<size_t>(3, std::max<size_t>(1, word.size() / 3));
  std::optional<std::string> best;
  size_t best_distance = limit + 1;
  for (const std::string& c : candidates) {
    // The length difference bounds the distance from below: skip hopeless ones.
    const size_t length_gap = c.size() > word.size() ? c.size() - word.size() : word.size() - c.size();
    if (c.size() > max_word_length || length_gap >= best_distance) continue;
    const size_t dist = osa_distance(word_lower, lower(c));
    if (dist < best_distance) {
      best_distance = dist;
      best = c;
    }
  }
  return best;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  auto match = closest_match(word, candidates);
  return match ? " (did you mean '" + *match + "'?)" : "";
}

}  // namespace qerl::dsl
