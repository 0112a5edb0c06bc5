// POST /v1/embeddings end to end (issue 16 item 6): the real binary in front of the mock upstream, PostgreSQL
// started by the harness. Each input is cached on its own, per user, model and dimensions: a batch asks the
// upstream only for the inputs the cache lacks and gets its answer back in the request's order; one entry serves
// both encodings; the call is metered like a chat (a ledger row with the upstream's tokens and their cost).

#include "tests/integration/harness.hpp"
#include "tests/persistence/scratch_database.hpp"
#include "tests/tools/mock_upstream_harness.hpp"
#include "tools/mock-upstream/embeddings.hpp"

#include "config/hashing.hpp"

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <cstring>
#include <memory>
#include <thread>

namespace troupe::testing {
namespace {

using namespace std::chrono_literals;

// mock-emb at 0.02 USD per million input tokens: 20000 pico-dollars a token.
constexpr const char* prices = R"({"mock-emb":{"input_per_mtok":0.02,"output_per_mtok":0}})";

class Embeddings : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_TRUE(db_.available()) << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)"; }

  scratch_database db_;
  mock_upstream_process mock;
  std::unique_ptr<troupe_process> troupe;
  std::string email = "emb" + std::to_string(::getpid()) + "-"
                      + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + "@example.com";
  std::string token;

  void start(const std::string& upstreams = "", std::vector<std::string> sets = {}) {
    troupe_process::options opts;
    opts.env["TROUPE_DATABASE_URL"] = db_.url();
    opts.env["TROUPE_UPSTREAMS"] =
      upstreams.empty() ? R"([{"name":"a","base_url":")" + mock.base_url() + R"(/v1","models":["mock-emb"]}])"
                        : upstreams;
    opts.env["TROUPE_PRICES"] = prices;
    opts.args = {"--set", "retry.base_ms=1", "--set", "limits.generate_burst=1000", "--set",
                 "quota.free_per_day=100000"};
    for (const auto& set : sets)
      opts.args.insert(opts.args.end(), {"--set", set});
    troupe = std::make_unique<troupe_process>(opts);
    token = json_string(sign_up(*troupe, email), "access_token");
    ASSERT_FALSE(token.empty());
  }

  http_result embed(const std::string& body, const std::string& credential = "",
                    std::vector<std::string> headers = {}) {
    headers.push_back("Authorization: Bearer " + (credential.empty() ? token : credential));
    headers.push_back("Content-Type: application/json");
    return http({"POST", troupe->url("/v1/embeddings"), body, headers, 20000});
  }

  int64_t mock_inputs() {
    return parse_json(http_get(mock.base_url() + "/mock/stats").body)["embedding_inputs"].GetInt64();
  }

  /// The inputs of the latest request the mock received, as JSON texts.
  std::vector<std::string> last_inputs() {
    auto seen = parse_json(http_get(mock.base_url() + "/mock/last_request").body);
    std::vector<std::string> out;
    for (const auto& input : seen["input"].GetArray())
      out.push_back(input.IsString() ? "\"" + std::string(input.GetString()) + "\"" : "<tokens>");
    return out;
  }

  /// What the mock gives the input with this JSON text: the vector every answer must carry for it.
  static std::vector<float> expected(const std::string& input_json, int64_t dimensions = 8) {
    return mock::mock_vector(input_json, dimensions);
  }

  /// The vectors of an answer, in its order, decoded from numbers or base64; checks each `index`.
  static std::vector<std::vector<float>> vectors(const std::string& body) {
    auto doc = parse_json(body);
    std::vector<std::vector<float>> out;
    EXPECT_TRUE(doc.IsObject() && doc["data"].IsArray()) << body;
    if (!doc.IsObject() || !doc["data"].IsArray())
      return out;
    for (rapidjson::SizeType i = 0; i < doc["data"].Size(); ++i) {
      const auto& item = doc["data"][i];
      EXPECT_EQ(item["index"].GetUint(), i);
      EXPECT_EQ(std::string(item["object"].GetString()), "embedding");
      std::vector<float> v;
      if (item["embedding"].IsString()) {
        std::string bytes;
        EXPECT_TRUE(base64_decode(item["embedding"].GetString(), bytes));
        v.resize(bytes.size() / sizeof(float));
        std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
      } else {
        for (const auto& x : item["embedding"].GetArray())
          v.push_back(static_cast<float>(x.GetDouble()));
      }
      out.push_back(std::move(v));
    }
    return out;
  }

  struct ledger_row {
    std::string model, cost_usd, outcome;
    int64_t prompt_tokens = 0, completion_tokens = 0;
  };

  /// The test user's ledger rows, oldest first, once there are at least `n` (up to 15 s).
  std::vector<ledger_row> ledger(size_t n) {
    pqxx::connection db{db_.url()};
    std::vector<ledger_row> rows;
    for (int i = 0; i < 1500; ++i) {
      rows.clear();
      pqxx::work tx{db};
      for (const auto& r : tx.exec("SELECT e.model, e.cost_usd::text, e.outcome, e.prompt_tokens, "
                                   "e.completion_tokens FROM usage_events e JOIN users u ON u.id = e.user_id "
                                   "WHERE u.email = " + tx.quote(email) + " ORDER BY e.created_at, e.id"))
        rows.push_back({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                        r[3].as<int64_t>(), r[4].as<int64_t>()});
      if (rows.size() >= n)
        break;
      std::this_thread::sleep_for(10ms);
    }
    return rows;
  }
};

// A batch in both encodings: the vectors are the upstream's, in the request's order; the call is metered.
TEST_F(Embeddings, AreProxiedInOrderAndMetered) {
  start();
  auto res = embed(R"({"model":"mock-emb","input":["alpha","beta gamma","delta"],"encoding_format":"float"})");
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.header("x-cache"), "MISS");
  EXPECT_EQ(res.header("x-troupe-cached-inputs"), "0");
  EXPECT_EQ(res.header("x-troupe-upstream"), "a");
  auto got = vectors(res.body);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], expected("\"alpha\""));
  EXPECT_EQ(got[1], expected("\"beta gamma\""));
  EXPECT_EQ(got[2], expected("\"delta\""));
  auto doc = parse_json(res.body);
  EXPECT_EQ(std::string(doc["object"].GetString()), "list");
  EXPECT_EQ(std::string(doc["model"].GetString()), "mock-emb");
  // The mock counts ceil(bytes / 4) a string: 2 + 3 + 2.
  EXPECT_EQ(doc["usage"]["prompt_tokens"].GetInt64(), 7);
  EXPECT_EQ(doc["usage"]["total_tokens"].GetInt64(), 7);
  // The upstream was asked for base64, whatever the client asked for.
  auto seen = parse_json(http_get(mock.base_url() + "/mock/last_request").body);
  EXPECT_EQ(std::string(seen["encoding_format"].GetString()), "base64");

  auto rows = ledger(1);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].model, "mock-emb");
  EXPECT_EQ(rows[0].prompt_tokens, 7);
  EXPECT_EQ(rows[0].completion_tokens, 0);
  EXPECT_EQ(rows[0].outcome, "complete");
  EXPECT_EQ(rows[0].cost_usd, "0.000000140000"); // 7 x 0.02 micro-dollars

  // Token ids and dimensions pass through; base64 comes back as base64.
  auto tokens = embed(R"({"model":"mock-emb","input":[[1,2,3],[4]],"dimensions":3,"encoding_format":"base64"})");
  ASSERT_EQ(tokens.status, 200) << tokens.body;
  auto tv = vectors(tokens.body);
  ASSERT_EQ(tv.size(), 2u);
  EXPECT_EQ(tv[0], expected("[1,2,3]", 3));
  EXPECT_EQ(tv[1], expected("[4]", 3));
  EXPECT_TRUE(parse_json(tokens.body)["data"][0]["embedding"].IsString());
}

// The cache works per input: a later batch asks the upstream only for what it has not seen, repeated inputs once,
// and gets every vector back where it asked for it. A batch seen entirely is a HIT and costs nothing.
TEST_F(Embeddings, ABatchAsksTheUpstreamOnlyForTheInputsTheCacheLacks) {
  start();
  ASSERT_EQ(embed(R"({"model":"mock-emb","input":["one","two"]})").status, 200);
  EXPECT_EQ(mock_inputs(), 2);

  auto mixed = embed(R"({"model":"mock-emb","input":["two","three","one","three"]})");
  ASSERT_EQ(mixed.status, 200) << mixed.body;
  EXPECT_EQ(mixed.header("x-cache"), "MISS");
  EXPECT_EQ(mixed.header("x-troupe-cached-inputs"), "2");
  EXPECT_EQ(last_inputs(), std::vector<std::string>{"\"three\""});
  EXPECT_EQ(mock_inputs(), 3);
  auto got = vectors(mixed.body);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0], expected("\"two\""));
  EXPECT_EQ(got[1], expected("\"three\""));
  EXPECT_EQ(got[2], expected("\"one\""));
  EXPECT_EQ(got[3], expected("\"three\""));
  // The usage is what the upstream counted: "three" only.
  EXPECT_EQ(parse_json(mixed.body)["usage"]["prompt_tokens"].GetInt64(), 2);

  // Everything seen, in another order and the other encoding: no upstream call, nothing spent.
  auto hit = embed(R"({"model":"mock-emb","input":["three","one","two"],"encoding_format":"base64"})");
  ASSERT_EQ(hit.status, 200) << hit.body;
  EXPECT_EQ(hit.header("x-cache"), "HIT");
  EXPECT_EQ(hit.header("x-troupe-cached-inputs"), "3");
  EXPECT_EQ(hit.header("x-troupe-upstream"), "");
  EXPECT_EQ(mock_inputs(), 3);
  auto hv = vectors(hit.body);
  ASSERT_EQ(hv.size(), 3u);
  EXPECT_EQ(hv[0], expected("\"three\""));
  EXPECT_EQ(hv[1], expected("\"one\""));
  EXPECT_EQ(hv[2], expected("\"two\""));
  EXPECT_EQ(parse_json(hit.body)["usage"]["prompt_tokens"].GetInt64(), 0);
  auto rows = ledger(2);
  EXPECT_EQ(rows.size(), 2u); // the hit left no row

  // Other dimensions are other vectors; another user has a cache of their own; X-Troupe-Cache: off skips it.
  ASSERT_EQ(embed(R"({"model":"mock-emb","input":"one","dimensions":4})").header("x-cache"), "MISS");
  EXPECT_EQ(embed(R"({"model":"mock-emb","input":"one"})", "", {"X-Troupe-Cache: off"}).header("x-cache"), "MISS");
  auto other = json_string(sign_up(*troupe, "other-" + email), "access_token");
  auto theirs = embed(R"({"model":"mock-emb","input":"one"})", other);
  ASSERT_EQ(theirs.status, 200) << theirs.body;
  EXPECT_EQ(theirs.header("x-cache"), "MISS");
  EXPECT_EQ(mock_inputs(), 6);
  EXPECT_EQ(embed(R"({"model":"mock-emb","input":"one"})", other).header("x-cache"), "HIT");
}

// What the upstream answers wrongly is never cached: a malformed answer fails over to the next upstream, whose
// vectors are the ones kept; bad requests are refused before anything is reserved or asked.
TEST_F(Embeddings, OnlyCheckedAnswersAreCachedAndBadRequestsAreRefused) {
  mock_upstream_process broken{{"--malformed", "json"}};
  start(R"([{"name":"broken","base_url":")" + broken.base_url()
        + R"(/v1","models":["mock-emb"],"priority":0},{"name":"a","base_url":")" + mock.base_url()
        + R"(/v1","models":["mock-emb"],"priority":1}])");
  auto res = embed(R"({"model":"mock-emb","input":["x","y"]})");
  ASSERT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(res.header("x-troupe-upstream"), "a");
  auto got = vectors(res.body);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[1], expected("\"y\""));
  EXPECT_EQ(embed(R"({"model":"mock-emb","input":["y","x"]})").header("x-cache"), "HIT");

  for (const auto* bad : {R"({"model":"mock-emb","input":""})", R"({"model":"mock-emb","input":[]})",
                          R"({"model":"mock-emb","input":"x","encoding_format":"int8"})",
                          R"({"model":"mock-emb","input":"x","extra":1})", R"({"input":"x"})"}) {
    auto refused = embed(bad);
    EXPECT_EQ(refused.status, 400) << bad << " -> " << refused.body;
    EXPECT_EQ(parse_json(refused.body)["error"]["type"].GetString(), std::string("invalid_request_error"))
      << refused.body;
  }
  auto unknown = embed(R"({"model":"no-such-model","input":"x"})");
  EXPECT_EQ(unknown.status, 404) << unknown.body;
  EXPECT_EQ(mock_inputs(), 2);
  EXPECT_EQ(embed(R"({"model":"mock-emb","input":"x"})", "trp_wrong").status, 401);
}

// A small request may not ask for a huge answer: one input repeated, or many dimensions, is refused with 400 once
// the answer would exceed upstream.max_response_bytes: before anything is spent when its dimensions say so, else
// before it is written.
TEST_F(Embeddings, AnAnswerLargerThanTheLimitIsRefused) {
  start("", {"upstream.max_response_bytes=4096"});
  auto too_many_dimensions = embed(R"({"model":"mock-emb","input":["a","b"],"dimensions":200})");
  EXPECT_EQ(too_many_dimensions.status, 400) << too_many_dimensions.body;
  EXPECT_NE(too_many_dimensions.body.find("upstream.max_response_bytes"), std::string::npos);
  EXPECT_EQ(mock_inputs(), 0);
  std::string repeated = R"({"model":"mock-emb","input":[)";
  for (int i = 0; i < 100; ++i)
    repeated += i > 0 ? R"(,"same")" : R"("same")";
  auto amplified = embed(repeated + "]}");
  EXPECT_EQ(amplified.status, 400) << amplified.body.substr(0, 300);
  EXPECT_EQ(mock_inputs(), 1); // asked once: the one distinct input
  // Within the limit, the same batch in the compact encoding is answered.
  auto fits = embed(R"({"model":"mock-emb","input":["same","same","same"],"encoding_format":"base64"})");
  EXPECT_EQ(fits.status, 200) << fits.body;
  EXPECT_EQ(fits.header("x-cache"), "HIT");
}

} // namespace
} // namespace troupe::testing
