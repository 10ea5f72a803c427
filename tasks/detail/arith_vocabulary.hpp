// The fixed, deliberately small vocabulary of builtin:arith: people, counted
// things, containers and up to three phrasings per kind of sentence. Small and
// regular so a tiny char-level model can learn it; changing any entry changes
// every generated problem set, so treat these tables as data format.
#pragma once

#include <array>
#include <cstddef>

namespace qerl::tasks::detail {

struct Person {
  const char* name;
  bool female;
};

struct Noun {
  const char* singular;
  const char* plural;
};

// Interleaved so that names=2 already gives one of each pronoun.
inline constexpr std::array<Person, 8> kPeople = {{
    {"Tom", false},
    {"Anna", true},
    {"Ben", false},
    {"Mia", true},
    {"Sam", false},
    {"Lily", true},
    {"Jack", false},
    {"Emma", true},
}};

inline constexpr std::array<Noun, 8> kItems = {{
    {"apple", "apples"},
    {"pencil", "pencils"},
    {"marble", "marbles"},
    {"sticker", "stickers"},
    {"cookie", "cookies"},
    {"book", "books"},
    {"coin", "coins"},
    {"card", "cards"},
}};

inline constexpr std::array<Noun, 4> kContainers = {{
    {"bag", "bags"},
    {"box", "boxes"},
    {"pack", "packs"},
    {"jar", "jars"},
}};

// Kinds of sentence; the six events between `start` and `question` each add
// one (or, for the group events, two) lines to the worked solution.
enum class Sentence : size_t { start, add, sub, add_groups, sub_groups, mul, div, question };
inline constexpr size_t kSentenceKinds = 8;
inline constexpr size_t kPhrasings = 3;

// Placeholders: {N} the person, {F} a friend, {he} {him} {his} {self} the
// person's pronouns, {items} {bags} {bag} plain nouns, {a} {b} numbers, and
// "{a bags}" / "{b items}" a number with its noun in the right number.
// Sentences are capitalized after rendering.
inline constexpr std::array<std::array<const char*, kPhrasings>, kSentenceKinds> kPhrasingTable = {{
    {{"{N} has {b items}.", "{N} starts with {b items}.", "{N} owns {b items}."}},
    {{"{he} buys {b items}.", "{he} finds {b items}.", "{F} gives {him} {b items}."}},
    {{"{he} gives away {b items}.", "{he} loses {b items}.", "{he} gives {b items} to {F}."}},
    {{"{he} buys {a bags} with {b items} each.", "{he} gets {a bags} of {b items} each.",
      "{F} gives {him} {a bags} with {b items} in each."}},
    {{"{he} gives {a} friends {b items} each.", "{he} sells {a bags} with {b items} each.",
      "{he} uses {b items} a day for {a} days."}},
    {{"then {he} has {a} times as many {items} as before.",
      "the number of {his} {items} is multiplied by {a}.",
      "after a trade, {he} has {a} times as many {items} as before."}},
    {{"{he} splits {his} {items} into {a} equal groups and keeps one group.",
      "{he} puts {his} {items} into {a} equal {bags} and keeps one {bag}.",
      "{he} shares {his} {items} equally among {a} people, {self} included, and keeps one share."}},
    {{"How many {items} does {N} have now?", "How many {items} does {N} have at the end?",
      "How many {items} does {N} have in the end?"}},
}};

}  // namespace qerl::tasks::detail
