#include "http/repository_routes.hpp"

#include "http/auth.hpp"
#include "http/body_schemas.hpp"
#include "http/error_mapping.hpp"
#include "http/json_body.hpp"
#include "http/json_out.hpp"
#include "config/json_schema.hpp"
#include "http/user_query.hpp"

#include "actors/job_events.hpp"
#include "actors/paths.hpp"
#include "config/json.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>


namespace troupe::http {

namespace {

constexpr size_t max_query_bytes = 1000;

struct route_context {
  authenticator& auth;
  repository_route_options opts;
  json_schema create{schemas::repository};

  route_context(authenticator& a, repository_route_options o) : auth(a), opts(std::move(o)) {}
  caf::duration timeout() const { return caf::duration{auth.bridge().timeout()}; }
};

void time_or_null(json_writer& w, const char* key, int64_t unix_ms) {
  w.Key(key);
  if (unix_ms == 0)
    w.Null();
  else
    w.String(rfc3339_from_ms(unix_ms).c_str());
}

void write_repository(json_writer& w, const repository_record& repo, bool with_counts) {
  w.StartObject();
  write_string(w, "id", repo.id);
  write_string(w, "name", repo.name);
  time_or_null(w, "created_at", repo.created_at_ms);
  if (with_counts) {
    w.Key("files");
    w.Int64(repo.files);
    w.Key("bytes");
    w.Int64(repo.bytes);
    w.Key("files_done");
    w.Int64(repo.files_done);
    w.Key("files_failed");
    w.Int64(repo.files_failed);
  }
  w.EndObject();
}

void write_file(json_writer& w, const file_record& f) {
  w.StartObject();
  write_string(w, "path", f.path);
  w.Key("size");
  w.Int64(f.size);
  write_string_or_null(w, "sha256", f.sha256);
  w.Key("lines");
  if (f.lines < 0)
    w.Null();
  else
    w.Int64(f.lines);
  write_string_or_null(w, "language", f.language);
  w.Key("binary");
  if (f.binary < 0)
    w.Null();
  else
    w.Bool(f.binary == 1);
  write_string(w, "status", f.status);
  write_string_or_null(w, "error", f.error);
  time_or_null(w, "updated_at", f.updated_at_ms);
  w.EndObject();
}

/// The job's fields as GET /api/jobs/{id} and its event stream show them (the object is left open).
void write_job_fields(json_writer& w, const job_record& job) {
  write_string(w, "id", job.id);
  write_string(w, "kind", job.kind);
  write_string(w, "state", job.state);
  w.Key("attempts");
  w.Int(job.attempts);
  w.Key("max_attempts");
  w.Int(job.max_attempts);
  w.Key("progress");
  w.Double(job.progress);
  write_stored_json(w, "detail", job.detail, false); // written by its runner
  write_string_or_null(w, "error", job.error);
  if (job.result.empty()) {
    w.Key("result");
    w.Null();
  } else {
    write_stored_json(w, "result", job.result, false); // written by the job
  }
  time_or_null(w, "created_at", job.created_at_ms);
  time_or_null(w, "updated_at", job.updated_at_ms);
  time_or_null(w, "run_at", job.state == "queued" || job.state == "retrying" ? job.run_at_ms : 0);
  time_or_null(w, "finished_at", job.finished_at_ms);
}

std::string job_json(const job_record& job, const std::vector<job_attempt>& attempts) {
  return json_of([&](json_writer& w) {
    w.StartObject();
    write_job_fields(w, job);
    w.Key("attempt_log");
    w.StartArray();
    for (const auto& a : attempts) {
      w.StartObject();
      w.Key("attempt");
      w.Int(a.attempt);
      write_string(w, "node", a.owner);
      time_or_null(w, "started_at", a.started_at_ms);
      time_or_null(w, "finished_at", a.finished_at_ms);
      write_string_or_null(w, "outcome", a.outcome);
      write_string_or_null(w, "error", a.error);
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  });
}

/// One watch's server-sent events (actors/job_events.hpp calls it from the watcher's thread). The stream starts with
/// the first update: until then a refused watch can still be answered with its error.
class job_event_stream final : public job_event_sink {
public:
  explicit job_event_stream(std::shared_ptr<responder> r) : responder_(std::move(r)) {}

  ~job_event_stream() override {
    if (!stream_)
      return;
    // Dropped by the watcher without a close: the client left, or the server is draining (then it is told why, so
    // that it reconnects rather than taking the end of the stream for the end of the job).
    if (!closed_ && !stream_->gone() && stream_->draining())
      write_error("The server is restarting; reconnect to go on.");
    stream_->end();
  }

  bool update(const job_record& job) override {
    if (!stream_) {
      response head{200, "", "text/event-stream", {}};
      head.header("Cache-Control", "no-store");
      head.header("X-Accel-Buffering", "no"); // a reverse proxy in front must not hold events back
      stream_ = responder_->stream(std::move(head));
      if (!stream_)
        return false;
      // EventSource reconnects after `retry` ms; every event is a whole snapshot, so nothing is lost in between.
      if (!stream_->write("retry: 2000\n\n"))
        return false;
    }
    const char* event = job.state == "done" ? "done" : job.state == "failed" ? "failed" : "progress";
    auto data = json_of([&](json_writer& w) {
      w.StartObject();
      write_job_fields(w, job);
      w.EndObject();
    });
    return stream_->write("id: " + std::to_string(++events_) + "\nevent: " + event + "\ndata: " + data + "\n\n");
  }

  bool idle() override { return stream_ && stream_->write(": keep-alive\n\n"); }

  bool gone() const override { return !stream_ || stream_->gone() || stream_->draining(); }

  void close(const std::string& why) override {
    if (!stream_)
      return;
    closed_ = true;
    if (!why.empty())
      write_error(why);
    stream_->end();
  }

private:
  void write_error(const std::string& why) {
    stream_->write("event: error\ndata: " + json_of([&](json_writer& w) {
                     w.StartObject();
                     write_string(w, "message", why);
                     w.EndObject();
                   })
                   + "\n\n");
  }

  bool closed_ = false;
  std::shared_ptr<responder> responder_;
  std::shared_ptr<response_stream> stream_;
  uint64_t events_ = 0;
};

/// user_query (http/user_query.hpp) with this file's database and CORS policy.
template <class Reply, class Atom, class ToResponse, class... Ts>
void user_query(route_context& ctx, const std::shared_ptr<responder>& r, ToResponse to_response, Atom atom,
                Ts... args) {
  http::user_query<Reply>(ctx.auth, ctx.opts.db_query, ctx.opts.cors.get(), r, std::move(to_response), atom,
                          std::move(args)...);
}

void create_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  if (ctx.opts.cors)
    ctx.opts.cors->apply(r, false);
  auto doc = parse_json_body(r);
  if (!doc)
    return;
  if (auto bad = ctx.create.validate(*doc)) {
    r->send(error_response(service_error::invalid_input, bad->message, r->req().id, bad->param));
    return;
  }
  std::string name{(*doc)["name"].GetString(), (*doc)["name"].GetStringLength()};
  std::string why;
  if (!sanitise_filename(name, why) || name.find_first_of("/\\") != std::string::npos) {
    r->send(error_response(service_error::invalid_input,
                           "name must be valid UTF-8 without slashes, NUL or control characters, and not . or ..",
                           r->req().id, "name"));
    return;
  }
  user_query<repository_record>(
    ctx, r,
    [](const repository_record& repo) {
      return json_response(201, json_of([&](json_writer& w) { write_repository(w, repo, false); }));
    },
    repo_create_atom::value, name);
}

void list_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  user_query<std::vector<repository_record>>(
    ctx, r,
    [](const std::vector<repository_record>& repos) {
      auto res = json_response(200, json_of([&](json_writer& w) {
                                 w.StartObject();
                                 w.Key("repositories");
                                 w.StartArray();
                                 for (const auto& repo : repos)
                                   write_repository(w, repo, false);
                                 w.EndArray();
                                 w.EndObject();
                               }));
      return std::move(res.header("Cache-Control", "no-store"));
    },
    repo_list_atom::value);
}

void get_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  user_query<repository_record>(
    ctx, r,
    [](const repository_record& repo) {
      auto res = json_response(200, json_of([&](json_writer& w) { write_repository(w, repo, true); }));
      return std::move(res.header("Cache-Control", "no-store"));
    },
    repo_get_atom::value, r->req().param("id").value_or(""));
}

void files_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  auto limit = int_query_param(r, "limit", 100, 1, 1000);
  if (!limit)
    return;
  user_query<file_page>(
    ctx, r,
    [](const file_page& page) {
      auto res = json_response(200, json_of([&](json_writer& w) {
                                 w.StartObject();
                                 w.Key("files");
                                 w.StartArray();
                                 for (const auto& f : page.files)
                                   write_file(w, f);
                                 w.EndArray();
                                 write_string_or_null(w, "next_after", page.next_after);
                                 w.EndObject();
                               }));
      return std::move(res.header("Cache-Control", "no-store"));
    },
    repo_files_atom::value, r->req().param("id").value_or(""), r->req().query_param("after").value_or(""), *limit);
}

void search_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  auto limit = int_query_param(r, "limit", 20, 1, 100);
  if (!limit)
    return;
  auto query = r->req().query_param("q").value_or("");
  if (query.empty() || query.size() > max_query_bytes || !is_valid_utf8(query)
      || query.find('\0') != std::string::npos) {
    r->send(error_response(service_error::invalid_input, "q must be 1 to 1000 bytes of UTF-8 text.", r->req().id, "q"));
    return;
  }
  user_query<std::vector<search_hit>>(
    ctx, r,
    [query](const std::vector<search_hit>& hits) {
      auto res = json_response(200, json_of([&](json_writer& w) {
                                 w.StartObject();
                                 write_string(w, "query", query);
                                 w.Key("results");
                                 w.StartArray();
                                 for (const auto& hit : hits) {
                                   w.StartObject();
                                   write_string(w, "path", hit.path);
                                   w.Key("start_line");
                                   w.Int(hit.start_line);
                                   w.Key("end_line");
                                   w.Int(hit.end_line);
                                   w.Key("rank");
                                   w.Double(hit.rank);
                                   write_string(w, "snippet", hit.snippet);
                                   w.EndObject();
                                 }
                                 w.EndArray();
                                 w.EndObject();
                               }));
      return std::move(res.header("Cache-Control", "no-store"));
    },
    repo_search_atom::value, r->req().param("id").value_or(""), query, *limit);
}

void job_events_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  if (ctx.opts.cors)
    ctx.opts.cors->apply(r, false);
  auto id = r->req().param("id").value_or("");
  ctx.auth.authenticate(r, [&ctx, r, id](caf::event_based_actor* self, const identity& who) {
    auto watcher = ctx.auth.bridge().find(ctx.opts.job_events);
    if (!watcher) {
      r->fail(make_error(service_error::unavailable, "The job watcher is restarting; retry shortly."));
      return;
    }
    job_event_sink_ptr sink = std::make_shared<job_event_stream>(r);
    self->request(*watcher, ctx.timeout(), job_watch_atom::value, who.user_id, id, std::move(sink))
      .then([](bool) {}, [r](caf::error& err) { r->fail(err); });
  });
}

void job_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  if (ctx.opts.cors)
    ctx.opts.cors->apply(r, false);
  auto id = r->req().param("id").value_or("");
  ctx.auth.authenticate(r, [&ctx, r, id](caf::event_based_actor* self, const identity& who) {
    auto db = ctx.auth.bridge().find(ctx.opts.db_query);
    if (!db) {
      r->fail(make_error(service_error::unavailable, "The database is restarting; retry shortly."));
      return;
    }
    self->request(*db, ctx.timeout(), job_get_atom::value, who.user_id, id)
      .then(
        [&ctx, self, r, db](job_record& job) {
          self->request(*db, ctx.timeout(), job_attempts_atom::value, job.id)
            .then(
              [r, job](std::vector<job_attempt>& attempts) {
                auto res = json_response(200, job_json(job, attempts));
                r->send(std::move(res.header("Cache-Control", "no-store")));
              },
              [r](caf::error& err) { r->fail(err); });
        },
        [r](caf::error& err) { r->fail(err); });
  });
}

void preflight_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  answer_preflight(ctx.opts.cors.get(), r);
}

} // namespace

void add_repository_routes(router& routes, authenticator& auth, const repository_route_options& options) {
  auto ctx = std::make_shared<route_context>(auth, options);
  auto bind = [ctx](void (*handler)(route_context&, const std::shared_ptr<responder>&)) {
    return [ctx, handler](const std::shared_ptr<responder>& r) { handler(*ctx, r); };
  };
  routes.add("POST", "/api/repositories", bind(create_route));
  routes.add("GET", "/api/repositories", bind(list_route));
  routes.add("GET", "/api/repositories/{id}", bind(get_route));
  routes.add("GET", "/api/repositories/{id}/files", bind(files_route));
  routes.add("GET", "/api/repositories/{id}/search", bind(search_route));
  routes.add("GET", "/api/jobs/{id}", bind(job_route));
  // Long-lived: bounded by jobs.max_event_streams(_per_user), not by the route's concurrency limit.
  routes.add("GET", "/api/jobs/{id}/events", bind(job_events_route), without_admission_control());
  for (const char* pattern : {"/api/repositories", "/api/repositories/{id}", "/api/repositories/{id}/files",
                              "/api/repositories/{id}/search", "/api/jobs/{id}", "/api/jobs/{id}/events"})
    routes.add("OPTIONS", pattern, bind(preflight_route));
}

} // namespace troupe::http
