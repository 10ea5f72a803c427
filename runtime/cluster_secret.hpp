// The shared secret of a multi-process run: a worker accepts a coordinator
// only if it proves it knows the run's secret. The secret comes from the
// environment (QERL_CLUSTER_SECRET) or a file only its owner can read
// (QERL_CLUSTER_SECRET_FILE, mode 0600 or stricter); never from the command
// line, and it is never logged. For local workers the coordinator makes one
// and hands it to its children through their environment.
#pragma once

#include <optional>
#include <string>

namespace qerl::runtime {

inline constexpr const char* secret_env = "QERL_CLUSTER_SECRET";
inline constexpr const char* secret_file_env = "QERL_CLUSTER_SECRET_FILE";

// The secret from the environment, nullopt when neither variable is set.
// Throws qerl::Error when the file cannot be read, is empty, or can be read
// or written by anyone but its owner (the line names the file and its mode).
std::optional<std::string> read_cluster_secret();

// 32 random bytes from /dev/urandom, as 64 hex digits.
std::string generate_cluster_secret();

// What travels in the handshake instead of the secret: a 128-bit digest of
// it (two FNV-1a 64 passes, domain-separated), as hex. Not a MAC: it keeps
// the secret itself off the wire and out of logs, and is compared in
// constant time.
std::string secret_proof(const std::string& secret);
bool equal_in_constant_time(const std::string& a, const std::string& b);

}  // namespace qerl::runtime
