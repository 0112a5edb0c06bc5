// The authenticator of http/auth.hpp: bearer credentials, sessions, admin checks, security events.

#include "http/auth.hpp"

#include "http/error_mapping.hpp"
#include "config/hashing.hpp"
#include "http/traffic.hpp"

#include "actors/messages.hpp"
#include "actors/sessions.hpp"
#include "config/log.hpp"

#include <arpa/inet.h>
#include <strings.h>

#include <cstring>

#include <atomic>
#include <unordered_map>

namespace troupe::http {

namespace {

using std::chrono::seconds;
constexpr auto db_timeout = seconds{10};
constexpr size_t max_api_key_length = 100;
constexpr const char* api_key_prefix = "trp_";

} // namespace

std::string guest_address_key(const std::string& address) {
  unsigned char v6[sizeof(in6_addr)];
  if (::inet_pton(AF_INET6, address.c_str(), v6) != 1)
    return address; // IPv4 (or not an address at all: then it is its own key)
  static constexpr unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  char text[INET6_ADDRSTRLEN];
  if (std::memcmp(v6, mapped, sizeof mapped) == 0) // ::ffff:a.b.c.d is a.b.c.d
    return ::inet_ntop(AF_INET, v6 + 12, text, sizeof text) ? std::string{text} : address;
  std::memset(v6 + 8, 0, 8); // the /64: what one subscriber gets
  return ::inet_ntop(AF_INET6, v6, text, sizeof text) ? std::string{text} + "/64" : address;
}

std::string guest_user_id(const std::string& secret, const std::string& address) {
  auto h = hmac_sha256_hex(secret, "troupe guest\n" + guest_address_key(address));
  // 8-4-4-4-12 hex digits; the version nibble 8 (custom) and the variant bits 10.
  std::string id = h.substr(0, 8) + "-" + h.substr(8, 4) + "-8" + h.substr(13, 3) + "-";
  static constexpr char variant[] = "89ab";
  id += variant[std::stoi(h.substr(16, 1), nullptr, 16) & 3];
  id += h.substr(17, 3) + "-" + h.substr(20, 12);
  return id;
}

bool is_guest_email(const std::string& email) {
  constexpr std::string_view domain = "@guest.invalid";
  return email.size() >= domain.size() && email.compare(email.size() - domain.size(), domain.size(), domain) == 0;
}

bool guest_may_call(const std::string& route) {
  return route == "/v1/chat/completions" || route == "/api/generate" || route == "/v1/messages"
         || route == "/v1/models" || route == "/api/me";
}

std::string valid_ip(const std::string& ip) {
  unsigned char buf[sizeof(in6_addr)];
  if (::inet_pton(AF_INET, ip.c_str(), buf) == 1 || ::inet_pton(AF_INET6, ip.c_str(), buf) == 1)
    return ip;
  return {};
}

response unauthorized(const request& req, const std::string& message) {
  auto res = error_response(service_error::unauthenticated, message, req.id);
  res.header("WWW-Authenticate", R"(Bearer realm="troupe")");
  return res;
}

std::string normalise_email(const std::string& raw) {
  auto first = raw.find_first_not_of(" \t\r\n");
  auto last = raw.find_last_not_of(" \t\r\n");
  if (first == std::string::npos)
    return {};
  std::string email = raw.substr(first, last - first + 1);
  for (auto& c : email)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto at = email.find('@');
  if (email.size() > 254 || at == 0 || at == std::string::npos || email.find('@', at + 1) != std::string::npos)
    return {};
  auto domain = email.substr(at + 1);
  auto dot = domain.find('.');
  if (dot == std::string::npos || dot == 0 || domain.back() == '.')
    return {};
  for (unsigned char c : email)
    if (c <= 0x20 || c == 0x7F)
      return {};
  return email;
}

bool is_loopback_address(const std::string& address) {
  if (address == "localhost" || address == "[::1]")
    return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, address.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, address.c_str(), &v6) != 1)
    return false;
  // ::1, or an IPv4 loopback address mapped into IPv6 (::ffff:127.x.y.z, as a dual-stack socket reports it).
  return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
}

std::vector<std::string> parse_admin_emails(const std::string& list) {
  std::vector<std::string> result;
  size_t pos = 0;
  while (pos <= list.size()) {
    auto comma = list.find(',', pos);
    if (comma == std::string::npos)
      comma = list.size();
    if (auto email = normalise_email(list.substr(pos, comma - pos)); !email.empty())
      result.push_back(email);
    pos = comma + 1;
  }
  return result;
}

// --- authenticator ---

authenticator::authenticator(actor_bridge& bridge, auth_options options, traffic_control* traffic)
  : bridge_(bridge), options_(std::move(options)), traffic_(traffic) {}

std::optional<caf::actor> authenticator::throttle_for(const std::string& ip) {
  if (auto remote = remote_owner(options_.cluster.get(), "ip:" + ip))
    return remote;
  return bridge_.find(options_.throttle);
}

std::string authenticator::client_ip(const request& req) const {
  return traffic_ ? traffic_->client_ip(req) : client_address(req, {});
}

int64_t authenticator::now() const {
  return options_.now_unix ? options_.now_unix() : unix_now();
}

bool authenticator::is_local_client(const request& req) const {
  return traffic_ ? traffic_->is_local_client(req) : http::is_local_client(req, {});
}

void authenticator::record(const request& req, const std::string& type, const std::string& severity,
                           const std::string& user_id, const std::string& detail_json) {
  auto events = bridge_.find(options_.security_events);
  if (!events) {
    log::warn("security event lost: the aggregator is restarting",
              log::fields{}.add("type", type).add("request_id", req.id));
    return;
  }
  caf::anon_send(*events, security_event_atom::value,
                 security_event_row{type, severity, user_id, valid_ip(client_ip(req)), req.id, detail_json});
}

void authenticator::refuse(const std::shared_ptr<responder>& r, const std::string& event, const std::string& user_id,
                           const std::string& detail_json, const std::string& message) {
  const auto& req = r->req();
  // Over the address's allowance of failures: 429 (already answered), and neither a row nor a log line.
  if (traffic_ && !traffic_->count_failure(r, client_ip(req)))
    return;
  record(req, event, "warning", user_id, detail_json);
  r->send(unauthorized(req, message));
}

void authenticator::authenticate(const std::shared_ptr<responder>& r, continuation then) {
  authenticate(r, "default", std::move(then));
}

std::optional<framing_error> authenticator::check_before_body(const request_head& head,
                                                              const std::string& peer_address) const {
  const auto* header = head.header("Authorization");
  std::string from_key_header;
  if (!header)
    if (const auto* key = head.header("x-api-key"); key && !key->empty()) {
      from_key_header = "Bearer " + *key; // Anthropic's SDKs send the key this way
      header = &from_key_header;
    }
  if (!header || header->size() < 8 || ::strncasecmp(header->c_str(), "Bearer ", 7) != 0)
    return framing_error{401, "A bearer credential is required before a body is sent."};
  if (traffic_) {
    request who; // the address as every other decision sees it (trusted proxies)
    who.remote_address = peer_address;
    for (const auto& [name, value] : head.headers) // every line: X-Forwarded-For is read as one list
      for (const char* forwarding : {"X-Forwarded-For", "Forwarded", "X-Real-IP"})
        if (::strcasecmp(name.c_str(), forwarding) == 0)
          who.headers.emplace_back(name, value);
    if (traffic_->failures_exhausted(traffic_->client_ip(who)))
      return framing_error{429, "Too many failed authentications from this address; retry later."};
  }
  auto token = header->substr(7);
  if (token.rfind(api_key_prefix, 0) == 0)
    return token.size() <= max_api_key_length ? std::nullopt
                                              : std::optional<framing_error>{{401, "The API key is invalid."}};
  auto verified = verify_cached(token);
  if (std::holds_alternative<jwt_failure>(verified))
    return framing_error{401, "The access token is invalid or expired."};
  if (std::get<access_claims>(verified).role == "guest") // guests never send bodies to these routes (uploads)
    return framing_error{403, "A guest may only generate: sign up for the rest."};
  return std::nullopt;
}

std::variant<access_claims, jwt_failure> authenticator::verify_cached(const std::string& token) const {
  // Clients send the same token for many requests: remember the tokens this HTTP thread verified, keyed by the
  // whole token (any change misses), and re-check only the expiry on a hit. Revocation is the session's job.
  thread_local std::unordered_map<std::string, access_claims> verified;
  constexpr size_t max_entries = 4096;
  auto t = now();
  auto leeway = static_cast<int64_t>(options_.jwt->settings().leeway.count());
  if (auto hit = verified.find(token); hit != verified.end()) {
    if (t <= hit->second.expires_at + leeway && hit->second.issued_at <= t + leeway)
      return hit->second;
    verified.erase(hit);
  }
  auto result = options_.jwt->verify(token, t);
  if (auto* claims = std::get_if<access_claims>(&result)) {
    if (verified.size() >= max_entries)
      verified.clear();
    verified.emplace(token, *claims);
  }
  return result;
}

void authenticator::authenticate(const std::shared_ptr<responder>& r, const std::string& policy, continuation then,
                                 int64_t reserve) {
  identify(
    r, policy,
    [this, r, then = std::move(then)](const identity& who) {
      bridge_.run(r, [then, who](caf::event_based_actor* self) { then(self, who); });
    },
    reserve);
}

bool authenticator::guest_allowed(const std::shared_ptr<responder>& r, const std::string& user_id) {
  // A guest token is good only with guests on, from the address (the /64) it was issued to, for generation. A
  // refusal is not a failed authentication (the token is genuine: its holder moved, or guests were turned off), so it
  // counts against no address.
  const auto& req = r->req();
  if (!options_.guests) {
    r->send(unauthorized(req, "Guest access is off."));
    return false;
  }
  if (user_id != guest_user_id(options_.jwt->settings().secret, client_ip(req))) {
    r->send(unauthorized(req, "This guest token was issued to another address: ask for a new one."));
    return false;
  }
  if (!guest_may_call(req.route)) {
    r->send(error_response(service_error::forbidden, "A guest may only generate: sign up for the rest.", req.id));
    return false;
  }
  return true;
}

void authenticator::identify(const std::shared_ptr<responder>& r, const std::string& policy, identified then,
                             int64_t reserve, bool with_storage, int64_t reserve_tokens, int64_t reserve_pusd,
                             const std::string& model) {
  if (traffic_ && traffic_->shed(r, false))
    return;
  // Whatever the credential said, a guest's account (its role in the database) has a guest's rights.
  then = [this, r, then = std::move(then)](const identity& who) {
    if (who.role == "guest" && !guest_allowed(r, who.user_id))
      return;
    then(who);
  };
  // The user's session owns the user's rate-limit buckets: it takes the token while it vouches for the caller
  // (no extra hop), and the answer carries the decision.
  auto limit = traffic_ ? traffic_->policy(policy) : rate_policy{"", 0, 0};
  if (!limit.name.empty())
    then = [this, r, then = std::move(then)](const identity& who) {
      if (traffic_->apply(r, who.via.limit, who.rate, "user:" + who.user_id))
        then(who);
    };
  // The stage "auth" of a slow request's log: until the session vouched (its rate limit and reservations included).
  then = [r, then = std::move(then)](const identity& who) {
    r->mark("auth");
    then(who);
  };
  const auto& req = r->req();
  auto header = req.header("Authorization");
  if (!header)
    if (auto key = req.header("x-api-key"); key && !key->empty())
      header = "Bearer " + *key; // Anthropic's SDKs send the key this way
  if (!header) {
    r->send(unauthorized(req, "A bearer credential is required: send Authorization: Bearer <token or API key>."));
    return;
  }
  if (header->size() < 7 || ::strncasecmp(header->c_str(), "Bearer ", 7) != 0) {
    r->send(unauthorized(req, "The Authorization header must use the Bearer scheme."));
    return;
  }
  auto token = header->substr(7);
  credential cred;
  cred.reserve = reserve;
  cred.limit = limit;
  cred.model = model;
  cred.with_storage = with_storage;
  cred.reserve_tokens = reserve_tokens;
  cred.reserve_pusd = reserve_pusd;
  if (token.rfind(api_key_prefix, 0) != 0) {
    auto verified = verify_cached(token);
    if (auto* failure = std::get_if<jwt_failure>(&verified)) {
      refuse(r, "invalid_token", "", std::string{R"({"reason":")"} + to_string(*failure) + "\"}",
             "The access token is invalid or expired.");
      return;
    }
    auto& claims = std::get<access_claims>(verified);
    if (claims.role == "guest" && !guest_allowed(r, claims.subject))
      return;
    cred.kind = "jwt";
    cred.user_id = claims.subject;
    cred.jti = claims.jti;
    cred.expires_at = claims.expires_at;
    resolve(r, std::move(cred), std::move(then));
    return;
  }
  if (token.size() > max_api_key_length) {
    refuse(r, "invalid_api_key", "", R"({"reason":"too_long"})", "The API key is invalid or revoked.");
    return;
  }
  cred.kind = "api_key";
  auto cache = bridge_.find(options_.key_cache);
  if (!cache) {
    r->fail(make_error(service_error::unavailable, "The API key cache is restarting; retry shortly."));
    return;
  }
  // An address that used up its failures may still use keys the cache knows, but costs no query: a key the cache
  // does not hold gets 429 (it may be good; the client retries after Retry-After).
  auto ip = client_ip(req);
  bool exhausted = traffic_ && traffic_->failures_exhausted(ip);
  auto key_hash = sha256_hex(token);
  bridge_.direct().request<api_key_record>(
    *cache, db_timeout,
    [this, r, cred, then](api_key_record& key) mutable {
      r->arrived();
      cred.user_id = key.user_id;
      cred.key_id = key.id;
      cred.key_created_at = key.created_at;
      cred.key_limits = std::move(key.limits);
      resolve(r, std::move(cred), std::move(then));
    },
    [this, r, ip, exhausted](caf::error& err) {
      auto code = service_code(err);
      if (code == service_error::unauthenticated)
        refuse(r, "invalid_api_key", "", "{}", "The API key is invalid or revoked.");
      else if (code == service_error::not_found && exhausted)
        traffic_->refuse_failure(r, ip);
      else
        r->fail(err);
    },
    key_lookup_atom::value, key_hash, !exhausted);
}

void authenticator::resolve(const std::shared_ptr<responder>& r, credential cred, identified then) {
  auto on_identity = [r, then](identity& who) {
    r->arrived();
    then(who);
  };
  auto on_error = [this, r, kind = cred.kind, user_id = cred.user_id](caf::error& err) {
    if (service_code(err) == service_error::unauthenticated)
      refuse(r, kind == "jwt" ? "revoked_token" : "revoked_api_key", user_id, "{}", service_message(err));
    else
      r->fail(err);
  };
  auto via_manager = [this, r, cred, on_identity, on_error]() mutable {
    auto manager = bridge_.find(options_.session_manager);
    if (!manager) {
      r->fail(make_error(service_error::unavailable, "Sessions are restarting; retry shortly."));
      return;
    }
    bridge_.direct().request<identity>(*manager, db_timeout, on_identity, on_error, authorize_atom::value,
                                       cred.user_id, cred);
  };
  // In a cluster, another node may own the user: its endpoint answers (one hop over BASP).
  auto route = route_user(options_.cluster.get(), cred.user_id);
  if (route.kind == session_route::unavailable) {
    r->fail(make_error(service_error::unavailable, "This user's node is unavailable; retry shortly."));
    return;
  }
  if (route.kind == session_route::remote) {
    auto user_id = cred.user_id;
    auto sent = std::chrono::steady_clock::now();
    auto span = trace_remote_call(r->req(), route.origin);
    auto observe = [r, latency = options_.remote_latency, sent, span](std::string_view outcome) {
      r->mark("cluster", span, sent);
      if (latency)
        latency->observe({outcome},
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count());
    };
    bridge_.direct().request<identity>(route.endpoint, caller::clock::duration{options_.remote_timeout},
                                       [on_identity, observe](identity& who) mutable {
                                         observe("answered");
                                         on_identity(who);
                                       },
                                       [r, on_error, observe](caf::error& err) mutable {
                                         observe(err.category() == service_error_category::value ? "answered"
                                                                                                 : "failed");
                                         // Not an answer of the owner (a timeout, a lost connection):
                                         if (err.category() != service_error_category::value)
                                           r->fail(make_error(service_error::unavailable,
                                                              "This user's node did not answer; retry shortly."));
                                         else
                                           on_error(err);
                                       },
                                       authorize_atom::value, std::move(user_id), std::move(cred),
                                       std::move(route.origin));
    return;
  }
  // Usually the session is warm and found directly; if it just passivated, the manager starts a new one.
  auto session = options_.sessions->get_as<session_actor>(cred.user_id);
  if (!session) {
    via_manager();
    return;
  }
  // A session that reserves quota is asked without a deadline (it answers, or bounces when it goes down): an answer
  // after a timeout would be dropped, and the generation it reserved with it.
  auto timeout = cred.reserve > 0 ? caller::clock::duration::max() : caller::clock::duration{db_timeout};
  bridge_.direct().request<identity>(*session, timeout, on_identity,
                                     [via_manager, on_error](caf::error& err) mutable {
                                       if (err == caf::sec::request_receiver_down)
                                         via_manager();
                                       else
                                         on_error(err);
                                     },
                                     authorize_atom::value, std::move(cred));
}

tracing::span_id trace_remote_call(const request& req, cluster_origin& origin) {
  auto span = tracing::new_span_id();
  origin.traceparent = req.trace.traceparent_for(span);
  origin.tracestate = req.trace.tracestate;
  return span;
}

void authenticator::require_admin(const std::shared_ptr<responder>& r, continuation then) {
  authenticate(r, [this, r, then = std::move(then)](caf::event_based_actor* self, const identity& who) {
    if (who.role != "admin") {
      record(r->req(), "forbidden", "warning", who.user_id, R"({"need":"admin"})");
      r->send(error_response(service_error::forbidden, "This needs an admin account.", r->req().id));
      return;
    }
    then(self, who);
  });
}

} // namespace troupe::http
