// "Did you mean" suggestions: the closest candidate by edit distance, when it
// is close enough to be a plausible typo.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace qerl::dsl {

std::optional<std::string> closest_match(const std::string& word,
                                         const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" or "" — ready to append to a message.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace qerl::dsl
