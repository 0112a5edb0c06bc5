// Response compression (http/compression.hpp and server_state::compress): which Accept-Encoding values take gzip,
// which types are compressed, and, over a real server on loopback, that a large JSON answer is gzip (Vary, a weak
// ETag that still revalidates, a 304 with the same Vary and ETag), that small or too large answers, refusing
// clients and streams are not, and that the body inflates back to the bytes the handler sent.

#include "http/compression.hpp"

#include "tests/http/test_server.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>

namespace troupe::http {
namespace {

using testing::header_of;
using testing::raw_client;

std::string gunzip(const std::string& data) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK)
    return {};
  std::string out(1 << 20, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  auto result = inflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  inflateEnd(&zs);
  return result == Z_STREAM_END ? out : std::string{};
}

TEST(Compression, AcceptEncodingValues) {
  EXPECT_TRUE(accepts_gzip("gzip"));
  EXPECT_TRUE(accepts_gzip("deflate, gzip;q=0.5, br"));
  EXPECT_TRUE(accepts_gzip("GZIP"));
  EXPECT_TRUE(accepts_gzip("x-gzip"));
  EXPECT_TRUE(accepts_gzip("*"));
  EXPECT_TRUE(accepts_gzip("br;q=1.0, *;q=0.1"));
  EXPECT_FALSE(accepts_gzip(""));
  EXPECT_FALSE(accepts_gzip("identity"));
  EXPECT_FALSE(accepts_gzip("br, deflate"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0.000, *;q=1")) << "naming gzip overrides *";
  EXPECT_FALSE(accepts_gzip("*;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip, gzip;q=0")) << "a refusal wins";
  EXPECT_FALSE(accepts_gzip("gzip;q=2")) << "a malformed q-value ignores the element";
  EXPECT_FALSE(accepts_gzip("gzip;q=abc"));
  EXPECT_FALSE(accepts_gzip("gzipped"));
}

TEST(Compression, CompressibleTypes) {
  EXPECT_TRUE(compressible_type("application/json"));
  EXPECT_TRUE(compressible_type("application/json; charset=utf-8"));
  EXPECT_TRUE(compressible_type("text/html; charset=utf-8"));
  EXPECT_TRUE(compressible_type("text/plain; version=0.0.4"));
  EXPECT_TRUE(compressible_type("text/csv"));
  EXPECT_TRUE(compressible_type("image/svg+xml"));
  EXPECT_FALSE(compressible_type("text/event-stream"));
  EXPECT_FALSE(compressible_type("image/png"));
  EXPECT_FALSE(compressible_type("application/octet-stream"));
  EXPECT_FALSE(compressible_type("application/gzip"));
  EXPECT_FALSE(compressible_type(""));
}

TEST(Compression, GzipRoundTrips) {
  std::string body;
  for (int i = 0; i < 2000; ++i)
    body += "{\"index\":" + std::to_string(i) + ",\"text\":\"the same words again\"},";
  auto zipped = gzip_compress(body, 5);
  ASSERT_TRUE(zipped);
  EXPECT_LT(zipped->size(), body.size() / 5);
  EXPECT_EQ(gunzip(*zipped), body);
  EXPECT_EQ(gunzip(*gzip_compress("", 1)), "");
}

struct CompressedResponses : testing::server_fixture {
  std::string big_json() {
    std::string body = "[";
    for (int i = 0; i < 500; ++i)
      body += std::string(i ? "," : "") + "{\"n\":" + std::to_string(i) + ",\"word\":\"compressible\"}";
    return body + "]";
  }
  void SetUp() override {
    routes->add("GET", "/big", [this](const std::shared_ptr<responder>& r) {
      auto res = json_response(200, big_json());
      r->send(private_revalidated(res));
    });
    routes->add("GET", "/small", [](const std::shared_ptr<responder>& r) { r->send(json_response(200, "{\"a\":1}")); });
    routes->add("GET", "/png", [this](const std::shared_ptr<responder>& r) {
      r->send(response{200, big_json(), "image/png", {}});
    });
    routes->add("GET", "/events", [this](const std::shared_ptr<responder>& r) {
      auto stream = r->stream(response{200, "", "text/event-stream", {}});
      stream->write("data: " + big_json() + "\n\n");
      stream->end();
    });
    start();
  }
  std::string get(const std::string& path, const std::string& extra = "") {
    raw_client c{port};
    c.send("GET " + path + " HTTP/1.1\r\nHost: t\r\n" + extra + "Connection: close\r\n\r\n");
    return path == "/events" ? c.read_until("0\r\n\r\n") : c.read_response();
  }
  static std::string body_of(const std::string& response) { return response.substr(response.find("\r\n\r\n") + 4); }
};

TEST_F(CompressedResponses, LargeJsonIsGzipWhenAccepted) {
  auto zipped = get("/big", "Accept-Encoding: gzip, deflate\r\n");
  EXPECT_EQ(header_of(zipped, "Content-Encoding"), "gzip") << zipped.substr(0, 400);
  EXPECT_EQ(header_of(zipped, "Vary"), "Accept-Encoding");
  EXPECT_EQ(gunzip(body_of(zipped)), big_json());
  EXPECT_LT(body_of(zipped).size(), big_json().size() / 4);
  auto etag = header_of(zipped, "ETag");
  ASSERT_EQ(etag.rfind("W/\"", 0), 0u) << "a compressed body's ETag is weak: " << etag;
  // The weak tag still revalidates (If-None-Match compares weakly), gzip or not.
  auto again = get("/big", "Accept-Encoding: gzip\r\nIf-None-Match: " + etag + "\r\n");
  EXPECT_EQ(again.rfind("HTTP/1.1 304", 0), 0u) << again.substr(0, 200);
  // The 304 carries what the 200 would (RFC 9110 15.4.5): the weak tag and the Vary.
  EXPECT_EQ(header_of(again, "ETag"), etag);
  EXPECT_EQ(header_of(again, "Vary"), "Accept-Encoding");
  // Accept-Encoding lines are one list: a refusal on a second line counts.
  EXPECT_EQ(header_of(get("/big", "Accept-Encoding: br\r\nAccept-Encoding: gzip\r\n"), "Content-Encoding"), "gzip");
  EXPECT_EQ(header_of(get("/big", "Accept-Encoding: gzip\r\nAccept-Encoding: gzip;q=0\r\n"), "Content-Encoding"), "");

  auto plain = get("/big");
  EXPECT_EQ(header_of(plain, "Content-Encoding"), "");
  EXPECT_EQ(header_of(plain, "Vary"), "Accept-Encoding") << "caches must know the answer depends on it";
  EXPECT_EQ(body_of(plain), big_json());
  EXPECT_EQ(header_of(plain, "ETag").rfind("\"", 0), 0u) << "the identity body keeps its strong ETag";
  EXPECT_EQ(header_of(get("/big", "Accept-Encoding: gzip;q=0\r\n"), "Content-Encoding"), "");
}

TEST_F(CompressedResponses, SmallOtherTypesAndStreamsAreSentAsTheyAre) {
  auto small = get("/small", "Accept-Encoding: gzip\r\n");
  EXPECT_EQ(header_of(small, "Content-Encoding"), "");
  EXPECT_EQ(body_of(small), "{\"a\":1}");
  EXPECT_EQ(header_of(get("/png", "Accept-Encoding: gzip\r\n"), "Content-Encoding"), "");
  auto events = get("/events", "Accept-Encoding: gzip\r\n");
  EXPECT_EQ(header_of(events, "Content-Encoding"), "") << "an event stream is never compressed";
  EXPECT_NE(events.find("data: [{\"n\":0"), std::string::npos);
}

TEST_F(CompressedResponses, OffWhenConfiguredOffOrOverTheLargestSize) {
  srv->stop();
  settings.http.gzip = false;
  start();
  EXPECT_EQ(header_of(get("/big", "Accept-Encoding: gzip\r\n"), "Content-Encoding"), "");
  srv->stop();
  settings.http.gzip = true;
  settings.http.gzip_max_bytes = 1000; // /big is larger: sent as it is, on whatever thread answers
  start();
  auto plain = get("/big", "Accept-Encoding: gzip\r\n");
  EXPECT_EQ(header_of(plain, "Content-Encoding"), "");
  EXPECT_EQ(body_of(plain), big_json());
}

} // namespace
} // namespace troupe::http
