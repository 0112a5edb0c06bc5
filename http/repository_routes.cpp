#include "http/repository_routes.hpp"

#include "http/auth.hpp"
#include "http/body_schemas.hpp"
#include "http/error_mapping.hpp"
#include "http/json_body.hpp"
#include "http/json_out.hpp"
#include "http/json_schema.hpp"

#include "actors/paths.hpp"
#include "config/json.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>

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

std::string job_json(const job_record& job, const std::vector<job_attempt>& attempts) {
  return json_of([&](json_writer& w) {
    w.StartObject();
    write_string(w, "id", job.id);
    write_string(w, "kind", job.kind);
    write_string(w, "state", job.state);
    w.Key("attempts");
    w.Int(job.attempts);
    w.Key("max_attempts");
    w.Int(job.max_attempts);
    w.Key("progress");
    w.Double(job.progress);
    write_string_or_null(w, "error", job.error);
    w.Key("result");
    // The stored result was written by a job; parsed with the depth limit before the writer walks it.
    auto result = json::parse(job.result);
    if (!job.result.empty() && result)
      result->Accept(w);
    else
      w.Null();
    time_or_null(w, "created_at", job.created_at_ms);
    time_or_null(w, "updated_at", job.updated_at_ms);
    time_or_null(w, "run_at", job.state == "queued" || job.state == "retrying" ? job.run_at_ms : 0);
    time_or_null(w, "finished_at", job.finished_at_ms);
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

/// An integer query parameter within [min, max], `fallback` when absent; nullopt (answered 400) when malformed.
std::optional<int32_t> int_param(const std::shared_ptr<responder>& r, const char* name, int32_t fallback, int32_t min,
                                 int32_t max) {
  auto raw = r->req().query_param(name);
  if (!raw)
    return fallback;
  int32_t value = 0;
  auto [end, ec] = std::from_chars(raw->data(), raw->data() + raw->size(), value);
  if (ec != std::errc{} || end != raw->data() + raw->size() || value < min || value > max) {
    r->send(error_response(service_error::invalid_input,
                           std::string{name} + " must be an integer from " + std::to_string(min) + " to "
                             + std::to_string(max) + ".",
                           r->req().id, name));
    return std::nullopt;
  }
  return value;
}

/// Authenticates, then sends (atom, caller's user id, args...) to db.query and answers with to_response(reply).
template <class Reply, class Atom, class ToResponse, class... Ts>
void user_query(route_context& ctx, const std::shared_ptr<responder>& r, ToResponse to_response, Atom atom,
                Ts... args) {
  if (ctx.opts.cors)
    ctx.opts.cors->apply(r, false);
  ctx.auth.authenticate(r, [&ctx, r, to_response, atom, args = std::make_tuple(std::move(args)...)](
                             caf::event_based_actor* self, const identity& who) {
    auto db = ctx.auth.bridge().find(ctx.opts.db_query);
    if (!db) {
      r->fail(make_error(service_error::unavailable, "The database is restarting; retry shortly."));
      return;
    }
    std::apply(
      [&](const auto&... a) {
        self->request(*db, ctx.timeout(), atom, who.user_id, a...)
          .then([r, to_response](Reply& reply) { r->send(to_response(reply)); },
                [r](caf::error& err) { r->fail(err); });
      },
      args);
  });
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
  auto limit = int_param(r, "limit", 100, 1, 1000);
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
  auto limit = int_param(r, "limit", 20, 1, 100);
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
  if (ctx.opts.cors)
    ctx.opts.cors->apply(r, true);
  r->send(response{204, "", "", {}});
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
  for (const char* pattern : {"/api/repositories", "/api/repositories/{id}", "/api/repositories/{id}/files",
                              "/api/repositories/{id}/search", "/api/jobs/{id}"})
    routes.add("OPTIONS", pattern, bind(preflight_route));
}

} // namespace troupe::http
