// The cluster endpoint (actors/cluster_endpoint.hpp).

#include "actors/cluster_endpoint.hpp"

#include "actors/auth_workers.hpp"
#include "actors/debug_json.hpp"
#include "actors/rate_limit.hpp"
#include "actors/sessions.hpp"
#include "config/service_error.hpp"
#include "introspect/observed_actor.hpp"

#include <caf/all.hpp>

#include <algorithm>

namespace troupe {

namespace {

struct endpoint_state {
  caf::actor membership; // the membership actor that spawned it (hellos go there)
  std::shared_ptr<cluster_state> cluster;
  std::shared_ptr<directory> names;
  std::shared_ptr<metrics_registry> metrics;
  std::unique_ptr<cache_client> cache; // this node's shards only (never placed: that would send keys on again)
  size_t limiter_shards = 0;
  std::shared_ptr<probe_registry> probes;
  std::shared_ptr<tracing::span_queue> spans; // null: tracing.otlp_endpoint unset
  std::chrono::milliseconds request_timeout{5000};

  static inline const char* name = "cluster_endpoint";
};

using endpoint_actor = observed_stateful_actor<endpoint_state>;

void count_request(endpoint_actor* self, const std::string& kind) {
  if (auto& metrics = self->state.metrics)
    metrics->counter("troupe_cluster_remote_requests_total", "Requests received from other nodes, by kind.", {"kind"})
      .inc({kind});
}

/// Where a message another node sent about `user_id` goes: this node's session manager, or (once) the owner this
/// node sees; or why neither.
struct admission {
  caf::actor target;
  bool forward = false; // target is another node's endpoint
  caf::error refused;
};

admission admit(endpoint_actor* self, const std::string& kind, const std::string& user_id, cluster_origin& origin) {
  auto& st = self->state;
  count_request(self, kind);
  auto view = st.cluster->view();
  if (!view || !st.cluster->lease_valid())
    return {{}, false, make_error(service_error::unavailable, "This node is joining the cluster; retry shortly.")};
  if (auto* sender = view->find(origin.node_id); sender && (sender->epoch > origin.epoch ||
                                                           (sender->epoch == origin.epoch && sender->state == "down")))
    return {{}, false, make_error(service_error::unavailable, "The sending node's epoch is no longer current.")};
  auto* owner = view->owner_of(user_id);
  if (!owner)
    return {{}, false, make_error(service_error::unavailable, "No cluster member is up; retry shortly.")};
  if (owner->node_id == view->self) {
    if (auto manager = st.names->get(session_manager_name))
      return {caf::actor_cast<caf::actor>(*manager), false, {}};
    return {{}, false, make_error(service_error::unavailable, "Sessions are restarting; retry shortly.")};
  }
  if (origin.hops >= 1 || !owner->endpoint)
    return {{}, false, make_error(service_error::unavailable, "The user's owner node is changing; retry shortly.")};
  origin.hops += 1;
  return {owner->endpoint, true, {}};
}

/// The session manager, for a message from a sender whose epoch is current (nullopt: stale sender, or restarting).
std::optional<session_manager_actor> from_current(endpoint_actor* self, const std::string& kind,
                                                  const cluster_origin& origin) {
  auto& st = self->state;
  count_request(self, kind);
  if (auto view = st.cluster->view())
    if (auto* sender = view->find(origin.node_id);
        sender && (sender->epoch > origin.epoch || (sender->epoch == origin.epoch && sender->state == "down")))
      return std::nullopt;
  return st.names->get(session_manager_name);
}

/// A SERVER span "cluster <kind>" of the trace `traceparent` names, when it is sampled and this node exports spans;
/// the sender's span is its parent.
std::optional<tracing::span> open_span(endpoint_actor* self, const char* kind, const std::string& traceparent,
                                       const std::string& tracestate, const std::string& sender) {
  if (!self->state.spans || traceparent.empty())
    return std::nullopt;
  auto span = tracing::server_span_for(traceparent, tracestate, std::string{"cluster "} + kind);
  if (span) {
    span->attributes = {{"troupe.node", self->state.cluster->node_id()}};
    if (!sender.empty())
      span->attributes.emplace_back("troupe.cluster.sender", sender);
  }
  return span;
}

/// Answers `promise` with what `target` answers to `xs...`: delegated, or, with a `span` to record, asked (so that
/// the span ends with the answer) and pushed to this node's span export. Asked with the sender's own deadline: a
/// target that dies holding the request (or a next node that goes away) sends nothing, and nothing may wait here
/// for ever.
template <class Result, class Handle, class... Ts>
void hand_over(endpoint_actor* self, caf::typed_response_promise<Result>& promise, const Handle& target,
               std::optional<tracing::span> span, Ts&&... xs) {
  if (!span) {
    promise.delegate(target, std::forward<Ts>(xs)...);
    return;
  }
  auto finish = [spans = self->state.spans, span = std::move(*span)](bool failed) mutable {
    span.end_unix_ns = tracing::unix_now_ns();
    span.error = failed;
    spans->push(std::move(span));
  };
  self->request(target, caf::duration{self->state.request_timeout}, std::forward<Ts>(xs)...)
    .then(
      [promise, finish](Result& answer) mutable {
        finish(false);
        promise.deliver(std::move(answer));
      },
      [promise, finish](caf::error& err) mutable {
        // A refusal (unauthenticated, limited) is an answer, not a failure of this node.
        finish(err.category() != service_error_category::value || service_code(err) == service_error::internal
               || service_code(err) == service_error::unavailable);
        promise.deliver(std::move(err));
      });
}

/// Sends the message to where admit() says: the manager gets it without the origin, another endpoint with it.
/// A message of a sampled trace (its origin's traceparent) is recorded as a span here; a forwarded one names it.
template <class Result, class... Ts>
caf::result<Result> route(endpoint_actor* self, const char* kind, const std::string& user_id, cluster_origin& origin,
                          Ts&&... xs) {
  auto where = admit(self, kind, user_id, origin);
  if (!where.target)
    return std::move(where.refused);
  auto promise = self->make_response_promise<Result>();
  auto span = open_span(self, kind, origin.traceparent, origin.tracestate, origin.node_id);
  if (where.forward) {
    if (span) {
      span->attributes.emplace_back("troupe.cluster.forwarded_to", "owner");
      origin.traceparent = tracing::format_traceparent(span->trace, span->id, true);
    }
    hand_over(self, promise, where.target, std::move(span), std::forward<Ts>(xs)..., std::move(origin));
  } else {
    hand_over(self, promise, where.target, std::move(span), std::forward<Ts>(xs)...);
  }
  return promise;
}

/// Hands a message about one cache key to this node's shard of the key, which answers the sender.
template <class Result, class... Ts>
caf::result<Result> to_shard(endpoint_actor* self, const std::string& key, Ts&&... xs) {
  count_request(self, "cache");
  auto shard = self->state.cache ? self->state.cache->shard_for(key) : std::nullopt;
  if (!shard)
    return make_error(service_error::unavailable, "The cache shard is restarting; retry shortly.");
  auto promise = self->make_response_promise<Result>();
  promise.delegate(*shard, std::forward<Ts>(xs)...);
  return promise;
}

template <class T>
std::function<void(caf::expected<T>)> deliver_to(caf::typed_response_promise<T> promise) {
  return [promise](caf::expected<T> result) mutable {
    if (result)
      promise.deliver(std::move(*result));
    else
      promise.deliver(std::move(result.error()));
  };
}

/// An invalidation of every shard on this node (`ask` runs it with the handler that answers).
template <class Ask>
caf::result<uint64_t> on_every_shard(endpoint_actor* self, Ask ask) {
  count_request(self, "cache");
  if (!self->state.cache)
    return make_error(service_error::unavailable, "This node has no cache.");
  auto promise = self->make_response_promise<uint64_t>();
  ask(deliver_to(promise));
  return promise;
}

/// This node's limiter shard of `key` decides (a request of another node's, in its trace when `traceparent` says).
caf::result<limit_decision> limit(endpoint_actor* self, limit_atom a, std::string& key, rate_policy& policy,
                                  const std::string& traceparent, const std::string& tracestate) {
  count_request(self, "limit");
  auto& st = self->state;
  auto shard = st.limiter_shards > 0 ? st.names->get(limiter_shard_name(shard_of(key, st.limiter_shards)))
                                     : std::nullopt;
  if (!shard)
    return make_error(service_error::unavailable, "The rate limiter is restarting; retry shortly.");
  auto promise = self->make_response_promise<limit_decision>();
  hand_over(self, promise, *shard, open_span(self, "limit", traceparent, tracestate, {}), a, std::move(key),
            std::move(policy));
  return promise;
}

/// This node's login throttle, for a message about an address it holds.
std::optional<caf::actor> login_throttle(endpoint_actor* self) {
  count_request(self, "throttle");
  return self->state.names->get(login_throttle_name);
}

/// What this node's debug answers read, or why another node may not have them.
caf::expected<debug_sources> debug_view(endpoint_actor* self) {
  count_request(self, "debug");
  auto& st = self->state;
  if (!st.probes)
    return make_error(service_error::conflict, "Debug mode is off on node " + st.cluster->node_id() +
                                                 " (debug.enabled): its actors cannot be inspected.");
  debug_sources sources;
  sources.names = st.names;
  sources.probes = st.probes;
  sources.node = st.cluster->node_id();
  return sources;
}

caf::behavior endpoint_impl(endpoint_actor* self, cluster_endpoint_options opts) {
  auto& st = self->state;
  st.membership = std::move(opts.membership);
  st.cluster = std::move(opts.cluster);
  st.names = std::move(opts.names);
  st.metrics = std::move(opts.metrics);
  if (opts.cache_shards > 0)
    st.cache = std::make_unique<cache_client>(st.names, opts.cache_shards);
  st.limiter_shards = opts.limiter_shards;
  st.probes = std::move(opts.probes);
  st.spans = std::move(opts.spans);
  st.request_timeout = opts.request_timeout;
  return {
    [self](authorize_atom, std::string& user_id, credential& cred, cluster_origin& origin) {
      return route<identity>(self, "authorize", user_id, origin, authorize_atom::value, user_id, std::move(cred));
    },
    [self](quota_atom, std::string& user_id, int64_t n, cluster_origin& origin) {
      return route<quota_status>(self, "quota", user_id, origin, quota_atom::value, user_id, n);
    },
    [self](spend_atom, std::string& user_id, spend_settlement& settlement, cluster_origin& origin) {
      return route<bool>(self, "spend", user_id, origin, spend_atom::value, user_id, settlement);
    },
    [self](revoke_atom, std::string& user_id, std::string& jti, int64_t expires_at, cluster_origin& origin) {
      return route<bool>(self, "revoke", user_id, origin, revoke_atom::value, user_id, std::move(jti), expires_at);
    },
    [self](revoke_key_atom, std::string& user_id, std::string& key_id, cluster_origin& origin) {
      return route<bool>(self, "revoke_key", user_id, origin, revoke_key_atom::value, user_id, std::move(key_id));
    },
    // Hand-offs and their end go to this node's manager whatever its view says (it may not have seen the change
    // that made it the owner yet): it keeps them for the user's next session.
    [self](handoff_atom, session_handoff& handoff, cluster_origin& origin) {
      if (auto manager = from_current(self, "handoff", origin))
        self->send(*manager, handoff_atom::value, std::move(handoff));
    },
    [self](handoff_done_atom, std::string& node_id, std::vector<std::string>& placed, cluster_origin& origin) {
      if (auto manager = from_current(self, "handoff_done", origin))
        self->send(*manager, handoff_done_atom::value, std::move(node_id), std::move(placed));
    },
    [self](cluster_hello_atom, std::string& node_id, int64_t epoch, caf::actor& endpoint) {
      self->send(self->state.membership, cluster_hello_atom::value, std::move(node_id), epoch, std::move(endpoint));
    },
    // The cache keys this node holds.
    [self](cache_get_atom a, std::string& key) {
      return to_shard<cache_reply>(self, key, a, std::move(key));
    },
    [self](cache_put_atom a, std::string& key, std::string& value, int64_t ttl_ms, std::vector<std::string>& tags) {
      return to_shard<bool>(self, key, a, std::move(key), std::move(value), ttl_ms, std::move(tags));
    },
    [self](cache_erase_atom a, std::string& key) { return to_shard<bool>(self, key, a, std::move(key)); },
    [self](cache_claim_atom a, std::string& key, int64_t producer_timeout_ms) {
      return to_shard<cache_reply>(self, key, a, std::move(key), producer_timeout_ms);
    },
    [self](cache_wait_atom a, std::string& key, uint64_t token) {
      return to_shard<cache_reply>(self, key, a, std::move(key), token);
    },
    [self](cache_fill_atom a, std::string& key, uint64_t token, std::string& value, int64_t ttl_ms,
           std::vector<std::string>& tags) {
      return to_shard<bool>(self, key, a, std::move(key), token, std::move(value), ttl_ms, std::move(tags));
    },
    [self](cache_fail_atom a, std::string& key, uint64_t token, caf::error& err) {
      return to_shard<bool>(self, key, a, std::move(key), token, std::move(err));
    },
    [self](cache_tag_atom, const std::string& tag) {
      return on_every_shard(self, [self, &tag](cache_client::count_handler then) {
        self->state.cache->invalidate_tag(self, tag, std::move(then));
      });
    },
    [self](cache_prefix_atom, const std::string& prefix) {
      return on_every_shard(self, [self, &prefix](cache_client::count_handler then) {
        self->state.cache->invalidate_prefix(self, prefix, std::move(then));
      });
    },
    [self](cache_clear_atom) {
      return on_every_shard(
        self, [self](cache_client::count_handler then) { self->state.cache->clear(self, std::move(then)); });
    },
    // The addresses this node holds: their limiter buckets and login throttle.
    [self](limit_atom a, std::string& key, rate_policy& policy) -> caf::result<limit_decision> {
      return limit(self, a, key, policy, {}, {});
    },
    [self](limit_atom a, std::string& key, rate_policy& policy, std::string& traceparent, std::string& tracestate)
      -> caf::result<limit_decision> { return limit(self, a, key, policy, traceparent, tracestate); },
    [self](throttle_check_atom a, std::string& email, std::string& ip) -> caf::result<int64_t> {
      auto throttle = login_throttle(self);
      if (!throttle)
        return make_error(service_error::unavailable, "Sign-in is restarting; retry shortly.");
      auto promise = self->make_response_promise<int64_t>();
      promise.delegate(*throttle, a, std::move(email), std::move(ip));
      return promise;
    },
    [self](throttle_fail_atom a, std::string& email, std::string& ip) {
      if (auto throttle = login_throttle(self))
        self->send(*throttle, a, std::move(email), std::move(ip));
    },
    [self](throttle_reset_atom a, std::string& email, std::string& ip) {
      if (auto throttle = login_throttle(self))
        self->send(*throttle, a, std::move(email), std::move(ip));
    },
    // Debug mode: this node's own answers.
    [self](cluster_debug_tree_atom) -> caf::result<std::string> {
      auto sources = debug_view(self);
      if (!sources)
        return std::move(sources.error());
      auto promise = self->make_response_promise<std::string>();
      debug_tree_json(self, *sources, deliver_to(promise));
      return promise;
    },
    [self](cluster_debug_actor_atom, const std::string& key, uint64_t limit) -> caf::result<std::string> {
      auto sources = debug_view(self);
      if (!sources)
        return std::move(sources.error());
      auto promise = self->make_response_promise<std::string>();
      debug_actor_json(self, *sources, key, static_cast<size_t>(std::min<uint64_t>(limit, 1000)),
                       deliver_to(promise));
      return promise;
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

caf::actor spawn_cluster_endpoint(caf::local_actor* parent, cluster_endpoint_options options) {
  return parent->spawn<caf::linked>(endpoint_impl, std::move(options));
}

cache_placement cluster_cache_placement(std::shared_ptr<cluster_state> state, std::chrono::milliseconds timeout,
                                        std::chrono::milliseconds near_ttl) {
  cache_placement placement;
  placement.timeout = timeout;
  placement.near_ttl = near_ttl;
  // An endpoint answers the cache's messages about one key and its invalidations (its handlers above), so its handle
  // serves as either interface.
  placement.remote = [state](std::string_view key) -> std::optional<cache_key_actor> {
    if (auto endpoint = remote_owner(state.get(), key))
      return caf::actor_cast<cache_key_actor>(std::move(*endpoint));
    return std::nullopt;
  };
  placement.peers = [state]() -> caf::expected<std::vector<cache_invalidation_actor>> {
    std::vector<cache_invalidation_actor> peers;
    auto view = state->view();
    if (!view)
      return make_error(service_error::unavailable,
                        "This node is joining the cluster, so it cannot reach every member's cache yet; retry shortly.");
    for (const auto& m : view->members) {
      bool holds = m.placed || std::binary_search(view->leaving.begin(), view->leaving.end(), m.node_id);
      if (m.node_id == view->self || !holds)
        continue;
      if (!m.endpoint)
        return make_error(service_error::unavailable,
                          "Cluster member " + m.node_id + " is not connected, so its cache could not be reached; "
                          "retry shortly.");
      peers.push_back(caf::actor_cast<cache_invalidation_actor>(m.endpoint));
    }
    return peers;
  };
  return placement;
}

} // namespace troupe
