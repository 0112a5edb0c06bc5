// What processing learns from bytes (actors/text_analysis.cpp): segments, line numbers, UTF-8 repair, binary and
// language detection. Pure functions, no actors.

#include "actors/paths.hpp" // is_valid_utf8 checks what to_valid_utf8 makes
#include "actors/text_analysis.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace troupe;

namespace {

/// Reassembles a file from its chunk summaries the way the upload job runner does: file line numbers from the
/// newlines of the chunks before.
struct reassembled {
  std::string text;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  int64_t newlines = 0;
};

reassembled analyse_file(const std::string& file, size_t chunk_size) {
  reassembled out;
  int64_t next_line = 1;
  std::string pending;
  size_t pos = 0;
  for (;;) {
    auto take = std::min(chunk_size - pending.size(), file.size() - pos);
    pending += file.substr(pos, take);
    pos += take;
    bool at_end = pos == file.size();
    auto cut = chunk_cut(pending, at_end);
    if (cut == 0)
      break;
    auto summary = analyse_chunk(pending.substr(0, cut));
    pending.erase(0, cut);
    for (const auto& s : summary.segments) {
      out.text += s.text;
      out.ranges.emplace_back(next_line + s.first_line, next_line + s.last_line);
    }
    next_line += summary.newlines;
    out.newlines += summary.newlines;
    if (at_end && pending.empty())
      break;
  }
  return out;
}

} // namespace

// Segments hold whole lines, are about the target size, and carry the lines they hold (0 = the chunk's first).
TEST(TextAnalysis, ChunkIsCutIntoSegmentsAtLineBoundaries) {
  std::string chunk;
  for (int i = 0; i < 100; ++i)
    chunk += "line " + std::to_string(i) + " " + std::string(40, 'x') + "\n";
  auto summary = analyse_chunk(chunk, 500);
  EXPECT_EQ(summary.newlines, 100);
  EXPECT_FALSE(summary.has_nul);
  ASSERT_GT(summary.segments.size(), 5u);
  std::string joined;
  int32_t expected_first = 0;
  for (const auto& s : summary.segments) {
    EXPECT_EQ(s.first_line, expected_first);
    EXPECT_EQ(s.text.back(), '\n');
    EXPECT_EQ(s.text.find("line " + std::to_string(s.first_line) + " "), 0u);
    EXPECT_LT(s.text.size(), 500u + 60u);
    joined += s.text;
    expected_first = s.last_line + 1;
  }
  EXPECT_EQ(joined, chunk);
  EXPECT_EQ(summary.segments.back().last_line, 99);
}

// A last line without a newline still belongs to a segment; a NUL makes the chunk binary (no segments).
TEST(TextAnalysis, PartialLastLineAndBinaryChunks) {
  auto summary = analyse_chunk("a\nb\nc");
  EXPECT_EQ(summary.newlines, 2);
  ASSERT_EQ(summary.segments.size(), 1u);
  EXPECT_EQ(summary.segments[0].first_line, 0);
  EXPECT_EQ(summary.segments[0].last_line, 2);
  auto binary = analyse_chunk(std::string("ab\0cd\n", 6));
  EXPECT_TRUE(binary.has_nul);
  EXPECT_TRUE(binary.segments.empty());
  EXPECT_EQ(analyse_chunk("\x01\x02\x03text\t\n").control_bytes, 3);
}

// Cutting a file into 64 KiB chunks after newlines and reassembling keeps every byte and the true line numbers.
TEST(TextAnalysis, ChunkedFileReassemblesWithFileLineNumbers) {
  std::string file;
  for (int i = 1; i <= 20000; ++i)
    file += "int function_" + std::to_string(i) + "(void) { return " + std::to_string(i) + "; }\n";
  file += "trailing line without newline";
  auto out = analyse_file(file, chunk_bytes);
  EXPECT_EQ(out.text, file);
  EXPECT_EQ(out.newlines, 20000);
  // Each segment starts with the function of its first line.
  size_t offset = 0;
  for (const auto& [first, last] : out.ranges) {
    if (first <= 20000) {
      EXPECT_EQ(file.find("int function_" + std::to_string(first) + "(", offset), offset) << first;
    }
    EXPECT_GE(last, first);
    offset = file.find('\n', file.find("function_" + std::to_string(last) + "(") + 1);
    offset = offset == std::string::npos ? file.size() : offset + 1;
  }
  EXPECT_EQ(out.ranges.back().second, 20001);
}

// chunk_cut sends up to the last newline, or everything at the end or when there is none.
TEST(TextAnalysis, ChunkCut) {
  EXPECT_EQ(chunk_cut("ab\ncd\nef", false), 6u);
  EXPECT_EQ(chunk_cut("ab\ncd\nef", true), 8u);
  EXPECT_EQ(chunk_cut("abcdef", false), 6u);
  EXPECT_EQ(chunk_cut("", false), 0u);
}

// Invalid UTF-8 becomes U+FFFD; valid text (including 4-byte characters) is unchanged.
TEST(TextAnalysis, TextIsMadeValidUtf8) {
  EXPECT_EQ(to_valid_utf8("plain"), "plain");
  EXPECT_EQ(to_valid_utf8("caf\xC3\xA9 \xF0\x9F\x98\x80"), "caf\xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(to_valid_utf8("a\xFF"
                          "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(to_valid_utf8("\xC3"), "\xEF\xBF\xBD");
  EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); // a surrogate
  EXPECT_TRUE(is_valid_utf8(to_valid_utf8("\xC0\xAF\xE0\x80\xAFz")));
}

// Binary: a NUL anywhere, or more than 10% control bytes in the first chunk.
TEST(TextAnalysis, BinaryDetection) {
  EXPECT_TRUE(looks_binary(true, 0, 100));
  EXPECT_TRUE(looks_binary(false, 11, 100));
  EXPECT_FALSE(looks_binary(false, 10, 100));
  EXPECT_FALSE(looks_binary(false, 0, 0));
}

// Languages by extension, by well-known name, and by shebang when the name says nothing.
TEST(TextAnalysis, LanguageDetection) {
  EXPECT_EQ(detect_language("src/main.cpp", ""), "C++");
  EXPECT_EQ(detect_language("lib/util.PY", ""), "Python");
  EXPECT_EQ(detect_language("web/app.tsx", ""), "TypeScript");
  EXPECT_EQ(detect_language("Makefile", ""), "Makefile");
  EXPECT_EQ(detect_language("dir/CMakeLists.txt", ""), "CMake");
  EXPECT_EQ(detect_language("bin/tool", "#!/usr/bin/env python3"), "Python");
  EXPECT_EQ(detect_language("bin/run", "#!/bin/bash -e"), "Shell");
  EXPECT_EQ(detect_language("bin/serve", "#!/usr/bin/env -S node --no-warnings"), "JavaScript");
  EXPECT_EQ(detect_language("notes", "just text"), "");
  EXPECT_EQ(detect_language("script.rb", "#!/usr/bin/env python"), "Ruby"); // the extension wins
}
