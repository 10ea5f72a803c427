// Reading, making and proving the cluster secret; see cluster_secret.hpp.
#include "runtime/cluster_secret.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/error.hpp"

namespace qerl::runtime {
namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  return s;
}

uint64_t fnv1a(const std::string& text, uint64_t basis) {
  uint64_t h = basis;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

std::optional<std::string> read_cluster_secret() {
  if (const char* value = std::getenv(secret_env); value && *value) return std::string(value);
  const char* path = std::getenv(secret_file_env);
  if (!path || !*path) return std::nullopt;
  struct stat st {};
  if (::stat(path, &st) != 0)
    throw Error(std::string(secret_file_env) + " names '" + path + "', which cannot be read");
  if (!S_ISREG(st.st_mode)) throw Error(std::string(secret_file_env) + " names '" + path + "', which is not a file");
  if (st.st_uid != ::getuid() || (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw Error(std::string("refusing the cluster secret file '") + path + "': mode " + mode +
                (st.st_uid != ::getuid() ? " and owned by another user" : "") +
                "; it must be readable by its owner only (chmod 600)");
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string secret = trimmed(text.str());
  if (!in && !in.eof()) throw Error(std::string("cannot read the cluster secret file '") + path + "'");
  if (secret.empty()) throw Error(std::string("the cluster secret file '") + path + "' is empty");
  return secret;
}

std::string generate_cluster_secret() {
  std::ifstream urandom("/dev/urandom", std::ios::binary);
  unsigned char bytes[32];
  if (!urandom.read(reinterpret_cast<char*>(bytes), sizeof(bytes)))
    throw Error("cannot read /dev/urandom for the cluster secret");
  std::string out;
  char buf[3];
  for (unsigned char b : bytes) std::snprintf(buf, sizeof(buf), "%02x", b), out += buf;
  return out;
}

std::string secret_proof(const std::string& secret) {
  const std::string text = "qerl-cluster-secret/1:" + secret;
  return hex(fnv1a(text, 0xcbf29ce484222325ULL)) + hex(fnv1a(text, 0x84222325cbf29ce4ULL));
}

bool equal_in_constant_time(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    diff |= static_cast<unsigned char>((i < a.size() ? a[i] : 0) ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

}  // namespace qerl::runtime
