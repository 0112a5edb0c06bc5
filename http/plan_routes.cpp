#include "http/plan_routes.hpp"

#include "http/auth.hpp"
#include "http/body_schemas.hpp"
#include "http/error_mapping.hpp"
#include "http/json_body.hpp"
#include "http/json_out.hpp"
#include "http/user_query.hpp"

#include "actors/messages.hpp"

namespace troupe::http {

namespace {

struct route_context {
  authenticator& auth;
  plan_route_options opts;
  json_schema body{schemas::plan_request};

  route_context(authenticator& a, plan_route_options o) : auth(a), opts(std::move(o)) {}
};

void write_plan(json_writer& w, const plan_record& p) {
  w.StartObject();
  write_string(w, "id", p.id);
  write_string(w, "repository_id", p.repository_id);
  write_string_or_null(w, "job_id", p.job_id);
  write_string(w, "title", p.title);
  write_string(w, "overview", p.overview);
  write_stored_json(w, "sections", p.sections, true);
  write_stored_json(w, "metadata", p.metadata, false);
  write_string(w, "prompt", p.prompt);
  write_string(w, "created_at", rfc3339_from_ms(p.created_at_ms));
  w.EndObject();
}

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
  auto body = validated_json_body(r, ctx.body);
  if (!body)
    return;
  for (const char* field : {"prompt", "title", "model"})
    if (string_member(*body, field).find('\0') != std::string::npos) {
      r->send(error_response(service_error::invalid_input, "Strings must not contain NUL characters.", r->req().id,
                             field));
      return;
    }
  job_draft job;
  job.kind = "plan";
  job.max_attempts = ctx.opts.max_attempts;
  job.priority = -1; // after any upload's processing waiting for a slot: a plan waits on a model for seconds
  job.payload = json_of([&](json_writer& w) {
    w.StartObject();
    write_string(w, "repository_id", r->req().param("id").value_or(""));
    for (const char* field : {"prompt", "title", "model"})
      if (body->HasMember(field))
        write_string(w, field, string_member(*body, field));
    w.EndObject();
  });
  auto repository = r->req().param("id").value_or("");
  user_query<job_record>(
    ctx, r,
    [&ctx](const job_record& queued) {
      if (auto queue = ctx.auth.bridge().find(ctx.opts.job_queue))
        caf::anon_send(*queue, jobs_kick_atom::value); // start now rather than at the next poll
      auto res = json_response(202, json_of([&](json_writer& w) {
                                 w.StartObject();
                                 write_string(w, "object", "job");
                                 write_string(w, "job_id", queued.id);
                                 write_string(w, "state", queued.state);
                                 write_string(w, "events", "/api/jobs/" + queued.id + "/events");
                                 w.EndObject();
                               }));
      res.header("Location", "/api/jobs/" + queued.id);
      return std::move(res.header("Cache-Control", "no-store"));
    },
    plan_request_atom::value, repository, job, ctx.opts.max_active);
}

void get_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  user_query<plan_record>(
    ctx, r,
    [](const plan_record& plan) {
      auto res = json_response(200, json_of([&](json_writer& w) { write_plan(w, plan); }));
      return std::move(res.header("Cache-Control", "no-store"));
    },
    plan_get_atom::value, r->req().param("id").value_or(""));
}

void list_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  auto limit = int_query_param(r, "limit", 50, 1, 50);
  if (!limit)
    return;
  user_query<std::vector<plan_record>>(
    ctx, r,
    [](const std::vector<plan_record>& plans) {
      auto res = json_response(200, json_of([&](json_writer& w) {
                                 w.StartObject();
                                 write_string(w, "object", "list");
                                 w.Key("data");
                                 w.StartArray();
                                 for (const auto& plan : plans)
                                   write_plan(w, plan);
                                 w.EndArray();
                                 w.EndObject();
                               }));
      return std::move(res.header("Cache-Control", "no-store"));
    },
    plan_list_atom::value, r->req().param("id").value_or(""), *limit);
}

void delete_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  user_query<bool>(
    ctx, r, [](bool) { return response{204, "", "", {}}; }, plan_delete_atom::value,
    r->req().param("id").value_or(""));
}

void preflight_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  answer_preflight(ctx.opts.cors.get(), r);
}

} // namespace

void add_plan_routes(router& routes, authenticator& auth, const plan_route_options& options) {
  auto ctx = std::make_shared<route_context>(auth, options);
  auto bind = [ctx](void (*handler)(route_context&, const std::shared_ptr<responder>&)) {
    return [ctx, handler](const std::shared_ptr<responder>& r) { handler(*ctx, r); };
  };
  routes.add("POST", "/api/repositories/{id}/plans", bind(create_route));
  routes.add("GET", "/api/repositories/{id}/plans", bind(list_route));
  routes.add("GET", "/api/plans/{id}", bind(get_route));
  routes.add("DELETE", "/api/plans/{id}", bind(delete_route));
  for (const char* pattern : {"/api/repositories/{id}/plans", "/api/plans/{id}"})
    routes.add("OPTIONS", pattern, bind(preflight_route));
}

} // namespace troupe::http
