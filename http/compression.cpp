#include "http/compression.hpp"

#include "http/header_text.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <limits>

namespace troupe::http {

namespace {

/// The q-value of one element's parameters ("; q=0.5"): 1 when absent, -1 when malformed.
double q_value(std::string_view params) {
  double q = 1;
  while (!params.empty()) {
    auto semi = params.find(';');
    auto param = trim(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view{} : params.substr(semi + 1);
    if (param.size() >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
      auto value = param.substr(2);
      // qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
      if (value.empty() || value.size() > 5 || (value[0] != '0' && value[0] != '1'))
        return -1;
      if (value.size() > 1 && value[1] != '.')
        return -1;
      for (size_t i = 2; i < value.size(); ++i)
        if (value[i] < '0' || value[i] > '9')
          return -1;
      q = std::strtod(std::string{value}.c_str(), nullptr);
      if (q > 1)
        return -1;
    }
  }
  return q;
}

} // namespace

bool accepts_gzip(std::string_view field) {
  double gzip = -1, any = -1;
  while (!field.empty()) {
    auto comma = field.find(',');
    auto element = field.substr(0, comma);
    field = comma == std::string_view::npos ? std::string_view{} : field.substr(comma + 1);
    auto semi = element.find(';');
    auto coding = trim(element.substr(0, semi));
    auto q = q_value(semi == std::string_view::npos ? std::string_view{} : element.substr(semi + 1));
    if (q < 0)
      continue;
    if (iequals(coding, "gzip") || iequals(coding, "x-gzip"))
      gzip = gzip == 0 ? 0 : q == 0 ? 0 : std::max(gzip, q); // named twice: a refusal wins
    else if (coding == "*")
      any = std::max(any, q);
  }
  return gzip >= 0 ? gzip > 0 : any > 0;
}

bool compressible_type(std::string_view content_type) {
  auto type = trim(content_type.substr(0, content_type.find(';')));
  if (type.size() >= 5 && iequals(type.substr(0, 5), "text/"))
    return !iequals(type, "text/event-stream");
  for (std::string_view t : {"application/json", "application/problem+json", "application/javascript",
                             "application/xml", "image/svg+xml", "application/x-ndjson"})
    if (iequals(type, t))
      return true;
  return false;
}

std::optional<std::string> gzip_compress(std::string_view body, int level) {
  if (body.size() > std::numeric_limits<uInt>::max() / 2)
    return std::nullopt; // zlib counts one call's bytes in 32 bits
  // Allocated before the stream, so that a bad_alloc leaks nothing: zlib's bound, plus the gzip header and trailer
  // (18 bytes) instead of zlib's (6), with room to spare; checked against deflateBound below.
  std::string out;
  out.resize(compressBound(static_cast<uLong>(body.size())) + 32);
  z_stream zs{};
  // windowBits 15 + 16: a gzip header and trailer; memLevel 8 (zlib's default).
  if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return std::nullopt;
  if (auto bound = deflateBound(&zs, static_cast<uLong>(body.size())); bound > out.size()) {
    deflateEnd(&zs);
    return std::nullopt;
  }
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  zs.avail_in = static_cast<uInt>(body.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  auto result = deflate(&zs, Z_FINISH); // deflateBound leaves room for it all in one call
  auto written = zs.total_out;
  deflateEnd(&zs);
  if (result != Z_STREAM_END)
    return std::nullopt;
  out.resize(written);
  return out;
}

} // namespace troupe::http
