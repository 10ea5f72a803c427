// shell_quote: POSIX single quotes, with ' written as '\''.
#include "tools/command_line.hpp"

#include <cctype>

namespace qerl::tools {

std::string shell_quote(const std::string& arg) {
  auto plain = [](unsigned char c) { return std::isalnum(c) || std::string("_./=:,+@%-").find(c) != std::string::npos; };
  bool safe = !arg.empty();
  for (unsigned char c : arg) safe = safe && plain(c);
  if (safe) return arg;
  std::string quoted = "'";
  for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string shell_command(const std::vector<std::string>& args) {
  std::string line;
  for (const std::string& a : args) line += (line.empty() ? "" : " ") + shell_quote(a);
  return line;
}

}  // namespace qerl::tools
