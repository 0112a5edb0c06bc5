// AI plans for repositories end to end (issue 18 item 1): the real binary in front of the mock upstream, PostgreSQL
// started by the harness. A plan is asked for with POST /api/repositories/{id}/plans; its job retrieves the
// repository's relevant segments by full-text search, asks the model through the gateway's own path (so the call
// is metered and cached like the user's own), checks the answer's shape (asking once more when it does not fit)
// and stores the plan; plans are their owner's.

#include "tests/actors/archive_writer.hpp"
#include "tests/integration/upload_client.hpp"
#include "tests/tools/mock_upstream_harness.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <optional>
#include <thread>
#include <set>
#include <sstream>

using namespace troupe::testing;
using troupe::archive_kind;
using namespace std::chrono_literals;

namespace {

class Plans : public upload_fixture {
protected:
  mock_upstream_process mock;

  std::unique_ptr<troupe_process> start_with_mock(std::vector<std::string> args = {}) {
    std::vector<std::string> all = {"--set", "plans.model=mock-1", "--set", "retry.base_ms=1"};
    all.insert(all.end(), args.begin(), args.end());
    return start(all, {{"TROUPE_UPSTREAMS", R"([{"name":"a","base_url":")" + mock.base_url()
                                              + R"(/v1","models":["mock-1","mock-2"]}])"}});
  }

  /// A repository holding a small codebase, processed.
  std::string processed_repository() {
    auto repo = client().create_repository("service");
    auto file = dir_.path() + "/plan-archive.tmp";
    write_archive(file, archive_kind::tar_gz,
                  {{"src/config.c", "int parse_config(const char* path) {\n  return load_file(path);\n}\n"},
                   {"src/server.c", "int listen_socket(int port) {\n  return bind_port(port);\n}\n"},
                   {"README.md", "# Service\n\nA small server.\n"}});
    std::ifstream in{file, std::ios::binary};
    std::stringstream bytes;
    bytes << in.rdbuf();
    std::filesystem::remove(file);
    std::string location;
    auto last = client().upload("service.tar.gz", repo, bytes.str(), 1 << 20, location);
    EXPECT_EQ(last.status, 204) << last.body;
    auto job = client().wait_for_job(last.header("troupe-job-id"));
    EXPECT_EQ(std::string(job["state"].GetString()), "done");
    return repo;
  }

  http_result ask(const std::string& repo, const std::string& body, const tus_client* as = nullptr) {
    return (as ? *as : client())
      .call("POST", "/api/repositories/" + repo + "/plans", body, {"Content-Type: application/json"}, false);
  }

  /// Asks for a plan and waits for its job; the job's final JSON.
  rapidjson::Document plan_job(const std::string& repo, const std::string& body) {
    auto res = ask(repo, body);
    EXPECT_EQ(res.status, 202) << res.body;
    auto job_id = json_string(res, "job_id");
    EXPECT_EQ(res.header("location"), "/api/jobs/" + job_id);
    return client().wait_for_job(job_id);
  }

  rapidjson::Document get(const std::string& path, const tus_client* as = nullptr) {
    return parse_json((as ? *as : client()).call("GET", path, "", {}, false).body);
  }

  int64_t usage_rows() { return std::stoll(db_.scalar("SELECT count(*) FROM usage_events")); }
  /// The usage rows once there are `n` (or 10 s have passed): the gateway writes them in the background, up to
  /// db.background_flush_ms after the call.
  int64_t usage_rows_reaching(int64_t n) {
    auto rows = usage_rows();
    for (auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
         rows < n && std::chrono::steady_clock::now() < deadline; rows = usage_rows())
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    return rows;
  }

  int64_t mock_requests() {
    auto doc = parse_json(http_get(mock.base_url() + "/mock/stats").body);
    return doc.IsObject() && doc.HasMember("requests") ? doc["requests"].GetInt64() : -1;
  }
};

std::string str(const rapidjson::Value& v, const char* key) {
  return v.IsObject() && v.HasMember(key) && v[key].IsString() ? v[key].GetString() : "";
}

TEST_F(Plans, APlanIsMadeFromTheRepositoryThroughTheGateway) {
  auto t = start_with_mock();
  auto repo = processed_repository();
  auto job = plan_job(repo, R"({"prompt":"Make parse_config read the listen_socket port from the environment."})");
  ASSERT_EQ(str(job, "state"), "done") << str(job, "error");
  EXPECT_EQ(str(job, "kind"), "plan");
  auto plan_id = str(job["result"], "plan_id");
  ASSERT_EQ(plan_id.size(), 36u);

  auto plan = get("/api/plans/" + plan_id);
  ASSERT_TRUE(plan.IsObject());
  EXPECT_EQ(str(plan, "repository_id"), repo);
  EXPECT_EQ(str(plan, "job_id"), str(job, "id"));
  std::string prompt = "Make parse_config read the listen_socket port from the environment.";
  EXPECT_EQ(str(plan, "title"), "Plan: " + prompt.substr(0, 60)); // the mock's title
  EXPECT_EQ(str(plan, "prompt"), "Make parse_config read the listen_socket port from the environment.");
  // The mock makes one section per retrieved file: the search found the two files the prompt names.
  std::set<std::string> files;
  for (const auto& section : plan["sections"].GetArray()) {
    EXPECT_GE(section["steps"].Size(), 1u);
    for (const auto& f : section["files"].GetArray())
      files.insert(f.GetString());
  }
  EXPECT_EQ(files, (std::set<std::string>{"src/config.c", "src/server.c"}));
  const auto& meta = plan["metadata"];
  EXPECT_EQ(str(meta, "model"), "mock-1");
  EXPECT_EQ(meta["model_calls"].GetInt(), 1);
  EXPECT_GT(meta["prompt_tokens"].GetInt64(), 0);
  EXPECT_GT(meta["completion_tokens"].GetInt64(), 0);
  EXPECT_FALSE(meta["cached"].GetBool());
  EXPECT_EQ(meta["retrieved"].Size(), 2u);

  // The call was the user's own: metered like any gateway call.
  EXPECT_EQ(usage_rows_reaching(1), 1);
  EXPECT_EQ(mock_requests(), 1);

  // Its progress stream ends with the result, after the storing step.
  auto events = client().call("GET", "/api/jobs/" + str(job, "id") + "/events", "", {}, false);
  EXPECT_NE(events.body.find("event: done"), std::string::npos) << events.body;
  EXPECT_NE(events.body.find(R"("step":"storing")"), std::string::npos) << events.body;

  // The same request again is answered from the gateway's cache: a second plan, no second upstream call.
  auto again = plan_job(repo, R"({"prompt":"Make parse_config read the listen_socket port from the environment."})");
  ASSERT_EQ(str(again, "state"), "done") << str(again, "error");
  auto second = get("/api/plans/" + str(again["result"], "plan_id"));
  EXPECT_NE(str(second, "id"), plan_id);
  EXPECT_EQ(str(second, "title"), str(plan, "title"));
  EXPECT_TRUE(second["metadata"]["cached"].GetBool());
  EXPECT_EQ(mock_requests(), 1);

  auto list = get("/api/repositories/" + repo + "/plans");
  ASSERT_EQ(list["data"].Size(), 2u);
  EXPECT_EQ(str(list["data"][0], "id"), str(second, "id")); // newest first
  EXPECT_EQ(str(list["data"][1], "id"), plan_id);

  // Another user sees none of it.
  tus_client other{*t, bearer_of(*t, "other@example.com")};
  EXPECT_EQ(other.call("GET", "/api/plans/" + plan_id, "", {}, false).status, 404);
  EXPECT_EQ(other.call("GET", "/api/repositories/" + repo + "/plans", "", {}, false).status, 404);
  EXPECT_EQ(ask(repo, R"({"prompt":"mine now"})", &other).status, 404);
  EXPECT_EQ(other.call("DELETE", "/api/plans/" + plan_id, "", {}, false).status, 404);

  EXPECT_EQ(client().call("DELETE", "/api/plans/" + plan_id, "", {}, false).status, 204);
  EXPECT_EQ(client().call("GET", "/api/plans/" + plan_id, "", {}, false).status, 404);
  EXPECT_EQ(get("/api/repositories/" + repo + "/plans")["data"].Size(), 1u);
}

TEST_F(Plans, BadRequestsAreRefusedBeforeAnyJob) {
  auto t = start_with_mock();
  auto repo = client().create_repository("empty");
  for (const char* body : {R"({})", R"({"prompt":""})", R"({"prompt":"x","extra":1})", R"({"prompt":"x","model":""})",
                           R"({"prompt":7})"}) {
    auto res = ask(repo, body);
    EXPECT_EQ(res.status, 400) << body << ": " << res.body;
  }
  EXPECT_EQ(ask("00000000-0000-0000-0000-000000000000", R"({"prompt":"x"})").status, 404);
  EXPECT_EQ(ask("not-a-uuid", R"({"prompt":"x"})").status, 404);
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM jobs WHERE kind = 'plan'"), "0");
}

// A user has at most plans.max_active_per_user plan jobs queued or running: the next request is refused (429)
// before any job exists, and is taken again once one has ended.
TEST_F(Plans, AUsersPlansInTheMakingAreBounded) {
  auto t = start_with_mock({"--set", "plans.max_active_per_user=1"});
  auto repo = client().create_repository("bounded");
  auto first = ask(repo, R"({"prompt":"a slow plan [[mock latency_ms=3000]]"})"); // the model takes 3 s
  ASSERT_EQ(first.status, 202) << first.body;
  auto refused = ask(repo, R"({"prompt":"another plan"})");
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_FALSE(refused.header("retry-after").empty());
  EXPECT_EQ(db_.scalar("SELECT count(*) FROM jobs WHERE kind = 'plan'"), "1");
  auto job = client().wait_for_job(json_string(first, "job_id"));
  ASSERT_EQ(str(job, "state"), "done") << str(job, "error");
  EXPECT_EQ(ask(repo, R"({"prompt":"another plan"})").status, 202);
}

TEST_F(Plans, AnAnswerThatDoesNotFitIsAskedForOnceMore) {
  auto t = start_with_mock();
  auto repo = processed_repository();
  auto job = plan_job(repo, R"({"prompt":"Rename parse_config [invalid-plan-once]","title":"Renaming"})");
  ASSERT_EQ(str(job, "state"), "done") << str(job, "error");
  auto plan = get("/api/plans/" + str(job["result"], "plan_id"));
  EXPECT_EQ(plan["metadata"]["model_calls"].GetInt(), 2);
  EXPECT_EQ(str(plan, "title"), "Renaming"); // the user's title wins over the model's
  EXPECT_EQ(usage_rows_reaching(2), 2); // both calls were metered
}

TEST_F(Plans, AnAnswerThatNeverFitsFailsTheJobAndStoresNothing) {
  auto t = start_with_mock();
  auto repo = processed_repository();
  auto job = plan_job(repo, R"({"prompt":"Rename parse_config [invalid-plan]"})");
  ASSERT_EQ(str(job, "state"), "failed");
  EXPECT_NE(str(job, "error").find("did not fit its shape twice"), std::string::npos) << str(job, "error");
  EXPECT_NE(str(job, "error").find("sections"), std::string::npos) << str(job, "error");
  EXPECT_EQ(job["attempts"].GetInt(), 1); // for good: another attempt would not fit either
  EXPECT_EQ(get("/api/repositories/" + repo + "/plans")["data"].Size(), 0u);
}

TEST_F(Plans, AModelNoUpstreamServesFailsTheJobWithTheGatewaysReason) {
  auto t = start_with_mock();
  auto repo = processed_repository();
  auto job = plan_job(repo, R"({"prompt":"Rename parse_config","model":"no-such-model"})");
  ASSERT_EQ(str(job, "state"), "failed");
  EXPECT_NE(str(job, "error").find("no-such-model"), std::string::npos) << str(job, "error");
  EXPECT_EQ(job["attempts"].GetInt(), 1);
  EXPECT_EQ(mock_requests(), 0);
}

} // namespace

// Every job attempt is a trace of its own (tracing.sample_ratio 1 here): a CONSUMER span "job <kind>" whose
// children are an upload's steps and a plan's model call through the gateway (with that call's own stages).
TEST_F(Plans, JobAttemptsAreTracedWithTheirStepsAndCalls) {
  capture_server collector;
  auto t = start_with_mock({"--set", "tracing.otlp_endpoint=" + collector.url("/v1/traces"), "--set",
                            "tracing.export_ms=50"});
  auto repo = processed_repository();
  auto job = plan_job(repo, R"({"prompt":"Make parse_config read the listen_socket port from the environment."})");
  ASSERT_EQ(str(job, "state"), "done") << str(job, "error");
  auto find = [](const std::vector<otlp_span>& spans, const std::string& name, const std::string& parent = "") {
    for (const auto& s : spans)
      if (s.name == name && (parent.empty() || s.parent == parent))
        return std::optional<otlp_span>{s};
    return std::optional<otlp_span>{};
  };
  std::vector<otlp_span> spans;
  std::optional<otlp_span> upload_job, plan, call, upstream;
  auto deadline = std::chrono::steady_clock::now() + 15s;
  do {
    spans = otlp_spans(collector);
    upload_job = find(spans, "job upload");
    plan = find(spans, "job plan");
    call = plan ? find(spans, "POST /v1/chat/completions", plan->id) : std::nullopt;
    upstream = call ? find(spans, "upstream", call->id) : std::nullopt;
    if (upload_job && upstream && find(spans, "upload processing", upload_job->id))
      break;
    std::this_thread::sleep_for(50ms);
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_TRUE(upload_job && plan && call && upstream) << spans.size() << " spans arrived";
  EXPECT_EQ(upload_job->kind, 5) << "a CONSUMER span";
  EXPECT_EQ(upload_job->parent, "") << "a job attempt starts its trace";
  EXPECT_EQ(upload_job->attributes["troupe.job.kind"], "upload");
  // The upload's steps, in its trace, under it, within it.
  size_t steps = 0;
  for (const auto& s : spans)
    if (s.parent == upload_job->id) {
      ++steps;
      EXPECT_EQ(s.trace, upload_job->trace) << s.name;
      EXPECT_EQ(s.name.rfind("upload ", 0), 0u) << s.name;
      EXPECT_GE(s.start, upload_job->start) << s.name;
      EXPECT_LE(s.end, upload_job->end) << s.name;
    }
  EXPECT_GE(steps, 3u) << "loading, expanding, processing (an archive)";
  // The plan's model call: an INTERNAL span of the plan's trace, its gateway stages under it.
  EXPECT_EQ(plan->kind, 5);
  EXPECT_EQ(plan->attributes["troupe.job.id"], str(job, "id"));
  EXPECT_NE(plan->trace, upload_job->trace);
  EXPECT_EQ(call->kind, 1);
  EXPECT_EQ(call->trace, plan->trace);
  EXPECT_EQ(upstream->kind, 3);
  EXPECT_EQ(upstream->trace, plan->trace);
  EXPECT_LE(plan->start, call->start);
  EXPECT_LE(call->end, plan->end);
}
