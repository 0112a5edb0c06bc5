// Usage metering end to end (issue 16): the real binary in front of the mock upstream, PostgreSQL started by the
// harness. Every upstream call leaves one row in the usage_events ledger with the upstream's own token counts and
// its cost at the configured prices; streams ask the upstream for usage whether or not the client did (and relay
// the usage chunk only to a client that asked); a client that leaves mid-stream still yields real numbers, because
// the upstream is read to its end; GET /api/usage reports the ledger by model, API key or day.

#include "tests/http/raw_client.hpp"
#include "tests/integration/harness.hpp"
#include "tests/persistence/scratch_database.hpp"
#include "tests/tools/mock_upstream_harness.hpp"

#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <algorithm>
#include <future>
#include <memory>
#include <random>
#include <thread>

namespace troupe::testing {
namespace {

using namespace std::chrono_literals;

// mock-1 at 0.15 / 0.60 USD per million tokens: 150000 and 600000 pico-dollars a token.
constexpr const char* long_answer = "[[mock chunks=20 drip_ms=50]] a long answer";
constexpr const char* prices = R"({"mock-1":{"input_per_mtok":0.15,"output_per_mtok":0.6}})";

struct ledger_row {
  std::string model, upstream, api_key_id, outcome, cost_usd;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  bool estimated = false;
};

class Usage : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_TRUE(db_.available()) << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)"; }

  scratch_database db_; // each test's own
  mock_upstream_process mock;
  std::unique_ptr<troupe_process> troupe;
  std::string email = "usage" + std::to_string(::getpid()) + "-"
                      + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + "@example.com";
  std::string token;

  void start(std::vector<std::string> sets = {}) {
    troupe_process::options opts;
    opts.env["TROUPE_DATABASE_URL"] = db_.url();
    opts.env["TROUPE_UPSTREAMS"] =
      R"([{"name":"a","base_url":")" + mock.base_url() + R"(/v1","models":["mock-1","mock-2"],"max_inflight":256}])";
    opts.env["TROUPE_PRICES"] = prices;
    opts.args = {"--set", "retry.base_ms=1", "--set", "limits.generate_burst=1000", "--set",
                 "quota.free_per_day=100000"};
    for (const auto& s : sets) {
      opts.args.push_back("--set");
      opts.args.push_back(s);
    }
    troupe = std::make_unique<troupe_process>(opts);
    token = json_string(sign_up(*troupe, email), "access_token");
    ASSERT_FALSE(token.empty());
  }

  http_result chat(const std::string& content, const std::string& extra = "", const std::string& credential = "") {
    return http({"POST", troupe->url("/v1/chat/completions"),
                 R"({"model":"mock-1","messages":[{"role":"user","content":")" + content + "\"}]" + extra + "}",
                 {"Authorization: Bearer " + (credential.empty() ? token : credential),
                  "Content-Type: application/json"},
                 20000});
  }

  http_result get(const std::string& path, const std::string& credential = "") {
    return http({"GET", troupe->url(path), "", {"Authorization: Bearer " + (credential.empty() ? token : credential)},
                 10000});
  }

  /// The ledger rows of the test's user, oldest first, once there are at least `n` (the writer batches within
  /// milliseconds; up to 15 s for a loaded machine).
  std::vector<ledger_row> ledger(size_t n) {
    pqxx::connection db{db_.url()};
    std::vector<ledger_row> rows;
    for (int i = 0; i < 1500; ++i) {
      rows.clear();
      pqxx::work tx{db};
      for (const auto& r : tx.exec("SELECT e.model, e.upstream, coalesce(e.api_key_id::text, ''), e.outcome, "
                                   "e.cost_usd::text, e.prompt_tokens, e.completion_tokens, e.estimated "
                                   "FROM usage_events e JOIN users u ON u.id = e.user_id WHERE u.email = "
                                   + tx.quote(email) + " ORDER BY e.created_at, e.id")) {
        ledger_row row{r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>(),
                       r[3].as<std::string>(), r[4].as<std::string>()};
        row.prompt_tokens = r[5].as<int64_t>();
        row.completion_tokens = r[6].as<int64_t>();
        row.estimated = r[7].as<bool>();
        rows.push_back(row);
      }
      if (rows.size() >= n)
        break;
      std::this_thread::sleep_for(10ms);
    }
    return rows;
  }

  /// The usage object of the usage chunk in an SSE body, or a null document when there is none.
  static rapidjson::Document usage_chunk(const std::string& body) {
    for (size_t at = body.find("data: {"); at != std::string::npos; at = body.find("data: {", at + 1)) {
      auto end = body.find("\n\n", at);
      auto chunk = parse_json(body.substr(at + 6, end - at - 6));
      if (chunk.IsObject() && chunk.HasMember("usage") && chunk["usage"].IsObject()) {
        rapidjson::Document usage;
        usage.CopyFrom(chunk["usage"], usage.GetAllocator());
        return usage;
      }
    }
    return rapidjson::Document{};
  }

  /// Starts a stream of about a second (20 chunks 50 ms apart) and leaves with a reset after its first event.
  void leave_after_the_first_event() {
    http::testing::raw_client c{troupe->port(), 10s};
    std::string body = R"({"model":"mock-1","messages":[{"role":"user","content":")" + std::string(long_answer)
                       + R"("}],"stream":true})";
    ASSERT_TRUE(c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + token
                       + "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size())
                       + "\r\n\r\n" + body));
    ASSERT_NE(c.read_until("\"delta\"").find("200 OK"), std::string::npos) << c.received();
    c.reset();
  }

  static std::string cost(int64_t prompt, int64_t completion) {
    auto pusd = prompt * 150000 + completion * 600000;
    auto fraction = std::to_string(pusd % 1000000000000);
    return std::to_string(pusd / 1000000000000) + "." + std::string(12 - fraction.size(), '0') + fraction;
  }
};

// A non-streamed call: one row with the upstream's reported tokens and their exact cost at the configured prices.
TEST_F(Usage, EveryCallLeavesOneRowWithItsTokensAndExactCost) {
  start();
  auto res = chat("price this answer");
  ASSERT_EQ(res.status, 200) << res.body;
  auto answer = parse_json(res.body);
  auto rows = ledger(1);
  ASSERT_EQ(rows.size(), 1u);
  const auto& row = rows[0];
  EXPECT_EQ(row.model, "mock-1");
  EXPECT_EQ(row.upstream, "a");
  EXPECT_EQ(row.api_key_id, "");
  EXPECT_EQ(row.outcome, "complete");
  EXPECT_FALSE(row.estimated);
  EXPECT_EQ(row.prompt_tokens, answer["usage"]["prompt_tokens"].GetInt64());
  EXPECT_EQ(row.completion_tokens, answer["usage"]["completion_tokens"].GetInt64());
  EXPECT_EQ(row.cost_usd, cost(row.prompt_tokens, row.completion_tokens));
}

// Streams ask the upstream for usage either way: a client that did not ask never sees the usage chunk, a client that
// did sees it, and both rows carry the upstream's numbers (not an estimate).
TEST_F(Usage, StreamedUsageIsTheUpstreamsWhetherOrNotTheClientAsked) {
  start();
  auto plain = chat("[[mock chunks=4]] stream me", R"(,"stream":true)");
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_TRUE(usage_chunk(plain.body).IsNull()) << plain.body;
  EXPECT_EQ(plain.body.substr(plain.body.size() - 14), "data: [DONE]\n\n");
  auto asked = chat("[[mock chunks=4]] stream me", R"(,"stream":true,"stream_options":{"include_usage":true})");
  ASSERT_EQ(asked.status, 200) << asked.body;
  auto usage = usage_chunk(asked.body);
  ASSERT_TRUE(usage.IsObject()) << asked.body;
  // What reached the upstream asked for usage in both cases.
  auto seen = parse_json(http_get(mock.base_url() + "/mock/last_request").body);
  EXPECT_TRUE(seen["stream_options"]["include_usage"].GetBool());

  auto rows = ledger(2);
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) {
    EXPECT_FALSE(row.estimated);
    EXPECT_EQ(row.outcome, "complete");
    EXPECT_EQ(row.prompt_tokens, usage["prompt_tokens"].GetInt64()); // the same prompt: the same numbers
    EXPECT_EQ(row.completion_tokens, usage["completion_tokens"].GetInt64());
    EXPECT_EQ(row.cost_usd, cost(row.prompt_tokens, row.completion_tokens));
  }
}

// A client that leaves after the first event: the upstream is still read to its end (the mock sees no aborted
// answer), so the row has the upstream's real numbers for the whole answer, marked client_gone.
TEST_F(Usage, AClientThatLeavesMidStreamStillProducesRealUsage) {
  start();
  // The complete answer's usage, for comparison (the mock's numbers depend only on the prompt and the answer).
  auto whole = chat(long_answer,
                    R"(,"stream":true,"stream_options":{"include_usage":true})");
  ASSERT_EQ(whole.status, 200);
  auto expected = usage_chunk(whole.body);
  ASSERT_TRUE(expected.IsObject()) << whole.body;
  leave_after_the_first_event();
  auto rows = ledger(2);
  ASSERT_EQ(rows.size(), 2u);
  const auto& left = rows[0].outcome == "client_gone" ? rows[0] : rows[1];
  EXPECT_EQ(left.outcome, "client_gone");
  EXPECT_FALSE(left.estimated);
  EXPECT_EQ(left.prompt_tokens, expected["prompt_tokens"].GetInt64());
  EXPECT_EQ(left.completion_tokens, expected["completion_tokens"].GetInt64());
  auto stats = parse_json(http_get(mock.base_url() + "/mock/stats").body);
  EXPECT_EQ(stats["aborted"].GetInt64(), 0) << "the upstream call was dropped instead of read to its end";
}

// With gateway.stream_drain_ms=0 the upstream call is dropped with its client: the usage never arrives, so the row
// has an estimate (never zero for a call that produced output) and says so.
TEST_F(Usage, WithoutDrainingTheRowIsAnEstimateAndSaysSo) {
  start({"gateway.stream_drain_ms=0"});
  leave_after_the_first_event();
  auto rows = ledger(1);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].outcome, "client_gone");
  EXPECT_TRUE(rows[0].estimated);
  EXPECT_GT(rows[0].prompt_tokens, 0);
  EXPECT_GT(rows[0].completion_tokens, 0);
  // The mock saw its answer cut short (a bounded wait: the abort reaches it when the next chunk is due).
  int64_t aborted = 0;
  for (int i = 0; i < 500 && aborted == 0; ++i) {
    aborted = parse_json(http_get(mock.base_url() + "/mock/stats").body)["aborted"].GetInt64();
    if (aborted == 0)
      std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(aborted, 1);
}

// GET /api/usage: the caller's calls by model, by API key (with the key's name; bearer-token calls under null) and by
// UTC day, with exact decimal costs and totals; bad parameters are 400 naming them; another user's report is 403,
// except for an admin.
TEST_F(Usage, TheReportGroupsByModelKeyAndDay) {
  start();
  auto key = json_string(http({"POST", troupe->url("/api/keys"), R"({"name":"ci"})",
                               {"Authorization: Bearer " + token, "Content-Type: application/json"}, 10000}),
                         "key");
  ASSERT_FALSE(key.empty());
  ASSERT_EQ(chat("one").status, 200);
  ASSERT_EQ(chat("two, a little longer").status, 200);
  ASSERT_EQ(chat("three, with the key", "", key).status, 200);
  auto rows = ledger(3);
  ASSERT_EQ(rows.size(), 3u);
  int64_t prompt = 0, completion = 0;
  for (const auto& row : rows) {
    prompt += row.prompt_tokens;
    completion += row.completion_tokens;
  }

  auto by_model = get("/api/usage?group_by=model");
  ASSERT_EQ(by_model.status, 200) << by_model.body;
  EXPECT_EQ(by_model.header("cache-control"), "no-store");
  auto doc = parse_json(by_model.body);
  ASSERT_EQ(doc["data"].Size(), 1u) << by_model.body;
  EXPECT_EQ(std::string(doc["data"][0]["model"].GetString()), "mock-1");
  EXPECT_EQ(doc["data"][0]["requests"].GetInt64(), 3);
  EXPECT_EQ(doc["total"]["prompt_tokens"].GetInt64(), prompt);
  EXPECT_EQ(doc["total"]["completion_tokens"].GetInt64(), completion);
  EXPECT_EQ(doc["total"]["total_tokens"].GetInt64(), prompt + completion);
  // The decimal exactly as summed: "cost_usd":0.000001234500 in the body, not a rounded double.
  EXPECT_NE(by_model.body.find("\"cost_usd\":" + cost(prompt, completion) + "}"), std::string::npos) << by_model.body;

  auto by_key = parse_json(get("/api/usage?group_by=key").body);
  ASSERT_EQ(by_key["data"].Size(), 2u);
  int64_t with_key = 0, without_key = 0;
  for (const auto& g : by_key["data"].GetArray()) {
    if (g["key_id"].IsNull()) {
      without_key = g["requests"].GetInt64();
      EXPECT_TRUE(g["key_name"].IsNull());
    } else {
      with_key = g["requests"].GetInt64();
      EXPECT_EQ(std::string(g["key_name"].GetString()), "ci");
      // The one row written with the key (rows of one batch share their timestamp: no order among them).
      EXPECT_EQ(std::count_if(rows.begin(), rows.end(),
                              [&](const ledger_row& r) { return r.api_key_id == g["key_id"].GetString(); }),
                1);
    }
  }
  EXPECT_EQ(with_key, 1);
  EXPECT_EQ(without_key, 2);

  auto by_day = parse_json(get("/api/usage").body);
  EXPECT_EQ(std::string(by_day["group_by"].GetString()), "day");
  ASSERT_EQ(by_day["data"].Size(), 1u);
  EXPECT_EQ(std::string(by_day["data"][0]["day"].GetString()), std::string(by_day["to"].GetString()));
  EXPECT_EQ(by_day["total"]["requests"].GetInt64(), 3);
  // A range without calls.
  auto empty = parse_json(get("/api/usage?from=2001-01-01&to=2001-12-31").body);
  EXPECT_EQ(empty["data"].Size(), 0u);
  EXPECT_EQ(empty["total"]["requests"].GetInt64(), 0);

  for (auto [query, param] : {std::pair<const char*, const char*>{"group_by=user", "group_by"},
                              {"from=2026-02-30", "from"},
                              {"to=yesterday", "to"},
                              {"from=2026-12-02&to=2026-12-01", "from"},
                              {"from=2020-01-01&to=2026-01-01", "from"},
                              {"user_id=not-a-uuid", "user_id"}}) {
    auto res = get(std::string("/api/usage?") + query);
    EXPECT_EQ(res.status, 400) << query << ": " << res.body;
    EXPECT_EQ(std::string(parse_json(res.body)["error"]["param"].GetString()), param) << query;
  }
  EXPECT_EQ(http_get(troupe->url("/api/usage")).status, 401);

  // Another user may not read this one's usage; an admin may.
  auto user_id = json_string(get("/api/me"), "user_id");
  auto other = json_string(sign_up(*troupe, "other-" + email), "access_token");
  EXPECT_EQ(get("/api/usage?user_id=" + user_id, other).status, 403);
  troupe.reset();
  std::string out;
  ASSERT_EQ(run_command("TROUPE_DATABASE_URL='" + db_.url() + "' " TROUPE_BINARY " admin grant other-" + email, out), 0)
    << out;
  start();
  auto admin = json_string(sign_up(*troupe, "other-" + email), "access_token");
  auto seen = get("/api/usage?group_by=model&user_id=" + user_id, admin);
  ASSERT_EQ(seen.status, 200) << seen.body;
  EXPECT_EQ(parse_json(seen.body)["total"]["requests"].GetInt64(), 3);
}

// Reserve, then settle, under 200 concurrent requests with random max_tokens against a daily budget that about half
// of them fit in: the calls the ledger records never cost more than the budget; the others are refused before any
// upstream call with 402 insufficient_quota in OpenAI's shape and a Retry-After; nothing else goes wrong. The mock
// holds every answer, so that all the reservations are made before any is settled (answered at once, the calls
// settle at their real cost, about a third of their reservation, and a slow start lets every one of them fit).
TEST_F(Usage, ABudgetHoldsUnder200ConcurrentRequests) {
  // mock-1's reservations here are 10-11 prompt tokens and 1-64 completion tokens: about 21 micro-dollars on average.
  start({"quota.free_usd_per_day=0.002", "limits.generate_max_inflight=256", "limits.generate_burst=1000",
         "limits.generate_per_minute=100000"});
  std::mt19937 random{20261206};
  std::uniform_int_distribution<int> max_tokens{1, 64};
  std::vector<std::future<http_result>> calls;
  for (int i = 0; i < 200; ++i) {
    auto extra = ",\"max_tokens\":" + std::to_string(max_tokens(random));
    calls.push_back(std::async(std::launch::async, [this, i, extra] {
      return chat("[[mock latency_ms=1500]] question number " + std::to_string(1000 + i), extra);
    }));
  }
  int ok = 0, refused = 0;
  std::string other;
  for (auto& f : calls) {
    auto res = f.get();
    if (res.status == 200) {
      ++ok;
    } else if (res.status == 402) {
      ++refused;
      auto doc = parse_json(res.body);
      EXPECT_EQ(std::string(doc["error"]["code"].GetString()), "insufficient_quota") << res.body;
      EXPECT_EQ(std::string(doc["error"]["type"].GetString()), "insufficient_quota") << res.body;
      EXPECT_FALSE(res.header("retry-after").empty());
    } else if (other.empty()) {
      other = std::to_string(res.status) + " " + res.error + " " + res.body;
    }
  }
  EXPECT_EQ(ok + refused, 200) << other;
  EXPECT_GT(ok, 0);
  EXPECT_GT(refused, 0);
  auto rows = ledger(static_cast<size_t>(ok));
  EXPECT_EQ(rows.size(), static_cast<size_t>(ok)); // one row per answered call, none for a refused one
  pqxx::connection db{db_.url()};
  pqxx::work tx{db};
  auto spent = tx.exec("SELECT (coalesce(sum(e.cost_usd), 0) * 1000000000000)::bigint FROM usage_events e "
                       "JOIN users u ON u.id = e.user_id WHERE u.email = " + tx.quote(email))[0][0]
                 .as<int64_t>();
  EXPECT_LE(spent, 2000000000); // 0.002 USD in pico-dollars
  EXPECT_EQ(parse_json(http_get(mock.base_url() + "/mock/stats").body)["requests"].GetInt64(), ok);
}

// A tokens-per-minute limit under 200 concurrent requests with random max_tokens, all held by the mock so that their
// reservations overlap: the tokens the admitted calls used (the upstream's counts, in the ledger) never exceed the
// window plus what it refilled while they ran; every other request is 429 with Retry-After, before any upstream call.
TEST_F(Usage, ATokenWindowHoldsUnder200ConcurrentRequests) {
  start({"quota.free_tokens_per_minute=3000", "limits.generate_max_inflight=256", "limits.generate_burst=1000",
         "limits.generate_per_minute=100000"});
  std::mt19937 random{20261207};
  std::uniform_int_distribution<int> max_tokens{1, 200};
  std::vector<std::future<http_result>> calls;
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 200; ++i) {
    auto extra = ",\"max_tokens\":" + std::to_string(max_tokens(random));
    calls.push_back(std::async(std::launch::async, [this, i, extra] {
      return chat("[[mock latency_ms=1500]] question number " + std::to_string(1000 + i), extra);
    }));
  }
  int ok = 0, refused = 0;
  std::string other;
  for (auto& call : calls) {
    auto res = call.get();
    if (res.status == 200) {
      ++ok;
    } else if (res.status == 429) {
      ++refused;
      EXPECT_FALSE(res.header("retry-after").empty());
    } else if (other.empty()) {
      other = std::to_string(res.status) + " " + res.error + " " + res.body;
    }
  }
  auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(ok + refused, 200) << other;
  EXPECT_GT(ok, 0);
  EXPECT_GT(refused, 0);
  EXPECT_EQ(parse_json(http_get(mock.base_url() + "/mock/stats").body)["requests"].GetInt64(), ok);
  auto rows = ledger(static_cast<size_t>(ok));
  ASSERT_EQ(rows.size(), static_cast<size_t>(ok));
  int64_t used = 0;
  for (const auto& row : rows)
    used += row.prompt_tokens + row.completion_tokens;
  // 3000 tokens a minute refill 50 a second.
  EXPECT_LE(static_cast<double>(used), 3000 + 50 * elapsed) << ok << " admitted in " << elapsed << " s";
}

// Tokens per minute are reserved before the call: while one call holds its reservation, another that does not fit
// in what is left is refused with 429 and Retry-After; a request that could never fit says to lower max_tokens.
TEST_F(Usage, TokensPerMinuteAreReservedBeforeTheCall) {
  start({"quota.free_tokens_per_minute=1000"});
  auto too_big = chat("x", R"(,"max_tokens":2000)");
  EXPECT_EQ(too_big.status, 429) << too_big.body;
  EXPECT_NE(too_big.body.find("lower max_tokens"), std::string::npos) << too_big.body;
  // About 700 tokens reserved for as long as the mock holds the answer.
  auto held = std::async(std::launch::async,
                         [this] { return chat("[[mock latency_ms=3000]] hold it", R"(,"max_tokens":700)"); });
  int64_t in_flight = 0;
  for (int i = 0; i < 1000 && in_flight == 0; ++i) {
    in_flight = parse_json(http_get(mock.base_url() + "/mock/stats").body)["in_flight"].GetInt64();
    if (in_flight == 0)
      std::this_thread::sleep_for(5ms);
  }
  ASSERT_EQ(in_flight, 1);
  auto refused = chat("another", R"(,"max_tokens":400)");
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_FALSE(refused.header("retry-after").empty());
  EXPECT_NE(refused.body.find("tokens per minute"), std::string::npos) << refused.body;
  EXPECT_EQ(chat("a small one", R"(,"max_tokens":100)").status, 200); // what is left fits it
  EXPECT_EQ(held.get().status, 200);
  // Settled at what it used (a few tokens): the window has room again.
  EXPECT_EQ(chat("another", R"(,"max_tokens":400)").status, 200);
}

// --- API keys as virtual keys (issue 16 item 2) ---

class VirtualKeys : public Usage {
protected:
  /// Creates a key for the test's user with `body` (POST /api/keys): its id and the key itself.
  std::pair<std::string, std::string> key(const std::string& body) {
    auto res = http({"POST", troupe->url("/api/keys"), body,
                     {"Authorization: Bearer " + token, "Content-Type: application/json"}, 10000});
    EXPECT_EQ(res.status, 201) << body << " -> " << res.body;
    return {json_string(res, "id"), json_string(res, "key")};
  }

  /// Waits until the mock is answering `n` requests (a call held by a latency directive).
  void wait_in_flight(int64_t n) {
    int64_t in_flight = -1;
    for (int i = 0; i < 1000 && in_flight != n; ++i) {
      in_flight = parse_json(http_get(mock.base_url() + "/mock/stats").body)["in_flight"].GetInt64();
      if (in_flight != n)
        std::this_thread::sleep_for(5ms);
    }
    ASSERT_EQ(in_flight, n);
  }
};

// A key's limits are given with LiteLLM's names, shown back by GET /api/keys and /api/keys/{id}, and checked.
TEST_F(VirtualKeys, CarryTheirLimitsAndRefuseBadOnes) {
  start();
  auto res = http({"POST", troupe->url("/api/keys"),
                   R"({"name":"svc","models":["mock-1"],"max_budget":2.5,"budget_duration":"30d","tpm_limit":1000,)"
                   R"("rpm_limit":60,"max_parallel_requests":4})",
                   {"Authorization: Bearer " + token, "Content-Type: application/json"}, 10000});
  ASSERT_EQ(res.status, 201) << res.body;
  auto id = json_string(res, "id");
  auto shown = get("/api/keys/" + id);
  ASSERT_EQ(shown.status, 200) << shown.body;
  auto doc = parse_json(shown.body);
  EXPECT_EQ(std::string(doc["models"][0].GetString()), "mock-1");
  EXPECT_DOUBLE_EQ(doc["max_budget"].GetDouble(), 2.5);
  EXPECT_EQ(std::string(doc["budget_duration"].GetString()), "30d");
  EXPECT_EQ(doc["tpm_limit"].GetInt64(), 1000);
  EXPECT_EQ(doc["rpm_limit"].GetInt64(), 60);
  EXPECT_EQ(doc["max_parallel_requests"].GetInt64(), 4);
  EXPECT_DOUBLE_EQ(doc["spend"].GetDouble(), 0);
  EXPECT_TRUE(doc["budget_reset_at"].IsString());
  EXPECT_FALSE(doc.HasMember("key")); // shown once, at creation
  auto plain = parse_json(get("/api/keys").body);
  ASSERT_EQ(plain["keys"].Size(), 1u);
  EXPECT_EQ(get("/api/keys/00000000-0000-0000-0000-000000000000").status, 404);

  for (const auto* bad : {R"({"name":"x","budget_duration":"1d"})", R"({"name":"x","max_budget":1,"budget_duration":"2w"})",
                          R"({"name":"x","models":[]})", R"({"name":"x","max_budget":0})", R"({"name":"x","rpm_limit":0})",
                          R"({"name":"x","max_parallel_requests":1.5})", R"({"name":"x","tpm":5})",
                          R"({"name":"x","max_budget":1,"budget_duration":"1d\u0000junk"})"}) {
    auto refused = http({"POST", troupe->url("/api/keys"), bad,
                         {"Authorization: Bearer " + token, "Content-Type: application/json"}, 10000});
    EXPECT_EQ(refused.status, 400) << bad << " -> " << refused.body;
  }
}

// A model outside the key's list is 403 in OpenAI's shape, reserves nothing (no generation, none of the key's
// requests per minute) and never reaches the upstream.
TEST_F(VirtualKeys, AModelOutsideTheKeysListIsForbidden) {
  start();
  auto [id, secret] = key(R"({"name":"only-2","models":["mock-2"],"rpm_limit":1})");
  auto res = chat("hello", "", secret);
  EXPECT_EQ(res.status, 403) << res.body;
  auto doc = parse_json(res.body);
  EXPECT_EQ(std::string(doc["error"]["param"].GetString()), "model") << res.body;
  EXPECT_NE(res.body.find("mock-2"), std::string::npos) << res.body;
  EXPECT_EQ(parse_json(http_get(mock.base_url() + "/mock/stats").body)["requests"].GetInt64(), 0);
  auto me = parse_json(get("/api/me").body);
  EXPECT_EQ(me["quota"]["used"].GetInt64(), 0) << get("/api/me").body;
  EXPECT_EQ(chat("hello").status, 200); // the user's own token is not limited by the key
  auto allowed = http({"POST", troupe->url("/v1/chat/completions"),
                       R"({"model":"mock-2","messages":[{"role":"user","content":"hello"}]})",
                       {"Authorization: Bearer " + secret, "Content-Type: application/json"}, 20000});
  EXPECT_EQ(allowed.status, 200) << allowed.body; // the key's one request of the minute was still there
}

// A key's budget is its own: once what it spent and reserved reaches it the key gets 402 insufficient_quota, while
// another key of the same user goes on; GET /api/keys/{id} shows the key's settled spend.
TEST_F(VirtualKeys, AKeysBudgetIsItsOwn) {
  start();
  // Each call reserves 1 prompt token and 5 completion tokens (3.15 micro-dollars) and costs 2.55.
  auto [id, secret] = key(R"({"name":"tight","max_budget":0.00001})");
  auto [other_id, other] = key(R"({"name":"free"})");
  int ok = 0;
  http_result refused;
  for (int i = 0; i < 10; ++i) {
    auto res = chat("hi", R"(,"max_tokens":5)", secret);
    if (res.status != 200) {
      refused = res;
      break;
    }
    ++ok;
  }
  EXPECT_EQ(ok, 3);
  EXPECT_EQ(refused.status, 402) << refused.body;
  EXPECT_NE(refused.body.find("This API key's lifetime budget"), std::string::npos) << refused.body;
  EXPECT_EQ(refused.header("retry-after"), ""); // a lifetime budget does not renew
  EXPECT_EQ(chat("hi", R"(,"max_tokens":5)", other).status, 200);
  auto rows = ledger(4);
  ASSERT_EQ(rows.size(), 4u);
  int64_t by_key = 0;
  for (const auto& row : rows)
    by_key += row.api_key_id == id ? 1 : 0;
  EXPECT_EQ(by_key, 3);
  auto shown = parse_json(get("/api/keys/" + id).body);
  EXPECT_DOUBLE_EQ(shown["spend"].GetDouble(), 0.00000765); // 3 x (1 x 0.15 + 4 x 0.60) micro-dollars
  EXPECT_TRUE(shown["budget_reset_at"].IsNull());
}

// Requests per minute, tokens per minute and calls in flight, each the key's own, each a 429 with Retry-After.
TEST_F(VirtualKeys, RequestsTokensAndCallsInFlightAreLimitedPerKey) {
  start();
  auto [rpm_id, rpm] = key(R"({"name":"rpm","rpm_limit":2})");
  EXPECT_EQ(chat("one", "", rpm).status, 200);
  EXPECT_EQ(chat("two", "", rpm).status, 200);
  auto third = chat("three", "", rpm);
  EXPECT_EQ(third.status, 429) << third.body;
  EXPECT_NE(third.body.find("requests per minute"), std::string::npos) << third.body;
  EXPECT_FALSE(third.header("retry-after").empty());

  auto [tpm_id, tpm] = key(R"({"name":"tpm","tpm_limit":10})");
  auto big = chat("x", R"(,"max_tokens":20)", tpm);
  EXPECT_EQ(big.status, 429) << big.body;
  EXPECT_NE(big.body.find("more than this API key's 10 tokens per minute"), std::string::npos) << big.body;
  EXPECT_EQ(chat("x", R"(,"max_tokens":5)", tpm).status, 200);

  auto [one_id, one] = key(R"({"name":"serial","max_parallel_requests":1})");
  auto held = std::async(std::launch::async, [this, secret = one] {
    return chat("[[mock latency_ms=2000]] hold it", "", secret);
  });
  wait_in_flight(1);
  auto second = chat("meanwhile", "", one);
  EXPECT_EQ(second.status, 429) << second.body;
  EXPECT_NE(second.body.find("in flight"), std::string::npos) << second.body;
  EXPECT_EQ(chat("meanwhile, as the user", "").status, 200); // the user's own token is not the key
  EXPECT_EQ(held.get().status, 200);
  EXPECT_EQ(chat("after", "", one).status, 200); // its slot came back with the settlement
}

} // namespace
} // namespace troupe::testing
