#include "http/plan_job.hpp"

#include "config/hashing.hpp"
#include "http/json_body.hpp"
#include "http/jwt.hpp"
#include "http/plans.hpp"

#include "actors/messages.hpp"
#include "config/json.hpp"
#include "config/log.hpp"
#include "config/service_error.hpp"

#include <caf/all.hpp>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace troupe::http {

namespace {

using plan_answer_atom = caf::atom_constant<caf::atom("planans")>;
using plan_late_atom = caf::atom_constant<caf::atom("planlate")>;

constexpr auto db_timeout = std::chrono::seconds{30};

/// One model call's outcome as the runner keeps it.
struct attempt_record {
  int status = 0;
  std::string model;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  bool cached = false;
};

struct runner_state {
  std::shared_ptr<plan_jobs> jobs;
  job_record job;
  caf::typed_response_promise<std::string> promise;
  bool over = false;
  plan_prompt prompt;
  std::string repository_id;
  std::vector<attempt_record> calls;
  uint32_t waiting_for = 0; // the call whose answer counts (a late answer of an earlier one is ignored)
  std::string first_answer; // the first call's content, for the retry
  static inline const char* name = "plan_job";
};

/// The interface with the runner's own messages: a model call's answer, or its deadline, for call number `call`.
using plan_runner_actor = job_runner_actor::extend<
  caf::reacts_to<plan_answer_atom, uint32_t, int32_t, std::string, bool>, caf::reacts_to<plan_late_atom, uint32_t>>;

using runner_actor = plan_runner_actor::stateful_base<runner_state>;

void finish(runner_actor* self, caf::expected<std::string> outcome) {
  auto& st = self->state;
  if (st.over)
    return;
  st.over = true;
  if (outcome)
    st.promise.deliver(std::move(*outcome));
  else
    st.promise.deliver(outcome.error());
  self->quit();
}

void fail(runner_actor* self, service_error code, const std::string& message) {
  finish(self, make_error(code, message));
}

/// Records the step in the job's detail, then goes on (after the write: it cannot overtake a later one).
template <class Then>
void step(runner_actor* self, const char* name, double progress, Then then) {
  auto& st = self->state;
  auto db = st.jobs->db();
  if (!db) {
    fail(self, service_error::unavailable, "The database is restarting.");
    return;
  }
  auto detail = std::string(R"({"step":")") + name + R"(","model_calls":)" + std::to_string(st.calls.size()) + "}";
  self->request(*db, caf::duration{db_timeout}, job_progress_atom::value, st.job.id, st.job.lease_owner, progress,
                std::move(detail))
    .then([then](bool) mutable { then(); },
          [self](caf::error& err) { finish(self, std::move(err)); }); // a lost lease ends the attempt
}

/// The plan's metadata: the model, the tokens of every call, the retrieved files, the calls, the cache.
std::string metadata_json(const runner_state& st) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w{buffer};
  w.StartObject();
  auto model = !st.calls.empty() && !st.calls.back().model.empty() ? st.calls.back().model : st.prompt.model;
  w.Key("model");
  w.String(model.c_str(), static_cast<rapidjson::SizeType>(model.size()));
  int64_t prompt_tokens = 0, completion_tokens = 0;
  for (const auto& c : st.calls) {
    prompt_tokens += c.prompt_tokens;
    completion_tokens += c.completion_tokens;
  }
  w.Key("prompt_tokens");
  w.Int64(prompt_tokens);
  w.Key("completion_tokens");
  w.Int64(completion_tokens);
  w.Key("total_tokens");
  w.Int64(prompt_tokens + completion_tokens);
  w.Key("model_calls");
  w.Uint64(st.calls.size());
  w.Key("cached");
  w.Bool(!st.calls.empty() && st.calls.back().cached);
  w.Key("retrieved");
  w.StartArray();
  for (const auto& hit : st.prompt.context) {
    w.StartObject();
    w.Key("path");
    w.String(hit.path.c_str(), static_cast<rapidjson::SizeType>(hit.path.size()));
    w.Key("start_line");
    w.Int(hit.start_line);
    w.Key("end_line");
    w.Int(hit.end_line);
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

void store(runner_actor* self, const checked_plan& plan) {
  step(self, "storing", 0.9, [self, plan] {
    auto& st = self->state;
    auto db = st.jobs->db();
    if (!db) {
      fail(self, service_error::unavailable, "The database is restarting.");
      return;
    }
    plan_record record;
    record.user_id = st.job.user_id;
    record.repository_id = st.repository_id;
    record.job_id = st.job.id;
    record.title = st.prompt.title.empty() ? plan.title : st.prompt.title;
    record.overview = plan.overview;
    record.sections = plan.sections;
    record.metadata = metadata_json(st);
    record.prompt = st.prompt.prompt;
    self->request(*db, caf::duration{db_timeout}, plan_store_atom::value, std::move(record))
      .then(
        [self, sections = plan.section_count](plan_record& stored) {
          rapidjson::StringBuffer buffer;
          rapidjson::Writer<rapidjson::StringBuffer> w{buffer};
          w.StartObject();
          w.Key("plan_id");
          w.String(stored.id.c_str(), static_cast<rapidjson::SizeType>(stored.id.size()));
          w.Key("title");
          w.String(stored.title.c_str(), static_cast<rapidjson::SizeType>(stored.title.size()));
          w.Key("sections");
          w.Uint64(sections);
          w.EndObject();
          finish(self, std::string{buffer.GetString(), buffer.GetSize()});
        },
        [self](caf::error& err) {
          // The repository (or the user) was deleted meanwhile: nothing to store it for, ever.
          if (service_code(err) == service_error::not_found)
            fail(self, service_error::invalid_input, "The repository was deleted before its plan was stored.");
          else
            finish(self, std::move(err));
        });
  });
}

/// Asks the model through the gateway's route, as the job's user.
void call_model(runner_actor* self, std::string body) {
  auto& st = self->state;
  auto runtime = st.jobs->get();
  if (!runtime || !runtime->chat || !runtime->jwt) {
    fail(self, service_error::unavailable, "The server is starting or stopping; the plan is made at the next attempt.");
    return;
  }
  auto now = runtime->now_unix ? runtime->now_unix()
                               : std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count();
  std::string token;
  try {
    token = runtime->jwt->issue(st.job.user_id, "user", random_token_id(), now);
  } catch (const std::exception& e) {
    fail(self, service_error::invalid_input, std::string{"Signing the plan's call failed: "} + e.what());
    return;
  }
  auto call = ++st.waiting_for;
  request req;
  req.id = "plan-" + st.job.id + "-" + std::to_string(st.job.attempts) + "-" + std::to_string(call);
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.route = "/v1/chat/completions";
  req.headers = {{"Authorization", "Bearer " + token}, {"Content-Type", "application/json"}};
  // The second call follows an answer that did not fit: it must reach the model, not replay a cached answer (and
  // its own answer, which the first call's misfit shaped, is not one to serve to anybody else).
  if (st.calls.size() >= 1)
    req.headers.emplace_back("X-Troupe-Cache", "off");
  req.body = std::move(body);
  req.remote_address = "127.0.0.1";
  req.started = std::chrono::steady_clock::now();
  req.started_unix_ns = tracing::unix_now_ns();
  // In the job attempt's trace (actors/jobs.hpp), under its span: the upstream sees it, the call's spans join it.
  req.trace = tracing::context_for(st.job.traceparent, std::nullopt, 0);
  plan_runner_actor me = self;
  auto r = std::make_shared<responder>(std::move(req), [me, call](response res) {
    std::string cache;
    for (const auto& [name, value] : res.headers)
      if (name == "X-Cache")
        cache = value;
    caf::anon_send(me, plan_answer_atom::value, call, static_cast<int32_t>(res.status), std::move(res.body),
                   cache == "HIT");
  });
  r->export_spans(runtime->spans);
  self->delayed_send(self, st.jobs->options().call_timeout, plan_late_atom::value, call);
  try {
    runtime->chat(std::move(r));
  } catch (const std::exception& e) {
    // A route handler that throws is a bug (the server's dispatch would answer 500): the job fails for good rather
    // than its runner dying unanswered.
    fail(self, service_error::invalid_input, std::string{"The gateway failed the plan's call: "} + e.what());
  }
}

/// The gateway's error message in an answer body ("" if it has none).
std::string error_message(const std::string& body) {
  auto parsed = json::parse(body);
  if (!parsed || !parsed->IsObject() || !parsed->HasMember("error") || !(*parsed)["error"].IsObject())
    return {};
  return string_member((*parsed)["error"], "message");
}

void on_answer(runner_actor* self, int32_t status, const std::string& body, bool cached) {
  auto& st = self->state;
  attempt_record call;
  call.status = status;
  call.cached = cached;
  if (status != 200) {
    st.calls.push_back(call);
    auto why = error_message(body);
    auto message = "The model call was refused (" + std::to_string(status) + ")" + (why.empty() ? "." : ": " + why);
    // What another attempt would meet again fails for good; overload, limits and outages are retried.
    bool lasting = status == 400 || status == 401 || status == 402 || status == 403 || status == 404 || status == 413;
    fail(self, lasting ? service_error::invalid_input : service_error::unavailable, message);
    return;
  }
  auto parts = completion_of(body);
  if (!parts) {
    st.calls.push_back(call);
    fail(self, service_error::upstream_failed, "The model's answer was not a chat completion.");
    return;
  }
  call.model = parts->model;
  call.prompt_tokens = parts->prompt_tokens;
  call.completion_tokens = parts->completion_tokens;
  st.calls.push_back(call);
  std::string problem;
  if (auto plan = check_plan_answer(parts->content, problem)) {
    store(self, *plan);
    return;
  }
  if (st.calls.size() >= 2) {
    fail(self, service_error::invalid_input, "The model's plan did not fit its shape twice: " + problem);
    return;
  }
  log::info("plan answer did not fit; asking again",
            log::fields{}.add("job_id", st.job.id).add("problem", problem));
  auto retry = retry_request(st.prompt, parts->content, problem);
  step(self, "generating", 0.6, [self, retry] { call_model(self, retry); });
}

void generate(runner_actor* self) {
  step(self, "generating", 0.3, [self] { call_model(self, plan_request(self->state.prompt)); });
}

void retrieve(runner_actor* self) {
  auto& st = self->state;
  auto query = plan_search_query(st.prompt.prompt);
  if (query.empty()) {
    generate(self);
    return;
  }
  step(self, "retrieving", 0.1, [self, query] {
    auto& st = self->state;
    auto db = st.jobs->db();
    if (!db) {
      fail(self, service_error::unavailable, "The database is restarting.");
      return;
    }
    self->request(*db, caf::duration{db_timeout}, repo_search_atom::value, st.job.user_id, st.repository_id, query,
                  st.jobs->options().context_segments)
      .then(
        [self](std::vector<search_hit>& hits) {
          self->state.prompt.context = std::move(hits);
          generate(self);
        },
        [self](caf::error& err) {
          switch (service_code(err)) {
            case service_error::not_found:
              fail(self, service_error::invalid_input, "The repository was deleted.");
              break;
            case service_error::invalid_input:
              generate(self); // a query the search cannot take: plan without excerpts
              break;
            default:
              finish(self, std::move(err));
          }
        });
  });
}

plan_runner_actor::behavior_type runner_impl(runner_actor* self, std::shared_ptr<plan_jobs> jobs) {
  self->state.jobs = std::move(jobs);
  return {
    [self](job_run_atom, job_record& job) {
      auto& st = self->state;
      st.promise = self->make_response_promise<std::string>();
      st.job = std::move(job);
      auto parsed = json::parse(st.job.payload);
      if (!parsed || !parsed->IsObject()) {
        fail(self, service_error::invalid_input, "The plan job's payload is not a JSON object.");
        return st.promise;
      }
      const auto& payload = parsed.document();
      st.repository_id = string_member(payload, "repository_id");
      st.prompt.prompt = string_member(payload, "prompt");
      st.prompt.title = string_member(payload, "title");
      st.prompt.model = string_member(payload, "model");
      if (st.prompt.model.empty())
        st.prompt.model = st.jobs->options().default_model;
      if (st.repository_id.empty() || st.prompt.prompt.empty() || st.job.user_id.empty())
        fail(self, service_error::invalid_input, "The plan job's payload names no repository, prompt or user.");
      else
        retrieve(self);
      return st.promise;
    },
    [self](plan_answer_atom, uint32_t call, int32_t status, const std::string& body, bool cached) {
      if (self->state.over || call != self->state.waiting_for)
        return;
      ++self->state.waiting_for; // answered: its timer no longer counts
      on_answer(self, status, body, cached);
    },
    [self](plan_late_atom, uint32_t call) {
      if (!self->state.over && call == self->state.waiting_for)
        fail(self, service_error::timeout, "The model did not answer in time.");
    },
  };
}

} // namespace

job_handler plan_job_handler(std::shared_ptr<plan_jobs> jobs) {
  return [jobs](caf::local_actor* queue, const job_record&) -> job_runner_actor {
    return queue->spawn<caf::linked>(runner_impl, jobs);
  };
}

} // namespace troupe::http
