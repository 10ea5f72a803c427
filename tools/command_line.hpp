// The command line a run was started with, as one shell line that can be
// pasted back into a shell (qerl-run writes it to <out_dir>/command.txt; the
// report shows it).
#pragma once

#include <string>
#include <vector>

namespace qerl::tools {

// Each argument single-quoted when it holds anything but [A-Za-z0-9_./=:,+@%-].
std::string shell_quote(const std::string& arg);
std::string shell_command(const std::vector<std::string>& args);

}  // namespace qerl::tools
