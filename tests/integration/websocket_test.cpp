// The WebSocket channel (GET /ws, http/websocket.hpp) driven by the npm `ws` client (tests/interop/ws_client.mjs)
// against a real troupe, PostgreSQL and the mock upstream: chats and streamed chats as messages, authentication by
// header or message, the heartbeat and its timeout, the size cap, the message rate, the connection cap, malformed
// messages and cancelling a stream. Node and `ws` come from scripts/test-deps (make test runs it); without them the
// test fails.

#include "tests/integration/harness.hpp"
#include "tests/interop/node_packages.hpp"
#include "tests/persistence/scratch_database.hpp"
#include "tests/tools/mock_upstream_harness.hpp"

#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace troupe::testing {
namespace {

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

class WebSocket : public ::testing::Test {
protected:
  void SetUp() override {
    auto missing = node_packages_missing({"ws"});
    ASSERT_TRUE(missing.empty()) << missing;
    ASSERT_TRUE(db.available()) << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
  }

  /// A troupe with the mock as its upstream and `args` (--set ws.* ...).
  std::unique_ptr<troupe_process> start(std::vector<std::string> args = {},
                                        std::vector<std::string> expected_output = {}) {
    troupe_process::options opts;
    opts.env["TROUPE_DATABASE_URL"] = db.url();
    opts.env["TROUPE_UPSTREAMS"] =
      R"([{"name":"mock","type":"openai","base_url":")" + mock.base_url() + R"(/v1","models":["mock-1"]}])";
    opts.args = std::move(args);
    opts.expected_output = std::move(expected_output);
    return std::make_unique<troupe_process>(opts);
  }

  /// Runs the client with `script` (a JSON array of steps); its transcript.
  rapidjson::Document run(const troupe_process& t, const std::string& script, const std::string& token = {},
                          const std::string& extra = {}) {
    auto url = t.url("/ws");
    url.replace(0, 4, "ws"); // http://... -> ws://...
    std::string out;
    auto command = "node " + quote(interop_dir() + "/ws_client.mjs") + " --url " + quote(url) + " --script "
                   + quote(script) + (token.empty() ? "" : " --token " + quote(token)) + " " + extra + " 2>&1";
    int status = run_command(command, out);
    EXPECT_EQ(status, 0) << out;
    auto doc = parse_json(out);
    EXPECT_TRUE(doc.IsObject()) << out;
    last_output = out;
    return doc;
  }

  /// The messages of a transcript whose "type" is `type` (and "id" is `id`, when given).
  static std::vector<const rapidjson::Value*> of_type(const rapidjson::Document& doc, const std::string& type,
                                                      const std::string& id = {}) {
    std::vector<const rapidjson::Value*> found;
    for (const auto& m : doc["messages"].GetArray()) {
      const auto& data = m["data"];
      if (data.IsObject() && data.HasMember("type") && data["type"] == rapidjson::StringRef(type.c_str())
          && (id.empty() || (data.HasMember("id") && data["id"] == rapidjson::StringRef(id.c_str()))))
        found.push_back(&m);
    }
    return found;
  }

  /// A chat message.
  static std::string chat(const std::string& id, const std::string& text, bool stream = false) {
    return R"({"type":"chat","id":")" + id + R"(","request":{"model":"mock-1","messages":[{"role":"user","content":")"
           + text + R"("}])" + (stream ? R"(,"stream":true)" : "") + "}}";
  }
  /// The script step sending it.
  static std::string send_chat(const std::string& id, const std::string& text, bool stream = false) {
    return R"({"send":)" + chat(id, text, stream) + "}";
  }

  static int close_code(const rapidjson::Document& doc) {
    return doc.HasMember("close") && doc["close"].IsObject() ? doc["close"]["code"].GetInt() : 0;
  }

  scratch_database db;
  mock_upstream_process mock;
  std::string last_output;
};

// A chat, a streamed chat and a chat in a binary message, with the credential in the handshake: each answered
// through the gateway (the mock is asked exactly three times, once streaming), frames carrying their ids.
TEST_F(WebSocket, ChatsAndStreamsOverOneConnection) {
  auto t = start();
  auto token = json_string(sign_up(*t, "ws-chat@example.com"), "access_token");
  ASSERT_FALSE(token.empty());
  auto doc = run(*t,
                 "[{\"wait\":{\"type\":\"ready\"}}," + send_chat("c1", "hello over ws") + "," //
                   + R"({"wait":{"type":"chat.completion","id":"c1"}},)"                  //
                   + send_chat("s1", "stream over ws", true) + ","                             //
                   + R"({"wait":{"type":"chat.done","id":"s1"}},)"                        //
                   + R"({"send_binary":)" + chat("b1", "binary over ws") + "},"          //
                   + R"({"wait":{"type":"chat.completion","id":"b1"}},)"                  //
                   + R"({"send":{"type":"ping","id":"p1"}},{"wait":{"type":"pong","id":"p1"}}])",
                 token);
  ASSERT_TRUE(doc.IsObject());
  EXPECT_TRUE(doc["error"].IsNull()) << last_output;
  EXPECT_EQ(doc["status"].GetInt(), 101);
  auto completions = of_type(doc, "chat.completion", "c1");
  ASSERT_EQ(completions.size(), 1u) << last_output;
  const auto& c1 = (*completions[0])["data"];
  EXPECT_EQ(c1["status"].GetInt(), 200);
  EXPECT_EQ(std::string(c1["response"]["choices"][0]["message"]["content"].GetString()), "mock reply: hello over ws");
  EXPECT_FALSE((*completions[0])["binary"].GetBool());
  std::string streamed;
  auto chunks = of_type(doc, "chat.chunk", "s1");
  for (const auto* m : chunks) {
    const auto& choices = (*m)["data"]["chunk"]["choices"];
    if (choices.Size() > 0 && choices[0]["delta"].HasMember("content"))
      streamed += choices[0]["delta"]["content"].GetString();
  }
  EXPECT_GE(chunks.size(), 3u) << last_output;
  EXPECT_EQ(streamed, "mock reply: stream over ws");
  EXPECT_EQ(of_type(doc, "chat.done", "s1").size(), 1u);
  auto binary = of_type(doc, "chat.completion", "b1");
  ASSERT_EQ(binary.size(), 1u) << last_output;
  EXPECT_TRUE((*binary[0])["binary"].GetBool()) << "a binary request is answered in binary messages";
  EXPECT_EQ(of_type(doc, "pong", "p1").size(), 1u);
  EXPECT_TRUE(of_type(doc, "error").empty()) << last_output;
  auto stats = parse_json(http_get(mock.base_url() + "/mock/stats").body);
  EXPECT_EQ(stats["requests"].GetInt64(), 3);
  EXPECT_EQ(stats["streams"].GetInt64(), 1);
  // Metered like HTTP calls: the usage shows the three generations.
  auto usage = http({"GET", t->url("/api/me"), "", {"Authorization: Bearer " + token}, 10000});
  EXPECT_EQ(usage.status, 200) << usage.body;
  EXPECT_NE(usage.body.find("\"used\":3"), std::string::npos) << usage.body;
}

// Without an Authorization header: a chat before authenticating is refused (401), an auth message opens the
// channel; a wrong token in the handshake is an HTTP 401; a wrong token in a message closes with 1008; silence past
// ws.auth_timeout_ms closes with 1008.
TEST_F(WebSocket, AuthenticatesByHeaderOrMessage) {
  auto t = start({"--set", "ws.auth_timeout_ms=500"});
  auto token = json_string(sign_up(*t, "ws-auth@example.com"), "access_token");
  ASSERT_FALSE(token.empty());
  auto doc = run(*t, "[" + send_chat("early", "too soon") + R"(,{"wait":{"type":"error","id":"early"}},)"
                       + R"({"send":{"type":"auth","token":")" + token + R"("}},{"wait":{"type":"ready"}},)"
                       + send_chat("c1", "after auth") + R"(,{"wait":{"type":"chat.completion","id":"c1"}}])");
  EXPECT_TRUE(doc["error"].IsNull()) << last_output;
  auto early = of_type(doc, "error", "early");
  ASSERT_EQ(early.size(), 1u) << last_output;
  EXPECT_EQ((*early[0])["data"]["status"].GetInt(), 401);
  EXPECT_EQ(of_type(doc, "chat.completion", "c1").size(), 1u) << last_output;

  auto refused = run(*t, "[]", "not-a-token");
  EXPECT_EQ(refused["status"].GetInt(), 401) << last_output;

  auto wrong = run(*t, R"([{"send":{"type":"auth","token":"not-a-token"}},{"wait_close":true}])");
  EXPECT_EQ(close_code(wrong), 1008) << last_output;
  auto errors = of_type(wrong, "error");
  ASSERT_EQ(errors.size(), 1u) << last_output;
  EXPECT_EQ((*errors[0])["data"]["status"].GetInt(), 401);

  auto silent = run(*t, R"([{"wait_close":true}])");
  EXPECT_EQ(close_code(silent), 1008) << last_output;
  EXPECT_GE(silent["close"]["after_ms"].GetInt(), 400) << last_output;
}

// The server pings every ws.ping_interval_ms; a client that answers stays, one that does not is closed with 1001
// once ws.idle_timeout_ms passed without a frame from it.
TEST_F(WebSocket, HeartbeatKeepsLiveClientsAndClosesSilentOnes) {
  auto t = start({"--set", "ws.ping_interval_ms=150", "--set", "ws.idle_timeout_ms=700"});
  auto token = json_string(sign_up(*t, "ws-heartbeat@example.com"), "access_token");
  ASSERT_FALSE(token.empty());
  auto silent = run(*t, R"([{"wait":{"type":"ready"}},{"wait_close":true}])", token, "--no-auto-pong");
  EXPECT_EQ(close_code(silent), 1001) << last_output;
  EXPECT_GE(silent["pings"].GetInt(), 2) << last_output;
  EXPECT_GE(silent["close"]["after_ms"].GetInt(), 600) << last_output;

  // The live client: its pongs keep it open through 12 pings (1.8 s, over twice the idle timeout), then its own
  // ping is answered.
  auto live = run(*t, R"([{"wait":{"type":"ready"}},{"wait_pings":12},{"send":{"type":"ping","id":"p"}},)"
                      R"({"wait":{"type":"pong","id":"p"}}])",
                  token);
  EXPECT_TRUE(live["error"].IsNull()) << last_output;
  EXPECT_TRUE(live["close"].IsNull() || close_code(live) == 1000) << last_output;
}

// A message over ws.max_message_bytes closes the connection with 1009 (it is refused from its frame header, before
// it is buffered); a smaller one is read. Before authentication the cap is 16 KiB.
TEST_F(WebSocket, OversizedMessageIsRefused) {
  auto t = start({"--set", "ws.max_message_bytes=4096"});
  auto token = json_string(sign_up(*t, "ws-size@example.com"), "access_token");
  auto doc = run(*t, R"([{"wait":{"type":"ready"}},{"send_bytes":4000},{"wait":{"type":"error"}},)"
                     R"({"send_bytes":5000},{"wait_close":true}])",
                 token);
  auto errors = of_type(doc, "error");
  ASSERT_EQ(errors.size(), 1u) << last_output;
  EXPECT_EQ((*errors[0])["data"]["status"].GetInt(), 400) << "a JSON string is not a message object";
  EXPECT_EQ(close_code(doc), 1009) << last_output;

  // Before it is authenticated, a connection's messages may be 16 KiB at most, whatever ws.max_message_bytes.
  auto big = start({"--set", "ws.max_message_bytes=1048576"});
  auto anonymous = run(*big, R"([{"send_bytes":17000},{"wait_close":true}])");
  EXPECT_EQ(close_code(anonymous), 1009) << last_output;
  auto token2 = json_string(sign_up(*big, "ws-size2@example.com"), "access_token");
  auto signed_in = run(*big, R"([{"wait":{"type":"ready"}},{"send_bytes":100000},{"wait":{"type":"error"}}])", token2);
  EXPECT_TRUE(signed_in["error"].IsNull()) << last_output;
  EXPECT_TRUE(signed_in["close"].IsNull() || close_code(signed_in) == 1000) << last_output;
}

// Per connection: ws.burst messages at once, then 429 errors (the connection stays open; a malformed message spends
// the allowance too); malformed, duplicate-key and unknown-type messages get 400 errors naming what is wrong.
TEST_F(WebSocket, LimitsAndMalformedMessages) {
  auto t = start({"--set", "ws.burst=4", "--set", "ws.messages_per_second=0.01"});
  auto token = json_string(sign_up(*t, "ws-limits@example.com"), "access_token");
  auto doc = run(*t,
                 R"([{"wait":{"type":"ready"}},{"send_text":"{\"type\":\"chat\""},{"wait":{"type":"error"}},)"
                 R"({"send_text":"{\"type\":\"ping\",\"id\":\"d\",\"id\":\"e\"}"},{"wait":{"type":"error"}},)"
                 R"({"send":{"type":"shout","id":"x"}},{"wait":{"type":"error","id":"x"}},)"
                 R"({"send":{"type":"ping","id":"p1"}},{"send":{"type":"ping","id":"p2"}},)"
                 R"({"send":{"type":"ping","id":"p3"}},{"wait":{"type":"error","id":"p3"}}])",
                 token);
  EXPECT_TRUE(doc["error"].IsNull()) << last_output;
  auto errors = of_type(doc, "error");
  ASSERT_EQ(errors.size(), 5u) << last_output;
  EXPECT_EQ((*errors[0])["data"]["status"].GetInt(), 400);
  EXPECT_EQ(std::string((*errors[0])["data"]["error"]["code"].GetString()), "invalid_json");
  EXPECT_EQ(std::string((*errors[1])["data"]["error"]["code"].GetString()), "duplicate_key");
  EXPECT_EQ(std::string((*errors[2])["data"]["error"]["param"].GetString()), "type");
  EXPECT_EQ(of_type(doc, "pong", "p1").size(), 1u) << last_output;
  EXPECT_EQ(of_type(doc, "error", "p2").size(), 1u) << last_output;
  EXPECT_EQ((*errors[3])["data"]["status"].GetInt(), 429);
  EXPECT_EQ((*errors[4])["data"]["status"].GetInt(), 429);
  EXPECT_TRUE(doc["close"].IsNull() || close_code(doc) == 1000) << "a 429 does not close the connection";
}

// The node's caps on WebSocket connections: past ws.max_connections_per_user a user's handshake gets 429 (and its
// auth message a 429 error and close 1008), past ws.max_connections any handshake gets 503; both with Retry-After;
// a closed connection frees its place.
TEST_F(WebSocket, ConnectionCapsRefuseHandshakes) {
  auto t = start({"--set", "ws.max_connections=2", "--set", "ws.max_connections_per_user=1", "--set",
                  "ws.ping_interval_ms=100000"});
  auto ada = json_string(sign_up(*t, "ws-cap-ada@example.com"), "access_token");
  auto bob = json_string(sign_up(*t, "ws-cap-bob@example.com"), "access_token");
  auto cyd = json_string(sign_up(*t, "ws-cap-cyd@example.com"), "access_token");
  auto url = t->url("/ws");
  url.replace(0, 4, "ws");
  // A connection held open by a client that waits for a message that never comes, until it is killed.
  auto hold = [&](const std::string& token) {
    auto command = "node " + quote(interop_dir() + "/ws_client.mjs") + " --url " + quote(url) + " --token "
                   + quote(token) + R"( --timeout-ms 60000 --script '[{"wait":{"type":"never"}}]' >/dev/null 2>&1 & echo $!)";
    std::string pid_text;
    EXPECT_EQ(run_command(command, pid_text), 0);
    return std::stoi(pid_text);
  };
  auto gauge = [&](const char* line) {
    // A bounded poll of a gauge no message reports (the holders are other processes).
    for (int i = 0; i < 200; ++i) {
      if (http_get(t->url("/metrics")).body.find(line) != std::string::npos)
        return true;
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
    }
    return false;
  };
  auto ada_holder = hold(ada);
  ASSERT_TRUE(gauge("troupe_ws_connections 1"));
  auto again = run(*t, "[]", ada);
  EXPECT_EQ(again["status"].GetInt(), 429) << last_output;
  EXPECT_TRUE(again["retry_after"].IsString()) << last_output;
  auto by_message =
    run(*t, R"([{"send":{"type":"auth","token":")" + ada + R"("}},{"wait":{"type":"error"}},{"wait_close":true}])");
  EXPECT_EQ(close_code(by_message), 1008) << last_output;
  ASSERT_EQ(of_type(by_message, "error").size(), 1u) << last_output;
  EXPECT_EQ((*of_type(by_message, "error")[0])["data"]["status"].GetInt(), 429);

  auto bob_holder = hold(bob);
  ASSERT_TRUE(gauge("troupe_ws_connections 2"));
  auto full = run(*t, "[]", cyd);
  EXPECT_EQ(full["status"].GetInt(), 503) << last_output;
  EXPECT_TRUE(full["retry_after"].IsString()) << last_output;
  // Once a holder is gone, its places are free again.
  ::kill(ada_holder, SIGKILL);
  ASSERT_TRUE(gauge("troupe_ws_connections 1"));
  auto back = run(*t, R"([{"wait":{"type":"ready"}}])", ada);
  EXPECT_EQ(back["status"].GetInt(), 101) << last_output;
  ::kill(bob_holder, SIGKILL);
}

// A streamed chat cancelled midway ends with chat.done {"cancelled": true}, after which nothing of it arrives; while
// it runs, ws.max_inflight (1 here) refuses another chat with 429; an ended chat cannot be cancelled (404).
TEST_F(WebSocket, CancelStopsAStream) {
  auto t = start({"--set", "ws.max_inflight=1"});
  auto token = json_string(sign_up(*t, "ws-cancel@example.com"), "access_token");
  auto doc = run(*t,
                 "[{\"wait\":{\"type\":\"ready\"}}," + send_chat("s1", "[[mock drip_ms=300 chunks=20]] a slow stream", true)
                   + R"(,{"wait":{"type":"chat.chunk","id":"s1"}},)" + send_chat("c2", "one too many")
                   + R"(,{"wait":{"type":"error","id":"c2"}},{"send":{"type":"cancel","id":"s1"}},)"
                   + R"({"wait":{"type":"chat.done","id":"s1"}},{"send":{"type":"cancel","id":"s1"}},)"
                   + R"({"wait":{"type":"error","id":"s1"}}])",
                 token);
  EXPECT_TRUE(doc["error"].IsNull()) << last_output;
  auto busy = of_type(doc, "error", "c2");
  ASSERT_EQ(busy.size(), 1u) << last_output;
  EXPECT_EQ((*busy[0])["data"]["status"].GetInt(), 429);
  auto done = of_type(doc, "chat.done", "s1");
  ASSERT_EQ(done.size(), 1u) << last_output;
  EXPECT_TRUE((*done[0])["data"].HasMember("cancelled")) << last_output;
  // Nothing of the chat after its chat.done.
  bool after_done = false;
  for (const auto& m : doc["messages"].GetArray()) {
    const auto& data = m["data"];
    if (!data.IsObject() || !data.HasMember("type"))
      continue;
    std::string type = data["type"].GetString();
    if (type == "chat.done")
      after_done = true;
    else if (after_done && type == "chat.chunk")
      ADD_FAILURE() << "a chunk after chat.done: " << last_output;
  }
  EXPECT_LT(of_type(doc, "chat.chunk", "s1").size(), 6u) << "the stream stopped after the cancel";
  auto late = of_type(doc, "error", "s1");
  ASSERT_EQ(late.size(), 1u) << last_output;
  EXPECT_EQ((*late[0])["data"]["status"].GetInt(), 404) << "an ended chat cannot be cancelled";
}

// Each chat is a span of the handshake's trace (recorded as the handshake is): an INTERNAL span under the GET /ws
// request's, with its gateway stages under it, a streamed chat's too.
TEST_F(WebSocket, ChatsAreSpansOfTheHandshakesTrace) {
  using namespace std::chrono_literals;
  capture_server collector;
  auto t = start({"--set", "tracing.otlp_endpoint=" + collector.url("/v1/traces"), "--set", "tracing.export_ms=50"});
  auto token = json_string(sign_up(*t, "ws-traced@example.com"), "access_token");
  auto doc = run(*t,
                 "[{\"wait\":{\"type\":\"ready\"}}," + send_chat("c1", "traced over ws") + ","
                   + R"({"wait":{"type":"chat.completion","id":"c1"}},)" + send_chat("s1", "streamed and traced", true)
                   + "," + R"({"wait":{"type":"chat.done","id":"s1"}}])",
                 token);
  ASSERT_TRUE(doc.IsObject());
  ASSERT_TRUE(doc["error"].IsNull()) << last_output;
  std::vector<otlp_span> spans, chats;
  const otlp_span* handshake = nullptr;
  size_t upstreams = 0;
  auto deadline = std::chrono::steady_clock::now() + 15s;
  do {
    spans = otlp_spans(collector);
    handshake = nullptr;
    for (const auto& s : spans)
      if (s.name == "GET /ws")
        handshake = &s;
    chats.clear();
    upstreams = 0;
    if (handshake)
      for (const auto& s : spans)
        if (s.name == "POST /v1/chat/completions" && s.parent == handshake->id)
          chats.push_back(s);
    for (const auto& chat : chats)
      for (const auto& s : spans)
        upstreams += s.name == "upstream" && s.parent == chat.id;
    if (chats.size() == 2 && upstreams == 2)
      break;
    std::this_thread::sleep_for(50ms);
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_TRUE(handshake) << spans.size() << " spans arrived";
  EXPECT_EQ(handshake->kind, 2);
  ASSERT_EQ(chats.size(), 2u) << "both chats, under the handshake";
  EXPECT_EQ(upstreams, 2u) << "each chat's upstream call under it";
  for (const auto& chat : chats) {
    EXPECT_EQ(chat.kind, 1) << "an INTERNAL span";
    EXPECT_EQ(chat.trace, handshake->trace);
    EXPECT_GE(chat.start, handshake->start);
  }
}

} // namespace
} // namespace troupe::testing
