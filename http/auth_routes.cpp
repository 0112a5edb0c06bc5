// The account routes of http/auth.hpp: register, login, refresh, logout, me and API keys.

#include "http/auth.hpp"
#include "http/body_schemas.hpp"

#include "http/error_mapping.hpp"
#include "config/hashing.hpp"
#include "http/json_body.hpp"
#include "config/json_schema.hpp"
#include "http/traffic.hpp"

#include "actors/sessions.hpp"
#include "config/prices.hpp"
#include "persistence/uploads.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <functional>
#include <optional>
#include <vector>

namespace troupe::http {

namespace {

using std::chrono::seconds;
constexpr auto db_timeout = seconds{10};
constexpr const char* api_key_prefix = "trp_";

/// Builds a JSON object with RapidJSON's writer (strings escaped).
class json_object {
public:
  json_object() { w_.StartObject(); }
  json_object& str(const char* key, const std::string& value) {
    w_.Key(key);
    w_.String(value.c_str(), static_cast<rapidjson::SizeType>(value.size()));
    return *this;
  }
  json_object& num(const char* key, int64_t value) {
    w_.Key(key);
    w_.Int64(value);
    return *this;
  }
  json_object& num_or_null(const char* key, std::optional<int64_t> value) {
    w_.Key(key);
    if (value)
      w_.Int64(*value);
    else
      w_.Null();
    return *this;
  }
  /// A unix time as RFC 3339, or null for 0.
  json_object& time(const char* key, int64_t unix_seconds) {
    w_.Key(key);
    if (unix_seconds == 0) {
      w_.Null();
      return *this;
    }
    std::time_t t = unix_seconds;
    std::tm utc{};
    ::gmtime_r(&t, &utc);
    char buf[32];
    std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &utc);
    w_.String(buf);
    return *this;
  }
  json_object& str_or_null(const char* key, const std::string& value) {
    if (!value.empty())
      return str(key, value);
    w_.Key(key);
    w_.Null();
    return *this;
  }
  json_object& strings_or_null(const char* key, const std::vector<std::string>& values) {
    w_.Key(key);
    if (values.empty()) {
      w_.Null();
      return *this;
    }
    w_.StartArray();
    for (const auto& v : values)
      w_.String(v.c_str(), static_cast<rapidjson::SizeType>(v.size()));
    w_.EndArray();
    return *this;
  }
  json_object& raw(const char* key, const std::string& json) {
    w_.Key(key);
    w_.RawValue(json.c_str(), json.size(), rapidjson::kObjectType);
    return *this;
  }
  std::string done() {
    w_.EndObject();
    return {buffer_.GetString(), buffer_.GetSize()};
  }

private:
  rapidjson::StringBuffer buffer_;
  rapidjson::Writer<rapidjson::StringBuffer> w_{buffer_};
};


} // namespace

namespace {

/// The token pair of a successful login or refresh.
response token_response(const std::string& access, const std::string& refresh, int64_t expires_in) {
  auto res = json_response(200, json_object{}
                                  .str("access_token", access)
                                  .str("refresh_token", refresh)
                                  .str("token_type", "Bearer")
                                  .num("expires_in", expires_in)
                                  .done());
  res.header("Cache-Control", "no-store");
  return res;
}

/// "30d", "12h", "30m" or "30s" for a number of seconds (the largest unit that divides it).
std::string duration_text(int64_t seconds) {
  for (auto [unit, size] : {std::pair{'d', 86400}, std::pair{'h', 3600}, std::pair{'m', 60}})
    if (seconds % size == 0)
      return std::to_string(seconds / size) + unit;
  return std::to_string(seconds) + "s";
}

/// A budget_duration ("<n>s", "<n>m", "<n>h" or "<n>d", as the schema checked it) in seconds.
int64_t duration_seconds(const std::string& text) {
  auto n = std::stoll(text.substr(0, text.size() - 1));
  switch (text.back()) {
  case 'd':
    return n * 86400;
  case 'h':
    return n * 3600;
  case 'm':
    return n * 60;
  default:
    return n;
  }
}

/// A key as GET /api/keys shows it: with its limits (null: none) and, from a listing, `spend` (USD settled in the
/// current budget period, or over the key's life without a budget_duration) and `budget_reset_at`.
std::string key_json(const api_key_record& key, const std::string& full_key = "") {
  json_object o;
  o.str("id", key.id).str("name", key.name).str("hint", std::string{api_key_prefix} + "..." + key.last4);
  if (!full_key.empty())
    o.str("key", full_key);
  const auto& l = key.limits;
  auto positive = [](int64_t v) { return v > 0 ? std::optional<int64_t>{v} : std::nullopt; };
  o.strings_or_null("models", l.models)
    .raw("max_budget", l.max_budget_pusd > 0 ? config::usd_text(l.max_budget_pusd) : "null")
    .str_or_null("budget_duration", l.budget_duration_s > 0 ? duration_text(l.budget_duration_s) : "")
    .num_or_null("tpm_limit", positive(l.tpm_limit))
    .num_or_null("rpm_limit", positive(l.rpm_limit))
    .num_or_null("max_parallel_requests", positive(l.max_parallel_requests))
    .raw("spend", config::usd_text(key.spend_pusd))
    .time("budget_reset_at", l.budget_duration_s > 0 && key.period_start > 0 ? key.period_start + l.budget_duration_s
                                                                             : 0);
  return o.time("created_at", key.created_at)
    .time("last_used_at", key.last_used_at)
    .time("revoked_at", key.revoked_at)
    .done();
}

struct route_context {
  authenticator& auth;
  json_schema credentials{schemas::credentials};
  json_schema registration{schemas::registration};
  json_schema refresh{schemas::refresh};
  json_schema logout{schemas::logout};
  json_schema key{schemas::api_key};
  std::atomic<size_t> next_hasher{0};
  std::string dummy_hash; // verified against for unknown emails, so both failures take the same time

  explicit route_context(authenticator& a) : auth(a) {}

  std::optional<caf::actor> hasher() {
    auto n = std::max<size_t>(1, auth.options().hashers);
    return auth.bridge().find("auth.hasher." + std::to_string(next_hasher++ % n));
  }
  std::optional<db_query_actor> db() { return auth.bridge().find(auth.options().db_query); }

  /// Runs `job` in a bridge worker once the client's address (or `subject`, when given) has a token of the "auth"
  /// policy.
  void run_limited(const std::shared_ptr<responder>& r, std::function<void(caf::event_based_actor*)> job,
                   std::string subject = {}) {
    if (subject.empty())
      subject = "ip:" + auth.client_ip(r->req());
    auth.bridge().run(r, [this, r, job = std::move(job), subject](caf::event_based_actor* self) {
      auto* traffic = auth.traffic();
      if (!traffic) {
        job(self);
        return;
      }
      traffic->limit(self, r, "auth", subject, [job, self] { job(self); });
    });
  }
};

/// Issues an access token and a refresh token (new family when family_id is empty) and answers with them.
void issue_tokens(route_context& ctx, caf::event_based_actor* self, const std::shared_ptr<responder>& r,
                  const user_record& user) {
  auto& opts = ctx.auth.options();
  auto now = ctx.auth.now();
  auto access = opts.jwt->issue(user.id, user.role, random_token_id(), now);
  auto refresh = random_url_token(32);
  auto db = ctx.db();
  if (!db) {
    r->fail(make_error(service_error::unavailable, "The database is restarting; retry shortly."));
    return;
  }
  auto ttl = static_cast<int64_t>(opts.jwt->settings().access_ttl.count());
  self
    ->request(*db, caf::duration{db_timeout}, refresh_issue_atom::value, user.id, std::string{}, sha256_hex(refresh),
              now + static_cast<int64_t>(opts.refresh_ttl.count()))
    .then([r, access, refresh, ttl](std::string&) { r->send(token_response(access, refresh, ttl)); },
          [r](caf::error& err) { r->fail(err); });
}

void login(route_context& ctx, const std::shared_ptr<responder>& r) {
  auto body = validated_json_body(r, ctx.credentials);
  if (!body)
    return;
  auto email = normalise_email(string_member(*body, "email"));
  auto password = string_member(*body, "password");
  auto ip = ctx.auth.client_ip(r->req());
  ctx.run_limited(r, [&ctx, r, email, password, ip](caf::event_based_actor* self) {
    auto throttle = ctx.auth.throttle_for(ip);
    auto db = ctx.db();
    auto hasher = ctx.hasher();
    if (!throttle || !db || !hasher) {
      r->fail(make_error(service_error::unavailable, "Sign-in is restarting; retry shortly."));
      return;
    }
    auto fail = [&ctx, r, email, ip, throttle](const std::string& user_id) {
      caf::anon_send(*throttle, throttle_fail_atom::value, email, ip);
      ctx.auth.record(r->req(), "login_failed", "warning", user_id);
      r->send(unauthorized(r->req(), "Invalid email or password."));
    };
    // Verify against the user's hash, or against a dummy one for an unknown email: the same work either way.
    auto verify = [&ctx, self, r, password, email, ip, hasher, throttle, fail](std::optional<user_record> user) {
      auto hash = user ? user->password_hash : ctx.dummy_hash;
      self->request(*hasher, caf::duration{db_timeout}, verify_password_atom::value, hash, password)
        .then(
          [&ctx, self, r, user, email, ip, throttle, fail](bool ok) {
            if (!ok || !user) {
              fail(user ? user->id : "");
              return;
            }
            caf::anon_send(*throttle, throttle_reset_atom::value, email, ip);
            issue_tokens(ctx, self, r, *user);
          },
          [r](caf::error& err) { r->fail(err); });
    };
    self->request(*throttle, caf::duration{db_timeout}, throttle_check_atom::value, email, ip)
      .then(
        [&ctx, self, r, email, db, verify](int64_t wait) {
          if (wait > 0) {
            ctx.auth.record(r->req(), "login_throttled", "warning", "");
            auto res =
              error_response(service_error::rate_limited,
                             "Too many failed sign-ins; retry in " + std::to_string(wait) + " seconds.", r->req().id);
            for (auto& [name, value] : res.headers)
              if (name == "Retry-After")
                value = std::to_string(wait);
            r->send(std::move(res));
            return;
          }
          if (email.empty()) {
            verify(std::nullopt);
            return;
          }
          self->request(*db, caf::duration{db_timeout}, user_by_email_atom::value, email)
            .then([verify](user_record& user) { verify(user); },
                  [verify, r](caf::error& err) {
                    if (service_code(err) == service_error::not_found)
                      verify(std::nullopt);
                    else
                      r->fail(err);
                  });
        },
        [r](caf::error& err) { r->fail(err); });
  });
}

void register_account(route_context& ctx, const std::shared_ptr<responder>& r) {
  auto body = validated_json_body(r, ctx.registration);
  if (!body)
    return;
  auto email = normalise_email(string_member(*body, "email"));
  if (email.empty() || is_guest_email(email)) {
    r->send(error_response(service_error::invalid_input, "email is not a valid email address.", r->req().id, "email"));
    return;
  }
  auto password = string_member(*body, "password");
  // Registration never grants admin, whatever the email: TROUPE_ADMIN_EMAILS applies at start-up to accounts that
  // exist, and `troupe admin grant` to the others (app/application.cpp, app/main.cpp).
  std::string role = "user";
  ctx.run_limited(r, [&ctx, r, email, password, role](caf::event_based_actor* self) {
    auto hasher = ctx.hasher();
    auto db = ctx.db();
    if (!hasher || !db) {
      r->fail(make_error(service_error::unavailable, "Registration is restarting; retry shortly."));
      return;
    }
    self->request(*hasher, caf::duration{db_timeout}, hash_password_atom::value, password)
      .then(
        [self, r, db, email, role](std::string& hash) {
          self->request(*db, caf::duration{db_timeout}, user_create_atom::value, email, hash, role)
            .then([r](user_record& user) { r->send(json_response(201, json_object{}.str("user_id", user.id).done())); },
                  [r](caf::error& err) {
                    if (service_code(err) == service_error::conflict)
                      r->send(error_response(service_error::conflict, "An account with this email already exists.",
                                             r->req().id, "email"));
                    else
                      r->fail(err);
                  });
        },
        [r](caf::error& err) { r->fail(err); });
  });
}

/// POST /api/guest/token (guest.enabled): the guest of the client's address (created on first use), and an access
/// token for it with the role "guest" (no refresh token: a guest asks again). Limited per address like sign-ups.
void guest_token(route_context& ctx, const std::shared_ptr<responder>& r) {
  if (!ctx.auth.options().guests) {
    r->send(error_response(service_error::not_found, "Guest access is off on this server.", r->req().id));
    return;
  }
  auto address = ctx.auth.client_ip(r->req());
  auto user_id = guest_user_id(ctx.auth.options().jwt->settings().secret, address);
  // Limited per guest (an IPv6 /64 is one), so that one subscriber cannot mint tokens from every address it has.
  ctx.run_limited(r, [&ctx, r, user_id](caf::event_based_actor* self) {
    auto db = ctx.db();
    if (!db) {
      r->fail(make_error(service_error::unavailable, "The database is restarting; retry shortly."));
      return;
    }
    self
      ->request(*db, caf::duration{db_timeout}, user_guest_atom::value, user_id, "guest-" + user_id + "@guest.invalid")
      .then(
        [&ctx, r](user_record& user) {
          const auto& opts = ctx.auth.options();
          auto access = opts.jwt->issue(user.id, "guest", random_token_id(), ctx.auth.now());
          auto res = json_response(201, json_object{}
                                          .str("access_token", access)
                                          .str("token_type", "Bearer")
                                          .num("expires_in", opts.jwt->settings().access_ttl.count())
                                          .str("user_id", user.id)
                                          .done());
          r->send(std::move(res.header("Cache-Control", "no-store")));
        },
        [r](caf::error& err) { r->fail(err); });
  }, "ip:" + guest_address_key(address));
}

void refresh(route_context& ctx, const std::shared_ptr<responder>& r) {
  auto body = validated_json_body(r, ctx.refresh);
  if (!body)
    return;
  auto old_hash = sha256_hex(string_member(*body, "refresh_token"));
  ctx.run_limited(r, [&ctx, r, old_hash](caf::event_based_actor* self) {
    auto db = ctx.db();
    if (!db) {
      r->fail(make_error(service_error::unavailable, "The database is restarting; retry shortly."));
      return;
    }
    auto& opts = ctx.auth.options();
    auto now = ctx.auth.now();
    auto fresh = random_url_token(32);
    self
      ->request(*db, caf::duration{db_timeout}, refresh_rotate_atom::value, old_hash, sha256_hex(fresh),
                now + static_cast<int64_t>(opts.refresh_ttl.count()))
      .then(
        [&ctx, self, r, db, fresh](refresh_rotation& rotation) {
          if (rotation.outcome == "reused") {
            ctx.auth.record(r->req(), "refresh_reuse", "critical", rotation.user_id,
                            json_object{}.str("family_id", rotation.family_id).done());
            r->send(unauthorized(r->req(), "This refresh token was already used; its session has been revoked."));
            return;
          }
          if (rotation.outcome != "rotated") {
            ctx.auth.record(r->req(), "invalid_refresh_token", "warning", "");
            r->send(unauthorized(r->req(), "The refresh token is invalid or expired."));
            return;
          }
          // The role may have changed since login: take it from the database.
          self->request(*db, caf::duration{db_timeout}, user_by_id_atom::value, rotation.user_id)
            .then(
              [&ctx, r, fresh](user_record& user) {
                auto& opts = ctx.auth.options();
                auto access = opts.jwt->issue(user.id, user.role, random_token_id(), ctx.auth.now());
                r->send(token_response(access, fresh, static_cast<int64_t>(opts.jwt->settings().access_ttl.count())));
              },
              [r](caf::error& err) { r->fail(err); });
        },
        [r](caf::error& err) { r->fail(err); });
  });
}

void logout(route_context& ctx, const std::shared_ptr<responder>& r) {
  std::string refresh_token;
  if (!r->req().body.empty()) {
    auto body = validated_json_body(r, ctx.logout);
    if (!body)
      return;
    refresh_token = string_member(*body, "refresh_token");
  }
  ctx.auth.authenticate(r, [&ctx, r, refresh_token](caf::event_based_actor* self, const identity& who) {
    if (who.via.kind != "jwt") {
      r->send(error_response(service_error::invalid_input, "Logout needs an access token; revoke API keys instead.",
                             r->req().id));
      return;
    }
    auto db = ctx.db();
    auto route = route_user(ctx.auth.options().cluster.get(), who.user_id);
    auto manager = ctx.auth.bridge().find(ctx.auth.options().session_manager);
    if (!db || route.kind == session_route::unavailable || (route.kind == session_route::local && !manager)) {
      r->fail(make_error(service_error::unavailable, "Sessions are restarting; retry shortly."));
      return;
    }
    // Refresh family first (that token, or every family of the user), then the access token itself, at the user's
    // session (through the session manager, or the owner node's endpoint in a cluster).
    auto revoke_access = [self, r, route, manager, who]() {
      auto done = [r](bool) { r->send(json_response(200, R"({"status":"logged_out"})")); };
      auto failed = [r](caf::error& err) { r->fail(err); };
      if (route.kind == session_route::remote) {
        auto origin = route.origin;
        auto span = trace_remote_call(r->req(), origin);
        auto sent = std::chrono::steady_clock::now();
        self->request(route.endpoint, caf::duration{db_timeout}, revoke_atom::value, who.user_id, who.via.jti,
                      who.via.expires_at, std::move(origin))
          .then(
            [r, done, span, sent](bool revoked) {
              r->mark("cluster", span, sent);
              done(revoked);
            },
            [r, failed, span, sent](caf::error& err) {
              r->mark("cluster", span, sent);
              failed(err);
            });
      } else {
        self->request(*manager, caf::duration{db_timeout}, revoke_atom::value, who.user_id, who.via.jti,
                      who.via.expires_at)
          .then(done, failed);
      }
    };
    auto on_error = [r](caf::error& err) { r->fail(err); };
    if (refresh_token.empty())
      self->request(*db, caf::duration{db_timeout}, refresh_revoke_user_atom::value, who.user_id)
        .then([revoke_access](int64_t) { revoke_access(); }, on_error);
    else
      self->request(*db, caf::duration{db_timeout}, refresh_revoke_atom::value, sha256_hex(refresh_token))
        .then([revoke_access](int64_t) { revoke_access(); }, on_error);
  });
}

void me(route_context& ctx, const std::shared_ptr<responder>& r) {
  // One request to the user's session, which also answers the storage use (exact: read from PostgreSQL, or kept
  // while no transaction changed storage since); the answer is sent from the session's thread.
  ctx.auth.identify(
    r, "default",
    [r](const identity& who) {
      auto storage = [&](int64_t value) { return who.storage_known ? std::optional<int64_t>{value} : std::nullopt; };
      auto res = json_response(
        200,
        json_object{}
          .str("user_id", who.user_id)
          .str("email", who.email)
          .str("role", who.role)
          .str("plan", who.plan)
          .time("created_at", who.created_at)
          .str("authenticated_with", who.via.kind)
          .raw("quota", json_object{}
                          .num("limit", who.quota.limit)
                          .num("used", who.quota.used)
                          .num("remaining", std::max<int64_t>(0, who.quota.limit - who.quota.used))
                          .time("resets_at", who.quota.resets_at)
                          .done())
          // null when the database cannot say (the rest of the account is the session's and still shown)
          .num_or_null("storage_bytes_used", storage(who.storage.used_bytes))
          .num_or_null("storage_bytes_limit", storage(who.storage.limit_bytes))
          .done());
      private_revalidated(res);
      r->send(std::move(res));
    },
    0, true);
}

void create_key(route_context& ctx, const std::shared_ptr<responder>& r) {
  auto body = validated_json_body(r, ctx.key);
  if (!body)
    return;
  auto name = string_member(*body, "name");
  api_key_limits limits;
  auto field = [&](const char* key) -> const rapidjson::Value* {
    auto m = body->FindMember(key);
    return m == body->MemberEnd() || m->value.IsNull() ? nullptr : &m->value;
  };
  if (const auto* models = field("models"))
    for (const auto& m : models->GetArray())
      limits.models.emplace_back(m.GetString(), m.GetStringLength());
  if (const auto* budget = field("max_budget"))
    limits.max_budget_pusd = std::max<int64_t>(1, std::llround(budget->GetDouble() * 1e12));
  if (const auto* duration = field("budget_duration")) {
    if (limits.max_budget_pusd == 0) {
      r->send(error_response(service_error::invalid_input, "`budget_duration` needs a `max_budget` to renew.",
                             r->req().id, "budget_duration"));
      return;
    }
    // The schema's pattern stops at an embedded NUL ("1d\u0000..."): the whole string is checked again here.
    std::string text{duration->GetString(), duration->GetStringLength()};
    if (text.size() < 2 || text.size() > 7 || std::string_view{"smhd"}.find(text.back()) == std::string_view::npos
        || !std::all_of(text.begin(), text.end() - 1, [](char c) { return c >= '0' && c <= '9'; })) {
      r->send(error_response(service_error::invalid_input,
                             "`budget_duration` must look like \"30s\", \"30m\", \"12h\" or \"30d\".", r->req().id,
                             "budget_duration"));
      return;
    }
    limits.budget_duration_s = duration_seconds(text);
  }
  for (auto [key, out] : {std::pair{"tpm_limit", &limits.tpm_limit}, std::pair{"rpm_limit", &limits.rpm_limit},
                          std::pair{"max_parallel_requests", &limits.max_parallel_requests}})
    if (const auto* v = field(key))
      *out = v->GetInt64();
  ctx.auth.authenticate(r, [&ctx, r, name, limits](caf::event_based_actor* self, const identity& who) {
    auto db = ctx.db();
    if (!db) {
      r->fail(make_error(service_error::unavailable, "The database is restarting; retry shortly."));
      return;
    }
    auto key = std::string{api_key_prefix} + random_url_token(32);
    self
      ->request(*db, caf::duration{db_timeout}, api_key_create_atom::value, who.user_id, name, sha256_hex(key),
                key.substr(key.size() - 4), limits)
      .then(
        [r, key](api_key_record& record) {
          auto res = json_response(201, key_json(record, key));
          res.header("Cache-Control", "no-store");
          r->send(std::move(res));
        },
        [r](caf::error& err) { r->fail(err); });
  });
}

/// GET /api/keys (`key_id` empty: every key of the caller) and GET /api/keys/{id} (that key, 404 if it is not the
/// caller's): each with its limits and its spend in the current budget period.
void show_keys(route_context& ctx, const std::shared_ptr<responder>& r, const std::string& key_id) {
  ctx.auth.authenticate(r, [&ctx, r, key_id](caf::event_based_actor* self, const identity& who) {
    auto db = ctx.db();
    if (!db) {
      r->fail(make_error(service_error::unavailable, "The database is restarting; retry shortly."));
      return;
    }
    self->request(*db, caf::duration{db_timeout}, api_key_list_atom::value, who.user_id)
      .then(
        [r, key_id](std::vector<api_key_record>& keys) {
          std::string body;
          if (key_id.empty()) {
            body = R"({"keys":[)";
            for (size_t i = 0; i < keys.size(); ++i)
              body += (i ? "," : "") + key_json(keys[i]);
            body += "]}";
          } else {
            auto key = std::find_if(keys.begin(), keys.end(), [&](const auto& k) { return k.id == key_id; });
            if (key == keys.end()) {
              r->send(error_response(service_error::not_found, "No such API key.", r->req().id));
              return;
            }
            body = key_json(*key);
          }
          auto res = json_response(200, std::move(body));
          private_revalidated(res);
          r->send(std::move(res));
        },
        [r](caf::error& err) { r->fail(err); });
  });
}

void list_keys(route_context& ctx, const std::shared_ptr<responder>& r) {
  show_keys(ctx, r, "");
}

void get_key(route_context& ctx, const std::shared_ptr<responder>& r) {
  show_keys(ctx, r, r->req().param("id").value_or(""));
}

void revoke_key(route_context& ctx, const std::shared_ptr<responder>& r) {
  auto key_id = r->req().param("id").value_or("");
  ctx.auth.authenticate(r, [&ctx, r, key_id](caf::event_based_actor* self, const identity& who) {
    auto db = ctx.db();
    if (!db) {
      r->fail(make_error(service_error::unavailable, "The database is restarting; retry shortly."));
      return;
    }
    self->request(*db, caf::duration{db_timeout}, api_key_revoke_atom::value, who.user_id, key_id)
      .then(
        [&ctx, self, r, who](api_key_record& key) {
          // The database refuses the key now; make the cache and the session refuse it on the next request too.
          if (auto cache = ctx.auth.bridge().find(ctx.auth.options().key_cache))
            caf::anon_send(*cache, key_evict_atom::value, key.id);
          auto route = route_user(ctx.auth.options().cluster.get(), who.user_id);
          if (route.kind == session_route::remote)
            caf::anon_send(route.endpoint, revoke_key_atom::value, who.user_id, key.id, route.origin);
          else if (auto session = ctx.auth.options().sessions->get_as<session_actor>(who.user_id))
            caf::anon_send(*session, revoke_key_atom::value, key.id);
          r->send(response{204, "", "", {}});
        },
        [r](caf::error& err) {
          if (service_code(err) == service_error::not_found)
            r->send(error_response(service_error::not_found, "No such API key.", r->req().id));
          else
            r->fail(err);
        });
  });
}

} // namespace

void add_auth_routes(router& routes, authenticator& auth) {
  // Lives as long as the routes (the process): handlers keep a reference.
  auto ctx = std::make_shared<route_context>(auth);
  ctx->dummy_hash = auth.options().dummy_password_hash;
  auto bind = [ctx](void (*fn)(route_context&, const std::shared_ptr<responder>&)) {
    return [ctx, fn](const std::shared_ptr<responder>& r) { fn(*ctx, r); };
  };
  routes.add("POST", "/api/auth/register", bind(register_account));
  routes.add("POST", "/api/auth/login", bind(login));
  routes.add("POST", "/api/auth/refresh", bind(refresh));
  routes.add("POST", "/api/guest/token", bind(guest_token));
  routes.add("POST", "/api/auth/logout", bind(logout));
  routes.add("GET", "/api/me", bind(me));
  routes.add("POST", "/api/keys", bind(create_key));
  routes.add("GET", "/api/keys", bind(list_keys));
  routes.add("GET", "/api/keys/{id}", bind(get_key));
  routes.add("DELETE", "/api/keys/{id}", bind(revoke_key));
}

} // namespace troupe::http
