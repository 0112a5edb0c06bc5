// Fuzz target: names from clients and archives before they touch the file system (actors/paths.hpp): archive entry
// paths (normalise_relative_path), upload file names (sanitise_filename), and symbolic link targets
// (link_stays_inside, the input split at its first NUL into the link's path, normalised, and its target).
//
// Invariants: a normalised path is relative, '/'-separated, without empty, "." or ".." components, valid UTF-8
// without control characters, within the length and depth limits, and normalising it again changes nothing; a file
// name is one such component; link_stays_inside agrees with an independent resolution of the target against the
// link's directory.

#include "tests/fuzz/fuzz_check.hpp"

#include "actors/paths.hpp"

#include <string>
#include <vector>

namespace {

std::vector<std::string> parts_of(std::string_view path) {
  std::vector<std::string> parts;
  std::string part;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/' || path[i] == '\\') {
      if (!part.empty() && part != ".")
        parts.push_back(part);
      part.clear();
    } else {
      part += path[i];
    }
  }
  return parts;
}

/// Whether `target`, resolved against the directory of `link` (both relative to a root), stays under the root.
bool resolves_inside(std::string_view link, std::string_view target) {
  if (target.empty() || target.front() == '/' || target.front() == '\\')
    return false;
  auto base = parts_of(link);
  if (!base.empty())
    base.pop_back();
  long depth = static_cast<long>(base.size());
  for (const auto& part : parts_of(target)) {
    depth += part == ".." ? -1 : 1;
    if (depth < 0)
      return false;
  }
  return true;
}

void check_component(std::string_view part) {
  using troupe::fuzz::check;
  check(!part.empty() && part != "." && part != "..", "a component names something");
  check(part.size() <= troupe::max_name_bytes, "a component is at most 255 bytes");
  for (unsigned char c : part)
    check(c >= 0x20 && c != 0x7F && c != '/' && c != '\\', "a component has no separator or control character");
  check(troupe::is_valid_utf8(part), "a component is UTF-8");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  using namespace troupe;
  using fuzz::check;
  const auto text = fuzz::text_of(data, size);
  constexpr size_t max_depth = 32;

  std::string why;
  if (auto path = normalise_relative_path(text, max_depth, why)) {
    check(path->size() <= max_path_bytes, "a path is at most 4096 bytes");
    auto parts = parts_of(*path);
    check(!parts.empty() && parts.size() <= max_depth, "a path has 1 to max_depth components");
    std::string joined;
    for (const auto& part : parts) {
      check_component(part);
      joined += (joined.empty() ? "" : "/") + part;
    }
    check(joined == *path, "a path is its components joined by '/'");
    std::string again_why;
    auto again = normalise_relative_path(*path, max_depth, again_why);
    check(again && *again == *path, "normalising is idempotent");
  } else {
    check(!why.empty(), "a refused path says why");
  }

  why.clear();
  if (auto name = sanitise_filename(text, why))
    check_component(*name);
  else
    check(!why.empty(), "a refused file name says why");

  // Links come from archive entries whose own path was normalised first.
  auto nul = text.find('\0');
  std::string link_why;
  auto link =
    nul == std::string_view::npos ? std::nullopt : normalise_relative_path(text.substr(0, nul), 1024, link_why);
  if (link) {
    auto target = text.substr(nul + 1);
    check(link_stays_inside(*link, target) == resolves_inside(*link, target),
          "link_stays_inside agrees with resolving the target");
  }
  return 0;
}
