#pragma once
// Authentication and the account routes.
//
// A bearer credential is an access JWT (verified on the Pistache thread: signature with the algorithm pinned,
// exp/nbf/iat/iss/aud) or an API key "trp_..." (hashed on the Pistache thread, looked up through the API key cache).
// The user's session actor then vouches for it (revoked tokens and keys, role and plan from the database), so no
// request touches PostgreSQL once the session is warm.
//
//   POST   /api/auth/register  {email, password}  -> 201 {user_id}              409 if the email is taken
//   POST   /api/auth/login     {email, password}  -> 200 tokens                  401 either way when wrong; 429 after
//                                                                                5 failures in 15 min (account or IP)
//   POST   /api/auth/refresh   {refresh_token}    -> 200 tokens (rotated)        reuse revokes the whole family
//   POST   /api/auth/logout    {refresh_token?}   -> 200                         revokes the access token (until it
//                                                                                expires) and the refresh family
//   GET    /api/me                                 -> 200 the caller's account
//   POST   /api/keys           {name}             -> 201 {id, key, ...}         the key is shown once
//   GET    /api/keys                               -> 200 {keys:[...]} masked
//   DELETE /api/keys/{id}                          -> 204                         effective on the next request;
//                                                                                another user's key is 404

#include "http/bridge.hpp"
#include "http/jwt.hpp"
#include "http/router.hpp"

#include "actors/auth_workers.hpp"
#include "actors/cluster.hpp"
#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "actors/persistence_supervisor.hpp"
#include "actors/sessions.hpp"

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace troupe::http {

struct auth_options {
  std::shared_ptr<jwt_codec> jwt;
  std::chrono::seconds refresh_ttl{30 * 24 * 3600};
  std::shared_ptr<directory> sessions;            // live session actors by user id
  std::shared_ptr<cluster_state> cluster;         // where users' sessions are (null: a single node, all here)
  std::chrono::milliseconds remote_timeout{5000}; // a request to the user's owner node (cluster.request_timeout_ms)
  /// troupe_cluster_remote_request_seconds{outcome}: how long the owner node took to vouch (null: not measured).
  histogram_family* remote_latency = nullptr;
  size_t hashers = 1;                // password hasher actors "auth.hasher.<i>"
  std::string dummy_password_hash;   // same parameters as real hashes: unknown emails cost the same time
  std::function<int64_t()> now_unix; // unix seconds; the system clock when empty
  bool guests = false;               // guest.enabled: POST /api/guest/token, and guest tokens accepted
  // Names of the actors involved, in the bridge's directory.
  actor_name<db_query_actor> db_query = db_query_name;
  std::string security_events = "auth.events"; // the aggregator of actors/security_events.hpp
  actor_name<session_manager_actor> session_manager = session_manager_name;
  std::string key_cache = "auth.keys";
  std::string throttle = login_throttle_name;
};

class traffic_control;

class authenticator {
public:
  /// `traffic` (optional) rate-limits every authenticated request (policy "default" per user) and sheds load.
  authenticator(actor_bridge& bridge, auth_options options, traffic_control* traffic = nullptr);

  /// Inside a bridge worker, with the caller vouched for by its session. `self` may send further requests whose
  /// handlers complete the responder.
  using continuation = std::function<void(caf::event_based_actor* self, const identity& who)>;
  /// With the caller vouched for by its session, on the thread of the actor that answered (its session): no actor
  /// context, so it answers, or sends its next request through bridge().direct(), and returns at once.
  using identified = std::function<void(const identity& who)>;

  /// Verifies the bearer credential and calls `then`; otherwise answers 401 (and records a security event), 429
  /// when the client's address used up its allowance of failed authentications (policy "anonymous": no look-up and
  /// no event then), or 503.
  void authenticate(const std::shared_ptr<responder>& r, continuation then);

  /// Before a large body is read (route_options::before_body; on the connection's thread, pure CPU): 401 when the
  /// request carries no Bearer credential or an access token that does not verify, 429 when the client's address
  /// has used up its failed authentications. An API key passes here (it is looked up once the body has arrived).
  std::optional<framing_error> check_before_body(const request_head& head, const std::string& peer_address) const;

  /// authenticate, then 403 unless the caller is an admin.
  void require_admin(const std::shared_ptr<responder>& r, continuation then);

  /// Records a security event through the aggregator (actors/security_events.hpp), without waiting for it (never
  /// slows the request). Safe on any thread.
  void record(const request& req, const std::string& type, const std::string& severity, const std::string& user_id,
              const std::string& detail_json = "{}");

  /// Like authenticate, with the rate-limit policy `policy` instead of "default" (e.g. "generate"). With reserve > 0
  /// the session also reserves that many generations of today's quota when the rate limit lets the request through;
  /// `who.quota.allowed` says whether it could (the caller answers 429 when not, and gives them back on failure).
  void authenticate(const std::shared_ptr<responder>& r, const std::string& policy, continuation then,
                    int64_t reserve = 0);
  /// authenticate without a bridge worker: the credential goes from the reactor straight to the user's session (an
  /// API key through the key cache first) and `then` runs where the session answered. A route that needs no actor
  /// context saves two thread hand-offs this way.
  /// With `with_storage`, the session also answers the user's storage use (identity::storage). With
  /// `reserve_tokens` or `reserve_pusd`, it also reserves them against the user's tokens-per-minute window and spend
  /// budgets first (`who.spend` says whether it could; the caller settles through a spend_reservation). `model`: the
  /// model the call asks for; an API key that may not call it is refused before anything is reserved
  /// (who.spend.refused "key_model").
  void identify(const std::shared_ptr<responder>& r, const std::string& policy, identified then, int64_t reserve = 0,
                bool with_storage = false, int64_t reserve_tokens = 0, int64_t reserve_pusd = 0,
                const std::string& model = {});

  const auth_options& options() const { return options_; }
  actor_bridge& bridge() { return bridge_; }
  /// The login throttle that counts `ip`'s failures: in a cluster, the one of the node that holds the address
  /// (through its endpoint), so the limit is one across the nodes; else this node's.
  std::optional<caf::actor> throttle_for(const std::string& ip);
  traffic_control* traffic() { return traffic_; }
  int64_t now() const;
  /// The client address (behind trusted proxies when traffic control knows them).
  std::string client_ip(const request& req) const;
  /// Whether the client is on this machine (traffic_control::is_local_client).
  bool is_local_client(const request& req) const;

private:
  /// jwt_codec::verify, remembered per HTTP thread for tokens already verified (expiry re-checked every time).
  std::variant<access_claims, jwt_failure> verify_cached(const std::string& token) const;

  /// Asks the user's session (directly when it is live, else through the session manager) to vouch for `cred`.
  void resolve(const std::shared_ptr<responder>& r, credential cred, identified then);
  /// Whether a guest (user id) may make this request; answers it (401/403) when not.
  bool guest_allowed(const std::shared_ptr<responder>& r, const std::string& user_id);

  /// A refused credential: counts the failure against the client's address, then records `event` and answers 401
  /// with `message`, or answers 429 (and records nothing) when the address is over its allowance.
  void refuse(const std::shared_ptr<responder>& r, const std::string& event, const std::string& user_id,
              const std::string& detail_json, const std::string& message);

  actor_bridge& bridge_;
  auth_options options_;
  traffic_control* traffic_;
};

/// Puts `req`'s trace context into `origin` for a call to another node, under a new span for the call (returned): the
/// caller marks it as its "cluster" stage (a CLIENT span), the other node records its own as that span's child.
tracing::span_id trace_remote_call(const request& req, cluster_origin& origin);

void add_auth_routes(router& routes, authenticator& auth);

/// 401 with the error body and `WWW-Authenticate: Bearer realm="troupe"`.
response unauthorized(const request& req, const std::string& message);

/// Trims and lower-cases an email address; "" if it does not look like one (one '@', no spaces or controls, a dot
/// in the domain, at most 254 characters).
std::string normalise_email(const std::string& raw);

/// Whether an address (to listen on, or of a client) is this machine's own: 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104
/// or "localhost".
bool is_loopback_address(const std::string& address);

/// What a guest is keyed by: an IPv4 address as it is, an IPv4-mapped IPv6 one as IPv4, another IPv6 one as its
/// /64 ("2001:db8:1:2::/64": one subscriber's, who may use any address in it).
std::string guest_address_key(const std::string& address);

/// The user id of the guest of a client address (guest.enabled): a UUID (version 8, RFC 9562) made of the
/// HMAC-SHA-256 of guest_address_key(address) under `secret` (the JWT secret), so the same address is always the
/// same guest, a guest token can be checked against the address it is used from without a look-up, and nobody
/// without the secret can tell an address's guest.
std::string guest_user_id(const std::string& secret, const std::string& address);

/// Whether an email is of the form guests' rows use (guest-<id>@guest.invalid): nobody registers one.
bool is_guest_email(const std::string& email);

/// The routes a guest token may call: generation and what it needs (the models, its own quota).
bool guest_may_call(const std::string& route);

/// The address if it parses as an IPv4 or IPv6 one (for inet columns), else "".
std::string valid_ip(const std::string& ip);

/// Parses a comma-separated TROUPE_ADMIN_EMAILS value into normalised addresses.
std::vector<std::string> parse_admin_emails(const std::string& list);

} // namespace troupe::http
