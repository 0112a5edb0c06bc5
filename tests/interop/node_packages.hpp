#pragma once
// Where the interop tests find Node and the npm packages they drive. scripts/test-deps installs them (make test
// runs it before ctest) from tests/interop/package-lock.json; a test that finds them missing FAILS with the reason,
// it never skips: an offline runner must not turn the interop suite green by skipping it.

#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <string>

#ifndef TROUPE_SOURCE_DIR
#error "tests are compiled with TROUPE_SOURCE_DIR (tests/CMakeLists.txt)"
#endif

namespace troupe::testing {

/// tests/interop of the source tree: the .mjs drivers and their node_modules.
inline std::string interop_dir() {
  return std::string(TROUPE_SOURCE_DIR) + "/tests/interop";
}

/// "" when `node` runs and every package is installed under tests/interop/node_modules; else what is missing and
/// how to install it.
inline std::string node_packages_missing(std::initializer_list<const char*> packages) {
  if (std::system("node --version >/dev/null 2>&1") != 0)
    return "node is not installed: run scripts/install-deps and scripts/test-deps (make test runs both)";
  for (const char* package : packages)
    if (!std::filesystem::exists(interop_dir() + "/node_modules/" + package + "/package.json"))
      return std::string{"tests/interop/node_modules/"} + package
             + " is missing: run scripts/test-deps (make test runs it before ctest)";
  return "";
}

} // namespace troupe::testing
