// Where the cluster secret comes from (issue 17): QERL_CLUSTER_SECRET, else
// a file named by QERL_CLUSTER_SECRET_FILE that only its owner can read; a
// file others can read is refused with its mode named, never its content.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/error.hpp"
#include "runtime/cluster_secret.hpp"

using namespace qerl::runtime;
namespace fs = std::filesystem;

namespace {

// Sets (or unsets, value == nullptr) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    if (value) ::setenv(name, value, 1);
    else ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_) ::setenv(name_, old_.c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

fs::path secret_file(const std::string& text, fs::perms perms) {
  const fs::path path = fs::temp_directory_path() / ("qerl_secret_test_" + std::to_string(::getpid()));
  {
    std::ofstream out(path, std::ios::trunc);
    out << text;
  }
  fs::permissions(path, perms);
  return path;
}

}  // namespace

TEST_CASE("cluster secret: the environment variable first, none when neither is set") {
  {
    ScopedEnv value(secret_env, "from-env");
    ScopedEnv file(secret_file_env, "/nonexistent");
    CHECK(read_cluster_secret() == std::optional<std::string>("from-env"));
  }
  ScopedEnv value(secret_env, nullptr);
  ScopedEnv file(secret_file_env, nullptr);
  CHECK_FALSE(read_cluster_secret());
}

TEST_CASE("cluster secret file: read when owner-only, refused naming its mode when others may read it") {
  ScopedEnv value(secret_env, nullptr);
  const fs::path good = secret_file("t0ps3cret\n", fs::perms::owner_read | fs::perms::owner_write);
  {
    ScopedEnv file(secret_file_env, good.c_str());
    CHECK(read_cluster_secret() == std::optional<std::string>("t0ps3cret"));
  }
  const fs::path open = secret_file("t0ps3cret\n", fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                                       fs::perms::others_read);
  {
    ScopedEnv file(secret_file_env, open.c_str());
    try {
      (void)read_cluster_secret();
      FAIL("a world-readable secret file was accepted");
    } catch (const qerl::Error& e) {
      const std::string what = e.what();
      CHECK(what.find("mode 0644") != std::string::npos);
      CHECK(what.find("chmod 600") != std::string::npos);
      CHECK(what.find("t0ps3cret") == std::string::npos);
    }
  }
  const fs::path empty = secret_file("\n", fs::perms::owner_read | fs::perms::owner_write);
  {
    ScopedEnv file(secret_file_env, empty.c_str());
    CHECK_THROWS_WITH_AS((void)read_cluster_secret(), doctest::Contains("is empty"), qerl::Error);
  }
  {
    ScopedEnv file(secret_file_env, "/nonexistent/secret");
    CHECK_THROWS_AS((void)read_cluster_secret(), qerl::Error);
  }
  fs::remove(good);
}
