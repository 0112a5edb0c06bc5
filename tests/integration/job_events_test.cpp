// Job progress streams end to end (issue 18 item 2): GET /api/jobs/{id}/events on the real binary, PostgreSQL
// started by the harness. A job held by "another node" (a row with a live lease, which this node's queue leaves
// alone) is moved by the test through the database, as that node would, and every change a client can see arrives
// as an event until the final one ends the stream; a real upload's stream ends with its result; streams are the
// owner's and bounded per user.

#include "tests/http/raw_client.hpp"
#include "tests/integration/upload_client.hpp"

#include <gtest/gtest.h>

using namespace troupe::testing;
using namespace std::chrono_literals;
using troupe::http::testing::raw_client;

namespace {

class JobEventsHttp : public upload_fixture {
protected:
  /// A job of the signed-up user, running on another node with an hour of lease left.
  std::string foreign_job() {
    auto me = parse_json(client().call("GET", "/api/me", "", {}, false).body);
    std::string user_id = me["user_id"].GetString();
    return db_.scalar("INSERT INTO jobs (user_id, kind, state, attempts, lease_owner, lease_until, detail) VALUES ('"
                      + user_id
                      + "', 'upload', 'running', 1, 'another-node', now() + interval '1 hour', "
                        "'{\"step\":\"processing\",\"files_done\":0,\"files_total\":4}') RETURNING id");
  }

  /// Opens the job's event stream on a raw connection.
  std::unique_ptr<raw_client> open_stream(const troupe_process& t, const std::string& job_id) {
    auto c = std::make_unique<raw_client>(t.port(), 10s);
    EXPECT_TRUE(c->send("GET /api/jobs/" + job_id + "/events HTTP/1.1\r\nHost: localhost\r\n" + client().bearer()
                        + "\r\nAccept: text/event-stream\r\n\r\n"));
    return c;
  }

  /// The JSON data of the first `event` event in `text` (a parse error when there is none).
  static rapidjson::Document data_of(const std::string& text, const std::string& event) {
    auto at = text.find("event: " + event + "\ndata: ");
    if (at == std::string::npos)
      return parse_json("");
    at += event.size() + 14;
    return parse_json(text.substr(at, text.find('\n', at) - at));
  }

  /// The number of times `what` occurs in `text`.
  static size_t count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size()))
      ++n;
    return n;
  }
};

TEST_F(JobEventsHttp, AStreamFollowsAJobUntilItEnds) {
  auto t = start({"--set", "jobs.events_poll_ms=50"});
  auto job = foreign_job();
  auto stream = open_stream(*t, job);
  auto seen = stream->read_until("event: progress");
  ASSERT_NE(seen.find("HTTP/1.1 200"), std::string::npos) << seen;
  EXPECT_NE(seen.find("Content-Type: text/event-stream"), std::string::npos) << seen;
  EXPECT_NE(seen.find("retry: 2000"), std::string::npos) << seen;
  EXPECT_NE(seen.find(R"("state":"running")"), std::string::npos) << seen;
  EXPECT_NE(seen.find(R"("detail":{"step":"processing","files_done":0,"files_total":4})"), std::string::npos) << seen;

  // What the other node commits arrives as it happens.
  db_.execute("UPDATE jobs SET progress = 0.5, detail = '{\"step\":\"processing\",\"files_done\":2,\"files_total\":4}' "
              "WHERE id = '" + job + "'");
  seen = stream->read_until(R"("files_done":2)");
  ASSERT_NE(seen.find(R"("progress":0.5)"), std::string::npos) << seen;
  EXPECT_EQ(count(seen, "event: progress"), 2u) << seen;

  db_.execute("UPDATE jobs SET state = 'done', progress = 1, result = '{\"files\":4}', lease_owner = NULL, "
              "lease_until = NULL, finished_at = now() WHERE id = '" + job + "'");
  seen = stream->read_until("\r\n0\r\n\r\n"); // the stream's last chunk
  auto done = data_of(seen, "done");
  ASSERT_TRUE(done.IsObject()) << seen;
  EXPECT_EQ(done["result"]["files"].GetInt(), 4);
  EXPECT_NE(seen.find("\r\n0\r\n\r\n"), std::string::npos) << seen;
  EXPECT_EQ(count(seen, "event: progress"), 2u) << seen;

  // A finished job's stream is its final event at once.
  auto again = client().call("GET", "/api/jobs/" + job + "/events", "", {}, false);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(count(again.body, "event: "), 1u) << again.body;
  EXPECT_NE(again.body.find("event: done"), std::string::npos) << again.body;
}

TEST_F(JobEventsHttp, StreamsAreTheOwnersAndBoundedPerUser) {
  auto t = start({"--set", "jobs.events_poll_ms=50", "--set", "jobs.max_event_streams_per_user=1"});
  auto job = foreign_job();
  EXPECT_EQ(http_get(t->url("/api/jobs/" + job + "/events")).status, 401);
  auto other = bearer_of(*t, "someone-else@example.com");
  EXPECT_EQ(http({"GET", t->url("/api/jobs/" + job + "/events"), "", {other}, 10000}).status, 404);
  EXPECT_EQ(client().call("GET", "/api/jobs/00000000-0000-0000-0000-000000000000/events", "", {}, false).status, 404);
  EXPECT_EQ(client().call("GET", "/api/jobs/not-a-job/events", "", {}, false).status, 404);

  auto first = open_stream(*t, job);
  ASSERT_NE(first->read_until("event: progress").find("event: progress"), std::string::npos);
  auto refused = client().call("GET", "/api/jobs/" + job + "/events", "", {}, false);
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_FALSE(refused.header("retry-after").empty());

  // A client that leaves gives its place back.
  first->close();
  bool served = false;
  for (auto deadline = std::chrono::steady_clock::now() + 10s; !served && std::chrono::steady_clock::now() < deadline;) {
    auto next = open_stream(*t, job);
    auto seen = next->read_until("\r\n\r\n");
    served = seen.find("HTTP/1.1 200") != std::string::npos;
    if (!served)
      std::this_thread::sleep_for(50ms); // the watcher notices a departed client at its next poll
  }
  EXPECT_TRUE(served);
}

TEST_F(JobEventsHttp, AnUploadsStreamEndsWithItsResult) {
  auto t = start({"--set", "jobs.events_poll_ms=50"});
  auto repo = client().create_repository("events");
  std::string location;
  auto last = client().upload("notes.txt", repo, std::string(200000, 'x') + "\nend\n", 1 << 16, location);
  ASSERT_EQ(last.status, 204) << last.body;
  auto job = last.header("troupe-job-id");
  ASSERT_FALSE(job.empty());
  auto res = client().call("GET", "/api/jobs/" + job + "/events", "", {}, false, 60000);
  ASSERT_EQ(res.status, 200) << res.body;
  auto done = data_of(res.body, "done");
  ASSERT_TRUE(done.IsObject()) << res.body;
  EXPECT_EQ(std::string(done["state"].GetString()), "done");
  EXPECT_EQ(done["progress"].GetDouble(), 1.0);
  EXPECT_EQ(done["result"]["files"].GetInt(), 1);
  EXPECT_EQ(done["result"]["bytes"].GetInt(), 200005);
  // The runner's last detail: every file and byte done, in the processing step.
  EXPECT_EQ(std::string(done["detail"]["step"].GetString()), "processing");
  EXPECT_EQ(done["detail"]["files_done"].GetInt(), 1);
  EXPECT_EQ(done["detail"]["files_total"].GetInt(), 1);
  EXPECT_EQ(done["detail"]["bytes_done"].GetInt(), 200005);
  EXPECT_EQ(done["detail"]["bytes_total"].GetInt(), 200005);
  EXPECT_EQ(res.body.find("event: failed"), std::string::npos) << res.body;
}

} // namespace
