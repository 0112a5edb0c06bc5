// See json.hpp.

#include "config/json.hpp"

#include "config/utf8.hpp"

#include <rapidjson/encodedstream.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <algorithm>
#include <charconv>
#include <clocale>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <locale.h>
#include <memory>
#include <set>
#include <vector>

namespace troupe::json {

namespace {

/// Iterative (constant stack). UTF-8 is checked before, over the whole text (first_invalid_utf8: about twice as
/// fast as kParseValidateEncodingFlag's per-character check on text-heavy bodies). Numbers come as text
/// (kParseNumbersAsStringsFlag, after RapidJSON checked their grammar) and are converted here, correctly rounded:
/// RapidJSON 1.1's default conversion may be a unit off in the last place, so a number written out and read again
/// drifted (found by the json_body fuzzer: 99...977 read as 1.0000000000000002e72, that text as
/// 1.0000000000000004e72), and its full-precision mode reads out of bounds on inputs such as 0.000...1e-320. No
/// comments, NaN, trailing commas or other extensions.
constexpr unsigned read_flags = rapidjson::kParseIterativeFlag | rapidjson::kParseNumbersAsStringsFlag;
static_assert(read_flags & rapidjson::kParseIterativeFlag, "a recursive parse overflows the stack on deep input");

/// The offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates,
/// nothing beyond U+10FFFF), or npos. Eight bytes at a time while they are ASCII, skipping straight to the first
/// byte that is not.
size_t first_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    if (i + 8 <= n) {
      uint64_t word;
      std::memcpy(&word, s + i, 8);
      const uint64_t high_bits = word & 0x8080808080808080ull;
      if (high_bits == 0) {
        i += 8;
        continue;
      }
      // Straight to the first byte with its high bit set (the lowest address is the lowest byte: little-endian).
      static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the ASCII skip reads words little-endian");
      i += static_cast<size_t>(__builtin_ctzll(high_bits)) / 8;
    }
    const auto length = config::utf8_sequence(text, i);
    if (length == 0)
      return i;
    i += length;
  }
  return std::string_view::npos;
}

/// Objects with up to this many keys are searched linearly for a repeated key (the common case: a handful of keys,
/// no allocation); larger ones get an ordered index, so an object of n keys costs O(n log n), never O(n^2).
constexpr size_t linear_key_search = 32;

/// Appends `text` to `out` unless `out` would exceed max_param_bytes; then cuts at a UTF-8 boundary and adds "...".
/// Returns false once cut.
bool append_capped(std::string& out, std::string_view text) {
  if (out.size() + text.size() <= max_param_bytes) {
    out.append(text.data(), text.size());
    return true;
  }
  size_t room = max_param_bytes > out.size() ? max_param_bytes - out.size() : 0;
  // Back up over continuation bytes so that the cut never splits a character.
  while (room > 0 && room < text.size() && (static_cast<unsigned char>(text[room]) & 0xC0) == 0x80)
    --room;
  out.append(text.data(), room);
  out += "...";
  return false;
}

/// The handler's methods are kept out of line: inlined into RapidJSON's string parser they made it too large for
/// the compiler to inline the per-character work, which cost ~60% on text-heavy bodies (measured, bench/json_bench).
#define TROUPE_SAX_EVENT [[gnu::noinline]]

/// A SAX filter in front of a rapidjson::Document: it counts depth, remembers the keys of every open object and
/// tracks where the reader is (for `param`), and hands every event on to the document when it is acceptable. The
/// first refusal is kept in `failure` and stops the reader (returning false makes RapidJSON end with
/// kParseErrorTermination at the current offset).
class guarded_builder {
public:
  guarded_builder(rapidjson::Document& doc, size_t max_depth) : doc_(doc), max_depth_(max_depth) {
    frames_.reserve(max_depth_ < 16 ? max_depth_ : 16);
  }
  guarded_builder(const guarded_builder&) = delete;
  guarded_builder& operator=(const guarded_builder&) = delete;

  std::optional<parse_error> failure;

  TROUPE_SAX_EVENT bool Null() {
    element();
    return doc_.Null();
  }
  TROUPE_SAX_EVENT bool Bool(bool b) {
    element();
    return doc_.Bool(b);
  }
  TROUPE_SAX_EVENT bool Int(int i) {
    element();
    return doc_.Int(i);
  }
  TROUPE_SAX_EVENT bool Uint(unsigned i) {
    element();
    return doc_.Uint(i);
  }
  TROUPE_SAX_EVENT bool Int64(int64_t i) {
    element();
    return doc_.Int64(i);
  }
  TROUPE_SAX_EVENT bool Uint64(uint64_t i) {
    element();
    return doc_.Uint64(i);
  }
  TROUPE_SAX_EVENT bool Double(double d) {
    element();
    return doc_.Double(d);
  }
  /// A number's text, its grammar checked by RapidJSON: an integer that fits int64 or uint64 stays one, anything
  /// else is the nearest double; a magnitude beyond double's range is refused as RapidJSON would refuse it.
  TROUPE_SAX_EVENT bool RawNumber(const char* str, rapidjson::SizeType length, bool) {
    element();
    const char* end = str + length;
    if (std::find_if(str, end, [](char c) { return c == '.' || c == 'e' || c == 'E'; }) == end) {
      if (*str == '-') {
        int64_t i = 0;
        if (auto r = std::from_chars(str, end, i); r.ec == std::errc{} && r.ptr == end)
          return doc_.Int64(i);
      } else {
        uint64_t u = 0;
        if (auto r = std::from_chars(str, end, u); r.ec == std::errc{} && r.ptr == end)
          return doc_.Uint64(u);
      }
    }
    double d = 0;
    auto r = std::from_chars(str, end, d);
    if (r.ec == std::errc::result_out_of_range) {
      // Too small (it becomes 0 or a subnormal, as in RapidJSON) or too large (refused): strtod tells which. The
      // text is NUL-terminated by the reader; the "C" locale keeps '.' the decimal point whatever the process uses.
      static const locale_t c_locale = ::newlocale(LC_ALL_MASK, "C", nullptr);
      d = ::strtod_l(str, nullptr, c_locale);
      if (std::isinf(d)) {
        fail(parse_errc::syntax, rapidjson::GetParseError_En(rapidjson::kParseErrorNumberTooBig));
        failure->reason.pop_back(); // the final period (RapidJSON reports the offset of the number's first byte)
        return false;
      }
    } else if (r.ec != std::errc{} || r.ptr != end) {
      fail(parse_errc::syntax, "Invalid number"); // not reached: RapidJSON checked the grammar
      return false;
    }
    return doc_.Double(d);
  }
  TROUPE_SAX_EVENT bool String(const char* str, rapidjson::SizeType length, bool copy) {
    element();
    return utf8(std::string_view{str, length}) && doc_.String(str, length, copy);
  }
  TROUPE_SAX_EVENT bool StartObject() { return open(false) && doc_.StartObject(); }
  TROUPE_SAX_EVENT bool Key(const char* str, rapidjson::SizeType length, bool copy) {
    return remember_key(std::string_view{str, length}) && utf8(std::string_view{str, length})
           && doc_.Key(str, length, copy);
  }
  TROUPE_SAX_EVENT bool EndObject(rapidjson::SizeType members) {
    close();
    return doc_.EndObject(members);
  }
  TROUPE_SAX_EVENT bool StartArray() { return open(true) && doc_.StartArray(); }
  TROUPE_SAX_EVENT bool EndArray(rapidjson::SizeType elements) {
    close();
    return doc_.EndArray(elements);
  }

private:
  struct key_ref {
    size_t offset; // in text_
    size_t length;
  };

  /// Orders key indices by their text (which lives in text_ and may move as it grows: always re-read).
  struct key_less {
    const guarded_builder* owner;
    bool operator()(size_t a, size_t b) const { return owner->key(a) < owner->key(b); }
  };
  using key_index = std::set<size_t, key_less>;

  /// One open array or object.
  struct frame {
    bool array = false;
    size_t elements = 0;              // arrays: values started so far (the current one is elements - 1)
    size_t first_key = 0;             // objects: index in keys_ of this object's first key
    size_t current = 0;               // objects: index in keys_ of the key of the current member
    bool has_key = false;             // objects: a key has been seen
    std::unique_ptr<key_index> index; // objects past linear_key_search keys
  };

  std::string_view key(size_t i) const { return std::string_view{text_.data() + keys_[i].offset, keys_[i].length}; }

  /// A value starts: inside an array it is the next element.
  void element() {
    if (!frames_.empty() && frames_.back().array)
      ++frames_.back().elements;
  }

  bool open(bool array) {
    element();
    if (frames_.size() >= max_depth_) {
      fail(parse_errc::too_deep, "arrays and objects nest deeper than " + std::to_string(max_depth_)
                                   + (max_depth_ == 1 ? " level" : " levels"));
      return false;
    }
    frame f;
    f.array = array;
    f.first_key = keys_.size();
    frames_.push_back(std::move(f));
    return true;
  }

  void close() {
    // The reader guarantees balance: every End* follows its Start* (else it stops with a syntax error first).
    auto& f = frames_.back();
    if (!f.array && f.first_key < keys_.size()) {
      text_.resize(keys_[f.first_key].offset);
      keys_.resize(f.first_key);
    }
    frames_.pop_back();
  }

  /// RapidJSON 1.1 checks the raw bytes of strings and pairs \uD800-\uDBFF escapes with a low surrogate, but
  /// turns a lone \uDC00-\uDFFF escape into the three bytes of a surrogate (ED B0-BF xx), which are not UTF-8 and
  /// which PostgreSQL, upstreams and our own reader refuse. Only an escape can produce them, and they all start with
  /// 0xED followed by 0xA0 or more (0xED 0x80-0x9F is U+D000-U+D7FF).
  bool utf8(std::string_view text) {
    for (auto at = text.find('\xED'); at != std::string_view::npos; at = text.find('\xED', at + 1))
      if (at + 1 < text.size() && static_cast<unsigned char>(text[at + 1]) >= 0xA0) {
        fail(parse_errc::invalid_utf8, "a string escapes a lone surrogate (\\uDC00 to \\uDFFF), which is not UTF-8");
        return false;
      }
    return true;
  }

  bool remember_key(std::string_view name) {
    auto& f = frames_.back(); // a key only comes inside an object
    const size_t i = keys_.size();
    keys_.push_back(key_ref{text_.size(), name.size()});
    text_.append(name.data(), name.size());
    f.current = i;
    f.has_key = true;
    bool repeated = false;
    if (f.index) {
      repeated = !f.index->insert(i).second;
    } else {
      for (size_t j = f.first_key; j < i && !repeated; ++j)
        repeated =
          keys_[j].length == name.size() && std::memcmp(text_.data() + keys_[j].offset, name.data(), name.size()) == 0;
      if (!repeated && i + 1 - f.first_key > linear_key_search) {
        f.index = std::make_unique<key_index>(key_less{this});
        for (size_t j = f.first_key; j <= i; ++j)
          f.index->insert(j);
      }
    }
    if (repeated) {
      std::string shown;
      append_capped(shown, name);
      fail(parse_errc::duplicate_key, "the key \"" + shown + "\" appears twice in one object");
      return false;
    }
    return true;
  }

  void fail(parse_errc code, std::string reason) {
    parse_error e;
    e.code = code;
    e.reason = std::move(reason);
    e.param = path();
    failure = std::move(e);
  }

  /// The path of the current value: each open container's current member or element, outermost first.
  std::string path() const {
    std::string out;
    for (const auto& f : frames_) {
      bool whole = true;
      if (f.array) {
        whole = append_capped(out, "[" + std::to_string(f.elements > 0 ? f.elements - 1 : 0) + "]");
      } else if (f.has_key) {
        if (!out.empty())
          whole = append_capped(out, ".");
        whole = whole && append_capped(out, key(f.current));
      }
      if (!whole)
        break;
    }
    return out;
  }

  rapidjson::Document& doc_;
  const size_t max_depth_;
  std::vector<frame> frames_;
  std::vector<key_ref> keys_; // the keys of every open object, outermost first (a stack, like frames_)
  std::string text_;          // their unescaped bytes
};

#undef TROUPE_SAX_EVENT

} // namespace

const char* to_string(parse_errc code) {
  switch (code) {
  case parse_errc::syntax:
    return "syntax";
  case parse_errc::invalid_utf8:
    return "invalid_utf8";
  case parse_errc::too_deep:
    return "too_deep";
  case parse_errc::duplicate_key:
    return "duplicate_key";
  }
  return "syntax";
}

parse_result parse(std::string_view text, size_t max_depth) {
  parse_result result;
  // RapidJSON reads a NUL byte as the end of the text, so "{}\0<anything>" would be accepted as {} while every
  // other parser refuses it (found by the json_body fuzzer: regression-nul-ends-the-text.bin). JSON has no place
  // for a raw NUL (not whitespace, and unescaped control characters are not allowed in strings): refused wherever
  // it is, or the first invalid UTF-8 byte if that comes earlier.
  const size_t nul = text.find('\0');
  const size_t bad = first_invalid_utf8(text.substr(0, nul));
  if (bad == std::string_view::npos && nul != std::string_view::npos) {
    result.error_ = parse_error{parse_errc::syntax, "a NUL byte, which JSON does not allow anywhere", nul, ""};
    return result;
  }
  if (bad != std::string_view::npos) {
    static const char hex[] = "0123456789ABCDEF";
    const auto byte = static_cast<unsigned char>(text[bad]);
    std::string reason = "the byte 0x";
    reason += hex[byte >> 4];
    reason += hex[byte & 0xF];
    reason += " is not part of a valid UTF-8 sequence";
    result.error_ = parse_error{parse_errc::invalid_utf8, std::move(reason), bad, ""};
    return result;
  }
  guarded_builder builder{result.doc_, max_depth};
  rapidjson::ParseResult outcome;
  // Populate hands the document to the generator and, on success, moves the one value built on its stack into it.
  auto generate = [&](rapidjson::Document&) {
    rapidjson::MemoryStream bytes{text.data(), text.size()};
    rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> in{bytes}; // skips a UTF-8 BOM
    rapidjson::Reader reader;
    outcome = reader.Parse<read_flags>(in, builder);
    return !outcome.IsError();
  };
  result.doc_.Populate(generate);
  if (!outcome.IsError())
    return result;
  parse_error e;
  if (outcome.Code() == rapidjson::kParseErrorTermination && builder.failure) {
    e = std::move(*builder.failure);
  } else {
    e.code = parse_errc::syntax;
    e.reason = rapidjson::GetParseError_En(outcome.Code());
    if (!e.reason.empty() && e.reason.back() == '.')
      e.reason.pop_back();
  }
  e.offset = outcome.Offset();
  result.doc_.SetNull();
  result.error_ = std::move(e);
  return result;
}

} // namespace troupe::json
