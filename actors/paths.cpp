#include "actors/paths.hpp"

#include "config/utf8.hpp"

#include <vector>

namespace troupe {

namespace {

bool is_control(unsigned char c) {
  return c < 0x20 || c == 0x7F;
}

bool is_separator(char c) {
  return c == '/' || c == '\\';
}

/// Splits on '/' and '\', dropping empty and "." components.
std::vector<std::string_view> components(std::string_view path) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i < path.size() && !is_separator(path[i]))
      continue;
    auto part = path.substr(start, i - start);
    if (!part.empty() && part != ".")
      parts.push_back(part);
    start = i + 1;
  }
  return parts;
}

using config::utf8_sequence;

/// Why a single name (file name or path component) is refused, or "" if it is fine.
std::string check_name(std::string_view name) {
  if (name.size() > max_name_bytes)
    return "is longer than 255 bytes";
  for (unsigned char c : name)
    if (is_control(c))
      return c == 0 ? "contains a NUL character" : "contains a control character";
  if (!is_valid_utf8(name))
    return "is not valid UTF-8";
  return "";
}

} // namespace

bool is_valid_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    auto n = utf8_sequence(text, i);
    if (n == 0)
      return false;
    i += n;
  }
  return true;
}

std::optional<std::string> sanitise_filename(std::string_view raw, std::string& why) {
  size_t last = raw.find_last_of("/\\");
  auto name = last == std::string_view::npos ? raw : raw.substr(last + 1);
  if (name.empty() || name == "." || name == "..") {
    why = "The filename must name a file (not be empty, \".\" or \"..\").";
    return std::nullopt;
  }
  if (auto problem = check_name(name); !problem.empty()) {
    why = "The filename " + problem + ".";
    return std::nullopt;
  }
  return std::string{name};
}

std::optional<std::string> normalise_relative_path(std::string_view raw, size_t max_depth, std::string& why) {
  if (!raw.empty() && is_separator(raw.front())) {
    why = "is an absolute path";
    return std::nullopt;
  }
  if (raw.size() > max_path_bytes) {
    why = "is longer than 4096 bytes";
    return std::nullopt;
  }
  auto parts = components(raw);
  if (parts.empty()) {
    why = "names no file";
    return std::nullopt;
  }
  if (parts.size() > max_depth) {
    why = "is deeper than " + std::to_string(max_depth) + " levels";
    return std::nullopt;
  }
  std::string path;
  for (auto part : parts) {
    if (part == "..") {
      why = "contains \"..\" (path traversal)";
      return std::nullopt;
    }
    if (auto problem = check_name(part); !problem.empty()) {
      why = "has a component that " + problem;
      return std::nullopt;
    }
    if (!path.empty())
      path += '/';
    path += part;
  }
  return path;
}

bool link_stays_inside(std::string_view link_path, std::string_view target) {
  if (target.empty() || is_separator(target.front()))
    return false;
  // Resolve against the link's directory, never letting the depth go below the root.
  auto base = components(link_path);
  if (!base.empty())
    base.pop_back();
  auto depth = static_cast<long>(base.size());
  for (auto part : components(target)) {
    depth += part == ".." ? -1 : 1;
    if (depth < 0)
      return false;
  }
  return true;
}

} // namespace troupe
