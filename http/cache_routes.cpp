#include "http/cache_routes.hpp"

#include "http/body_schemas.hpp"
#include "http/error_mapping.hpp"
#include "http/json_body.hpp"
#include "http/json_out.hpp"
#include "config/json_schema.hpp"

#include "config/service_error.hpp"

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <ctime>

namespace troupe::http {

namespace {

using std::chrono::seconds;
constexpr auto db_timeout = seconds{10};

void write_numbers(json_writer& w, const cache_numbers& n) {
  auto field = [&w](const char* key, uint64_t value) {
    w.Key(key);
    w.Uint64(value);
  };
  field("hits", n.hits);
  field("misses", n.misses);
  field("evictions", n.evictions);
  field("expirations", n.expirations);
  field("invalidations", n.invalidations);
  field("coalesced", n.coalesced);
  field("producer_failures", n.producer_failures);
  field("bytes", n.bytes);
  field("entries", n.entries);
}

std::string stats_json(const cache_stats& stats) {
  rapidjson::StringBuffer buffer;
  json_writer w{buffer};
  w.StartObject();
  w.Key("shards");
  w.Uint64(stats.shards());
  w.Key("max_bytes");
  w.Uint64(stats.max_bytes());
  w.Key("total");
  w.StartObject();
  write_numbers(w, stats.total());
  w.EndObject();
  w.Key("per_shard");
  w.StartArray();
  for (size_t i = 0; i < stats.shards(); ++i) {
    w.StartObject();
    w.Key("shard");
    w.Uint64(i);
    w.Key("max_bytes");
    w.Uint64(stats.shard_max_bytes());
    write_numbers(w, stats.snapshot(i));
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

std::string rfc3339(int64_t unix_seconds) {
  std::time_t t = unix_seconds;
  std::tm utc{};
  ::gmtime_r(&t, &utc);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buf;
}

std::string string_member(const rapidjson::Value& obj, const char* name) {
  auto m = obj.FindMember(name);
  return m == obj.MemberEnd() || !m->value.IsString() ? std::string{}
                                                      : std::string{m->value.GetString(), m->value.GetStringLength()};
}

struct route_context {
  authenticator& auth;
  cache_route_options opts;
  json_schema clear{schemas::cache_clear};

  route_context(authenticator& a, cache_route_options o) : auth(a), opts(std::move(o)) {}
  std::optional<db_query_actor> db() { return auth.bridge().find(opts.db_query); }
};

void cache_stats_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  ctx.auth.identify(r, "default", [&ctx, r](const identity&) {
    // The counters are atomics shared with the shards: no shard is asked.
    auto res = json_response(200, stats_json(*ctx.opts.stats));
    r->send(std::move(private_revalidated(res)));
  });
}

void cache_clear_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  std::string tag, prefix;
  if (!r->req().body.empty()) {
    auto doc = parse_json_body(r);
    if (!doc)
      return;
    if (auto bad = ctx.clear.validate(*doc)) {
      r->send(error_response(service_error::invalid_input, bad->message, r->req().id, bad->param));
      return;
    }
    tag = string_member(*doc, "tag");
    prefix = string_member(*doc, "prefix");
    if (!tag.empty() && !prefix.empty()) {
      r->send(
        error_response(service_error::invalid_input, "Give either tag or prefix, not both.", r->req().id, "prefix"));
      return;
    }
  }
  ctx.auth.require_admin(r, [&ctx, r, tag, prefix](caf::event_based_actor* self, const identity&) {
    std::string scope = !tag.empty() ? "tag" : !prefix.empty() ? "prefix" : "all";
    auto answer = [r, scope, tag, prefix](caf::expected<uint64_t> removed) {
      if (!removed) {
        r->fail(removed.error());
        return;
      }
      rapidjson::StringBuffer buffer;
      json_writer w{buffer};
      w.StartObject();
      w.Key("removed");
      w.Uint64(*removed);
      write_string(w, "scope", scope);
      if (scope == "tag")
        write_string(w, "tag", tag);
      else if (scope == "prefix")
        write_string(w, "prefix", prefix);
      w.EndObject();
      r->send(json_response(200, {buffer.GetString(), buffer.GetSize()}).header("Cache-Control", "no-store"));
    };
    const auto& cache = ctx.opts.invalidations ? *ctx.opts.invalidations : *ctx.opts.cache;
    if (scope == "tag")
      cache.invalidate_tag(self, tag, answer);
    else if (scope == "prefix")
      cache.invalidate_prefix(self, prefix, answer);
    else
      cache.clear(self, answer);
  });
}

void user_profile_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  auto user_id = r->req().param("id").value_or("");
  ctx.auth.authenticate(r, [&ctx, r, user_id](caf::event_based_actor* self, const identity& who) {
    // Another user's profile is "not found" rather than "forbidden": ids are not confirmed to strangers.
    if (who.user_id != user_id && who.role != "admin") {
      r->send(error_response(service_error::not_found, "No such user.", r->req().id));
      return;
    }
    cached_user_profile(
      self, *ctx.opts.cache, ctx.db(), user_id,
      [r](caf::expected<std::string> profile) {
        if (!profile) {
          if (service_code(profile.error()) == service_error::not_found)
            r->send(error_response(service_error::not_found, "No such user.", r->req().id));
          else
            r->fail(profile.error());
          return;
        }
        auto res = json_response(200, std::move(*profile));
        r->send(std::move(private_revalidated(res)));
      },
      ctx.opts.profile_ttl);
  });
}

} // namespace

std::string user_cache_key(const std::string& user_id) {
  return "user:" + user_id;
}

std::string profile_json(const user_record& user) {
  rapidjson::StringBuffer buffer;
  json_writer w{buffer};
  w.StartObject();
  write_string(w, "user_id", user.id);
  write_string(w, "email", user.email);
  write_string(w, "role", user.role);
  write_string(w, "plan", user.plan);
  w.Key("created_at");
  if (user.created_at == 0)
    w.Null();
  else
    w.String(rfc3339(user.created_at).c_str());
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

void cached_user_profile(caf::event_based_actor* self, const cache_client& cache, std::optional<db_query_actor> db,
                         const std::string& user_id, std::function<void(caf::expected<std::string>)> then,
                         std::chrono::milliseconds ttl) {
  auto key = user_cache_key(user_id);
  auto lookup = [db, user_id](caf::event_based_actor* producer_self, cache_client::result_handler done) {
    if (!db) {
      done(make_error(service_error::unavailable, "The database is restarting; retry shortly."));
      return;
    }
    producer_self->request(*db, caf::duration{db_timeout}, user_by_id_atom::value, user_id)
      .then([done](user_record& user) { done(profile_json(user)); }, [done](caf::error& err) { done(std::move(err)); });
  };
  cache.get_or_compute(self, key, ttl, {key}, std::move(lookup), std::move(then), db_timeout);
}

void add_cache_routes(router& routes, authenticator& auth, cache_route_options options) {
  // Lives as long as the routes (the process): handlers keep a reference.
  auto ctx = std::make_shared<route_context>(auth, std::move(options));
  routes.add("GET", "/api/cache/stats", [ctx](const std::shared_ptr<responder>& r) { cache_stats_route(*ctx, r); });
  routes.add("POST", "/api/cache/clear", [ctx](const std::shared_ptr<responder>& r) { cache_clear_route(*ctx, r); });
  routes.add("GET", "/api/users/{id}", [ctx](const std::shared_ptr<responder>& r) { user_profile_route(*ctx, r); });
}

} // namespace troupe::http
