#pragma once
// What processing learns from a file's bytes: pure functions, run by the file-chunk processors
// (actors/processing.hpp) on chunks of about 64 KiB.
//
// A file is read in chunks cut just after a newline (so a chunk never starts or ends inside a line, unless a line
// is longer than a chunk). Each chunk is analysed on its own: its newlines, whether it holds NUL bytes, how many
// control bytes, and its text cut into segments of about `segment_bytes` at line boundaries. Line numbers in a
// chunk's summary are relative (0 = the chunk's first line); the reader turns them into file line numbers by
// adding the newlines of the chunks before (line of byte b = 1 + newlines before b).

#include "actors/messages.hpp"

#include <string>
#include <string_view>

namespace troupe {

/// The size processors analyse at once, and the size of a text segment (issue 8: 64 KiB chunks, ~2 KiB segments).
constexpr size_t chunk_bytes = 64 * 1024;
constexpr size_t segment_bytes = 2 * 1024;

/// Analyses one chunk. Segments are omitted when the chunk holds a NUL byte (binary); their text is valid UTF-8
/// (invalid bytes become U+FFFD).
chunk_summary analyse_chunk(std::string_view chunk, size_t segment_target = segment_bytes);

/// How much of `buffer` to send as the next chunk: up to and including its last newline, or all of it when it
/// holds none or `at_end` (the rest of the file) is true.
size_t chunk_cut(std::string_view buffer, bool at_end);

/// `text` with every invalid UTF-8 sequence replaced by U+FFFD.
std::string to_valid_utf8(std::string_view text);

/// Whether a file is binary: it has a NUL byte anywhere, or more than 10% of its first chunk are control bytes
/// other than tab, newline, carriage return, form feed, vertical tab and escape.
bool looks_binary(bool any_nul, int64_t first_chunk_control_bytes, size_t first_chunk_size);

/// The language of a file by its name (extension or well-known name such as Makefile) or, failing that, by the
/// interpreter of its shebang line ("#!/usr/bin/env python3" -> Python); "" when unknown.
std::string detect_language(std::string_view path, std::string_view first_line);

} // namespace troupe
