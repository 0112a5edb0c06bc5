#include "actors/text_analysis.hpp"

#include "actors/paths.hpp"

#include <algorithm>
#include <cstring>
#include <unordered_map>

namespace troupe {

namespace {

bool is_control_byte(unsigned char c) {
  return (c < 0x20 && c != '\t' && c != '\n' && c != '\v' && c != '\f' && c != '\r' && c != 0x1B) || c == 0x7F;
}

std::string lower(std::string_view text) {
  std::string out{text};
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

/// Languages by lower-case extension (without the dot).
const std::unordered_map<std::string, std::string>& languages_by_extension() {
  static const std::unordered_map<std::string, std::string> table = {
    {"c", "C"},
    {"h", "C"},
    {"cc", "C++"},
    {"cpp", "C++"},
    {"cxx", "C++"},
    {"hpp", "C++"},
    {"hh", "C++"},
    {"hxx", "C++"},
    {"ipp", "C++"},
    {"cs", "C#"},
    {"java", "Java"},
    {"kt", "Kotlin"},
    {"kts", "Kotlin"},
    {"scala", "Scala"},
    {"go", "Go"},
    {"rs", "Rust"},
    {"swift", "Swift"},
    {"m", "Objective-C"},
    {"mm", "Objective-C++"},
    {"py", "Python"},
    {"pyi", "Python"},
    {"rb", "Ruby"},
    {"php", "PHP"},
    {"pl", "Perl"},
    {"pm", "Perl"},
    {"lua", "Lua"},
    {"r", "R"},
    {"jl", "Julia"},
    {"ex", "Elixir"},
    {"exs", "Elixir"},
    {"erl", "Erlang"},
    {"hs", "Haskell"},
    {"ml", "OCaml"},
    {"clj", "Clojure"},
    {"dart", "Dart"},
    {"zig", "Zig"},
    {"nim", "Nim"},
    {"js", "JavaScript"},
    {"mjs", "JavaScript"},
    {"cjs", "JavaScript"},
    {"jsx", "JavaScript"},
    {"ts", "TypeScript"},
    {"tsx", "TypeScript"},
    {"mts", "TypeScript"},
    {"vue", "Vue"},
    {"svelte", "Svelte"},
    {"html", "HTML"},
    {"htm", "HTML"},
    {"css", "CSS"},
    {"scss", "SCSS"},
    {"sass", "Sass"},
    {"less", "Less"},
    {"sh", "Shell"},
    {"bash", "Shell"},
    {"zsh", "Shell"},
    {"fish", "Shell"},
    {"ps1", "PowerShell"},
    {"bat", "Batch"},
    {"sql", "SQL"},
    {"json", "JSON"},
    {"yaml", "YAML"},
    {"yml", "YAML"},
    {"toml", "TOML"},
    {"ini", "INI"},
    {"xml", "XML"},
    {"md", "Markdown"},
    {"markdown", "Markdown"},
    {"rst", "reStructuredText"},
    {"tex", "TeX"},
    {"txt", "Text"},
    {"cmake", "CMake"},
    {"mk", "Makefile"},
    {"proto", "Protocol Buffers"},
    {"graphql", "GraphQL"},
    {"tf", "HCL"},
    {"dockerfile", "Dockerfile"},
    {"csv", "CSV"},
  };
  return table;
}

/// Languages by whole (lower-case) file name.
const std::unordered_map<std::string, std::string>& languages_by_name() {
  static const std::unordered_map<std::string, std::string> table = {
    {"makefile", "Makefile"},    {"gnumakefile", "Makefile"}, {"dockerfile", "Dockerfile"},
    {"cmakelists.txt", "CMake"}, {"gemfile", "Ruby"},         {"rakefile", "Ruby"},
    {".bashrc", "Shell"},        {".profile", "Shell"},       {".zshrc", "Shell"},
  };
  return table;
}

/// Languages by interpreter named in a shebang.
std::string language_of_interpreter(std::string_view interpreter) {
  static const std::pair<const char*, const char*> prefixes[] = {
    {"python", "Python"}, {"node", "JavaScript"}, {"deno", "TypeScript"}, {"bash", "Shell"}, {"sh", "Shell"},
    {"zsh", "Shell"},     {"dash", "Shell"},      {"ksh", "Shell"},       {"ruby", "Ruby"},  {"perl", "Perl"},
    {"php", "PHP"},       {"lua", "Lua"},         {"Rscript", "R"},       {"fish", "Shell"},
  };
  for (const auto& [prefix, language] : prefixes)
    if (interpreter.rfind(prefix, 0) == 0)
      return language;
  return "";
}

/// "#!/usr/bin/env -S python3 -u" -> "python3"; "#!/bin/bash" -> "bash".
std::string_view shebang_interpreter(std::string_view line) {
  if (line.rfind("#!", 0) != 0)
    return {};
  line.remove_prefix(2);
  auto next_word = [&line]() {
    auto start = line.find_first_not_of(" \t");
    if (start == std::string_view::npos)
      return std::string_view{};
    auto end = line.find_first_of(" \t\r", start);
    auto word = line.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    line.remove_prefix(end == std::string_view::npos ? line.size() : end);
    return word;
  };
  auto word = next_word();
  auto base = [](std::string_view path) {
    auto slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
  };
  if (base(word) != "env")
    return base(word);
  // env may take options before the interpreter (-S, -i, VAR=value).
  for (word = next_word(); !word.empty() && (word.front() == '-' || word.find('=') != std::string_view::npos);
       word = next_word()) {
  }
  return base(word);
}

} // namespace

chunk_summary analyse_chunk(std::string_view chunk, size_t segment_target) {
  chunk_summary summary;
  for (unsigned char c : chunk) {
    summary.newlines += c == '\n';
    summary.has_nul |= c == 0;
    summary.control_bytes += is_control_byte(c);
  }
  if (summary.has_nul || chunk.empty())
    return summary;
  // Whole lines accumulate into a segment until it reaches the target size; a segment never splits a line.
  size_t seg_start = 0;
  int32_t seg_first_line = 0;
  int32_t line = 0; // the line of the byte at `pos`
  for (size_t pos = 0; pos < chunk.size();) {
    const void* found = std::memchr(chunk.data() + pos, '\n', chunk.size() - pos);
    size_t end = found ? static_cast<size_t>(static_cast<const char*>(found) - chunk.data()) + 1 : chunk.size();
    bool last = end == chunk.size();
    if (end - seg_start >= segment_target || last) {
      summary.segments.push_back({seg_first_line, line, to_valid_utf8(chunk.substr(seg_start, end - seg_start))});
      seg_start = end;
      seg_first_line = line + 1;
    }
    if (found)
      ++line;
    pos = end;
  }
  return summary;
}

size_t chunk_cut(std::string_view buffer, bool at_end) {
  if (at_end || buffer.empty())
    return buffer.size();
  auto last_newline = buffer.rfind('\n');
  return last_newline == std::string_view::npos ? buffer.size() : last_newline + 1;
}

std::string to_valid_utf8(std::string_view text) {
  if (is_valid_utf8(text))
    return std::string{text};
  std::string out;
  out.reserve(text.size() + 16);
  for (size_t i = 0; i < text.size();) {
    // The longest valid sequence at i (1..4 bytes), else one byte replaced by U+FFFD.
    size_t n = 0;
    for (size_t len = 1; len <= 4 && i + len <= text.size() && n == 0; ++len)
      if (is_valid_utf8(text.substr(i, len)))
        n = len;
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

bool looks_binary(bool any_nul, int64_t first_chunk_control_bytes, size_t first_chunk_size) {
  return any_nul || first_chunk_control_bytes * 10 > static_cast<int64_t>(first_chunk_size);
}

std::string detect_language(std::string_view path, std::string_view first_line) {
  auto slash = path.rfind('/');
  auto name = lower(slash == std::string_view::npos ? path : path.substr(slash + 1));
  if (auto i = languages_by_name().find(name); i != languages_by_name().end())
    return i->second;
  if (auto dot = name.rfind('.'); dot != std::string::npos && dot > 0)
    if (auto i = languages_by_extension().find(name.substr(dot + 1)); i != languages_by_extension().end())
      return i->second;
  return language_of_interpreter(shebang_interpreter(first_line));
}

} // namespace troupe
