// The corpus replay of a fuzz target, for `make test`: the target's LLVMFuzzerTestOneInput compiled into the normal
// (g++) build with this main(), which feeds it every file of the directories and files named on the command line.
// The checked-in seed corpus holds the regression inputs of every crash found, so a change that brings one back
// fails the suite; fuzzing proper (new inputs, sanitizers, coverage) is `make fuzz` (clang + libFuzzer).
//   <target>_corpus DIR_OR_FILE...
// A failed invariant aborts (fuzz_check.hpp), naming the input on stderr first.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size);

namespace {

bool replay(const std::filesystem::path& file) {
  std::ifstream in{file, std::ios::binary};
  if (!in) {
    std::fprintf(stderr, "replay: cannot read %s\n", file.c_str());
    return false;
  }
  std::vector<unsigned char> bytes{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
  std::fprintf(stderr, "replay: %s (%zu bytes)\n", file.c_str(), bytes.size());
  // A copy of exactly the input's size, as libFuzzer hands it: reading past the end is an error under ASan.
  auto* data = bytes.empty() ? nullptr : new unsigned char[bytes.size()];
  std::copy(bytes.begin(), bytes.end(), data);
  LLVMFuzzerTestOneInput(data, bytes.size());
  delete[] data;
  return true;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  size_t count = 0;
  for (int i = 1; i < argc; ++i) {
    std::filesystem::path arg{argv[i]};
    std::error_code ec;
    if (std::filesystem::is_directory(arg, ec)) {
      std::vector<std::filesystem::path> files;
      for (const auto& entry : std::filesystem::recursive_directory_iterator{arg})
        if (entry.is_regular_file())
          files.push_back(entry.path());
      std::sort(files.begin(), files.end()); // the same order on every machine
      for (const auto& file : files) {
        if (!replay(file))
          return 1;
        ++count;
      }
    } else {
      if (!replay(arg))
        return 1;
      ++count;
    }
  }
  if (count == 0) {
    std::fprintf(stderr, "replay: no inputs\n");
    return 1;
  }
  std::printf("replay: %zu inputs, no invariant failed\n", count);
  return 0;
}
