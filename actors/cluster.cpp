#include "actors/cluster.hpp"

#include "actors/cache.hpp"
#include "actors/cluster_endpoint.hpp"

#include "actors/rate_limit.hpp"
#include "actors/sessions.hpp"
#include "config/log.hpp"
#include "config/service_error.hpp"
#include "introspect/observed_actor.hpp"
#include "persistence/cluster_store.hpp"

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>

#include <algorithm>
#include <map>
#include <csignal>
#include <cstdio>
#include <random>
#include <set>
#include <unistd.h>

namespace troupe {

// --- placement ---------------------------------------------------------------------------------------------------

namespace {

uint64_t fnv1a(std::string_view text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

/// splitmix64's finaliser: FNV-1a alone mixes its last bytes poorly.
uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

} // namespace

int rendezvous_pick(const std::vector<std::string>& nodes, std::string_view key) {
  auto k = mix(fnv1a(key));
  int best = -1;
  uint64_t best_weight = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto weight = mix(fnv1a(nodes[i]) ^ k);
    if (best < 0 || weight > best_weight || (weight == best_weight && nodes[i] < nodes[static_cast<size_t>(best)])) {
      best = static_cast<int>(i);
      best_weight = weight;
    }
  }
  return best;
}

const cluster_member* cluster_view::owner_of(std::string_view user_id) const {
  auto pick = rendezvous_pick(placed, user_id);
  return pick < 0 ? nullptr : &members[placed_index[static_cast<size_t>(pick)]];
}

const cluster_member* cluster_view::find(std::string_view node_id) const {
  for (const auto& m : members)
    if (m.node_id == node_id)
      return &m;
  return nullptr;
}

// --- cluster_state -----------------------------------------------------------------------------------------------

namespace {
constexpr size_t max_recorded_changes = 64;
constexpr double recorded_changes_s = 3600;
} // namespace

namespace {

std::string random_instance() {
  std::random_device rd;
  char out[33];
  std::snprintf(out, sizeof(out), "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return out;
}

} // namespace

cluster_state::cluster_state(bool enabled, std::string node_id)
  : enabled_(enabled), instance_(random_instance()), node_id_(std::move(node_id)) {}

std::string cluster_state::node_id() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return node_id_;
}

void cluster_state::set_node_id(std::string node_id) {
  std::lock_guard<std::mutex> guard{mutex_};
  node_id_ = std::move(node_id);
}

void cluster_state::set_initial_placement(std::vector<std::string> before_join) {
  std::sort(before_join.begin(), before_join.end());
  std::lock_guard<std::mutex> guard{mutex_};
  history_.clear();
  history_.push_back(change{monotonic_seconds(), std::move(before_join), {}});
}

void cluster_state::publish(std::shared_ptr<const cluster_view> view, double at) {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (view) {
      node_id_ = view->self;
      if (history_.empty() || history_.back().placed != view->placed) {
        history_.push_back(change{at, view->placed, view->leaving});
        changes_.fetch_add(1, std::memory_order_relaxed);
        // Keep the first entry as the base of the oldest change still recorded.
        while (history_.size() > max_recorded_changes ||
               (history_.size() > 2 && at - history_[1].at > recorded_changes_s))
          history_.erase(history_.begin());
      }
    }
  }
  std::atomic_store(&view_, std::move(view));
}

std::optional<cluster_state::user_move> cluster_state::last_move(const std::string& user_id) const {
  std::lock_guard<std::mutex> guard{mutex_};
  auto owner = [&](const std::vector<std::string>& placed) -> std::string_view {
    auto pick = rendezvous_pick(placed, user_id);
    return pick < 0 ? std::string_view{} : std::string_view{placed[static_cast<size_t>(pick)]};
  };
  for (size_t i = history_.size(); i-- > 1;) {
    if (owner(history_[i].placed) != node_id_)
      return std::nullopt;
    auto previous = owner(history_[i - 1].placed);
    if (previous == node_id_)
      continue;
    // From a member that is gone (died): it handed over nothing. From one still placed (this node joined) or
    // draining: it hands its session over, if it had one.
    const auto& now_placed = history_[i].placed;
    const auto& leaving = history_[i].leaving;
    bool gone = std::find(now_placed.begin(), now_placed.end(), previous) == now_placed.end() &&
                std::find(leaving.begin(), leaving.end(), previous) == leaving.end();
    return user_move{history_[i].at, std::string{previous}, gone};
  }
  return std::nullopt;
}

std::optional<double> cluster_state::moved_here_at(const std::string& user_id) const {
  auto move = last_move(user_id);
  if (move && move->from_gone)
    return move->at;
  return std::nullopt;
}

void cluster_state::set_http(std::string url, uint16_t port) {
  std::lock_guard<std::mutex> guard{mutex_};
  http_ = std::make_pair(std::move(url), port);
}

std::optional<std::pair<std::string, uint16_t>> cluster_state::http() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return http_;
}

session_route route_user(const cluster_state* state, const std::string& user_id) {
  session_route route;
  if (!state || !state->enabled())
    return route;
  auto view = state->view();
  const cluster_member* owner = view && state->lease_valid() ? view->owner_of(user_id) : nullptr;
  if (!owner) {
    route.kind = session_route::unavailable;
    return route;
  }
  route.owner = owner->node_id;
  if (owner->node_id == view->self)
    return route;
  if (!owner->endpoint) {
    route.kind = session_route::unavailable; // placed, but its connection is down: it is down, or back soon
    return route;
  }
  route.kind = session_route::remote;
  route.endpoint = owner->endpoint;
  route.origin = cluster_origin{view->self, view->epoch, 0};
  return route;
}

std::optional<caf::actor> remote_owner(const cluster_state* state, std::string_view key) {
  if (!state || !state->enabled())
    return std::nullopt;
  auto view = state->view();
  const auto* owner = view ? view->owner_of(key) : nullptr;
  if (owner == nullptr || owner->node_id == view->self || !owner->endpoint)
    return std::nullopt;
  return owner->endpoint;
}

// --- settings ----------------------------------------------------------------------------------------------------

std::string resolve_node_id(const config::cluster_settings& cluster, uint16_t http_port) {
  if (!cluster.node_id.empty())
    return cluster.node_id;
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
    std::snprintf(host, sizeof(host), "troupe");
  auto port = cluster.port > 0 ? static_cast<int64_t>(cluster.port) : static_cast<int64_t>(http_port);
  return std::string{host} + "-" + std::to_string(port);
}

namespace {

bool tls_configured(const config::cluster_settings& c) {
  return !c.tls_cert.empty() && !c.tls_key.empty() && !c.tls_ca.empty();
}

bool loopback_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

} // namespace

void configure_cluster_transport(caf::actor_system_config& cfg, const config::cluster_settings& cluster) {
  if (!cluster.enabled)
    return;
  cfg.load<caf::io::middleman>();
  if (tls_configured(cluster)) {
    cfg.load<caf::openssl::manager>();
    cfg.openssl_certificate = cluster.tls_cert;
    cfg.openssl_key = cluster.tls_key;
    cfg.openssl_cafile = cluster.tls_ca;
  }
  // Off by default in CAF 0.17.6: a hung (SIGSTOPped) peer would never be detected.
  cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::milliseconds{cluster.heartbeat_ms}});
  cfg.set("middleman.connection-timeout", caf::timespan{std::chrono::milliseconds{cluster.failure_ms}});
}

std::string cluster_settings_problem(const config::cluster_settings& c) {
  auto set = int{!c.tls_cert.empty()} + int{!c.tls_key.empty()} + int{!c.tls_ca.empty()};
  if (set != 0 && set != 3)
    return "cluster.tls_cert, cluster.tls_key and cluster.tls_ca go together: set all three or none";
  if (c.enabled && (c.host.empty() || c.host == "0.0.0.0" || c.host == "::"))
    return "cluster.host is advertised to the other nodes: give this node's own address, not a wildcard";
  if (c.enabled && set == 0 && !c.insecure && !loopback_host(c.host))
    return "cluster.host " + c.host +
           " is not a loopback address: other nodes would connect unauthenticated; set cluster.tls_cert, "
           "cluster.tls_key and cluster.tls_ca (mutual TLS), or cluster.insecure=true on a trusted network";
  return {};
}

namespace {

// --- the membership actor ----------------------------------------------------------------------------------------

struct peer {
  int64_t epoch = 0;
  caf::actor endpoint;
  bool connecting = false;
  bool connected_once = false; // since this epoch: placement counts it while the table says it is alive
  bool warned = false;         // a failed connection was logged (once per epoch and loss)
};

struct membership_state {
  cluster_options opts;
  std::unique_ptr<membership_store> store;
  std::string node_id;
  int64_t epoch = 0;
  caf::actor endpoint;
  uint16_t port = 0; // the endpoint's bound BASP port
  bool joined = false;
  bool ready = false; // connected to the members that were up when it joined: placed, row "up"
  std::vector<member_row> rows; // the table at the last tick
  bool rows_read = false;       // since this incarnation joined (readiness needs to know who else is up)
  std::map<std::string, peer> peers;
  uint64_t ticks = 0;
  std::chrono::steady_clock::time_point last_beat; // when this node's last heartbeat was accepted
  bool database_failing = false;
  bool held_elsewhere = false; // the node id is another live process's (logged once)
  std::vector<std::string> placed;    // at the last published view
  std::vector<std::string> connected; // members with an endpoint at the last published view
  // Draining: the row says leaving; at handoff_at this node stops placing itself (its sessions go to their new
  // owners); at done_at its row says down and the waiters are answered.
  bool draining = false;
  bool self_unplaced = false;
  bool drained = false;
  bool exit_when_drained = false; // the drain came from the table (troupe cluster drain): SIGTERM once done
  std::chrono::steady_clock::time_point handoff_at, done_at;
  std::vector<caf::response_promise> leave_waiters;

  static inline const char* name = "cluster_membership";
};

using membership_actor = observed_stateful_actor<membership_state>;

bool alive(const member_row& row, const config::cluster_settings& s) {
  return row.state == "up" && row.silent_ms <= s.failure_ms;
}

/// Not down and not silent: worth a connection (a joining member waits for it to come up; a draining one still
/// serves and hands over).
bool reachable(const member_row& row, const config::cluster_settings& s) {
  return row.state != "down" && row.silent_ms <= s.failure_ms;
}

/// The node with the lower id opens the connection between two nodes and says hello over it.
bool opens_connection_to(const std::string& self_id, const std::string& peer_id) {
  return self_id < peer_id;
}

/// Builds and publishes the view from the last rows and the peers; tells the session manager when placement moved.
void publish_view(membership_actor* self) {
  auto& st = self->state;
  if (!st.ready)
    return;
  auto view = std::make_shared<cluster_view>();
  view->self = st.node_id;
  view->epoch = st.epoch;
  bool self_listed = false;
  for (const auto& row : st.rows) {
    cluster_member m;
    m.node_id = row.node_id;
    m.epoch = row.epoch;
    m.address = row.address;
    m.port = row.port;
    m.http_url = row.http_url;
    m.state = row.state != "down" && row.silent_ms > st.opts.settings.failure_ms ? "down" : row.state;
    m.silent_ms = row.silent_ms;
    m.sessions = row.sessions;
    m.last_seen_unix = row.last_seen_unix;
    if (row.node_id == st.node_id) {
      self_listed = true;
      m.epoch = st.epoch;
      m.state = st.draining ? "leaving" : "up";
      m.connected = true;
      m.placed = !st.self_unplaced;
      m.endpoint = st.endpoint;
      if (st.draining)
        view->leaving.push_back(m.node_id);
    } else {
      if (auto p = st.peers.find(row.node_id); p != st.peers.end() && p->second.epoch == row.epoch) {
        m.connected = static_cast<bool>(p->second.endpoint);
        m.endpoint = p->second.endpoint;
      }
      // By the table alone, so that every node places alike whatever it can connect to: a member up in the table
      // but not connected here has its users answered 503 until it is connected, or down in the table too.
      m.placed = alive(row, st.opts.settings);
      if (row.state == "leaving" && row.silent_ms <= st.opts.settings.failure_ms)
        view->leaving.push_back(m.node_id);
    }
    view->members.push_back(std::move(m));
  }
  if (!self_listed) {
    cluster_member m;
    m.node_id = st.node_id;
    m.epoch = st.epoch;
    m.state = st.draining ? "leaving" : "up";
    m.connected = true;
    m.placed = !st.self_unplaced;
    m.endpoint = st.endpoint;
    view->members.push_back(std::move(m));
    std::sort(view->members.begin(), view->members.end(),
              [](const auto& a, const auto& b) { return a.node_id < b.node_id; });
  }
  std::sort(view->leaving.begin(), view->leaving.end());
  for (size_t i = 0; i < view->members.size(); ++i)
    if (view->members[i].placed) {
      view->placed.push_back(view->members[i].node_id);
      view->placed_index.push_back(i);
    }
  std::vector<std::string> connected;
  for (const auto& m : view->members)
    if (m.endpoint)
      connected.push_back(m.node_id);
  // A newly connected member also hears what this node handed over (it may wait for that before serving a user).
  bool tell = view->placed != st.placed || connected != st.connected;
  st.connected = std::move(connected);
  bool moved = view->placed != st.placed;
  if (moved) {
    log::info("cluster placement changed", log::fields{}
                                             .add("node_id", st.node_id)
                                             .add("members", static_cast<int64_t>(view->placed.size())));
    st.placed = view->placed;
  }
  st.opts.state->publish(std::move(view), monotonic_seconds());
  if (tell)
    if (auto manager = st.opts.names->get(session_manager_name))
      self->send(*manager, cluster_view_atom::value);
}

caf::io::middleman_actor middleman_of(membership_actor* self) {
  if (tls_configured(self->state.opts.settings))
    return self->system().openssl_manager().actor_handle();
  return self->system().middleman().actor_handle();
}

/// Becomes ready (row "up", placed, serving) once connected to every member that is up.
void check_ready(membership_actor* self) {
  auto& st = self->state;
  if (st.ready || !st.joined || !st.rows_read)
    return;
  // Connected to every member that is up: a node that cannot talk to the cluster (no TLS credentials, a firewall)
  // stays "joining", placed by nobody and serving nobody, instead of taking users it could not be asked about.
  for (const auto& row : st.rows)
    if (row.node_id != st.node_id && alive(row, st.opts.settings))
      if (auto p = st.peers.find(row.node_id); p == st.peers.end() || !p->second.endpoint)
        return;
  st.ready = true;
  try {
    auto sent_at = std::chrono::steady_clock::now();
    if (st.store->heartbeat(st.node_id, st.epoch, "up", st.opts.sessions_active ? st.opts.sessions_active->load() : 0))
      st.opts.state->extend_lease(sent_at + std::chrono::milliseconds{st.opts.settings.failure_ms -
                                                                      st.opts.settings.heartbeat_ms});
  } catch (const std::exception&) {
    // The next tick says "up" again.
  }
  log::info("cluster joined", log::fields{}.add("node_id", st.node_id).add("epoch", st.epoch).add("port",
                                                                                                    static_cast<int64_t>(st.port)));
  publish_view(self);
}

void connect_to(membership_actor* self, const member_row& row) {
  auto& p = self->state.peers[row.node_id];
  p.connecting = true;
  auto timeout = std::chrono::milliseconds{self->state.opts.settings.failure_ms};
  self->request(middleman_of(self), caf::duration{timeout}, caf::connect_atom::value, row.address, row.port)
    .then(
      [self, id = row.node_id, epoch = row.epoch](caf::node_id&, caf::strong_actor_ptr& ptr, std::set<std::string>&) {
        auto& p = self->state.peers[id];
        p.connecting = false;
        if (p.epoch != epoch || !ptr) {
          check_ready(self);
          return;
        }
        p.endpoint = caf::actor_cast<caf::actor>(ptr);
        p.connected_once = true;
        p.warned = false;
        self->monitor(p.endpoint);
        auto& st = self->state;
        self->send(p.endpoint, cluster_hello_atom::value, st.node_id, st.epoch, st.endpoint);
        log::info("cluster member connected", log::fields{}.add("node_id", id).add("epoch", epoch));
        check_ready(self);
        publish_view(self);
      },
      [self, id = row.node_id](caf::error& err) {
        auto& p = self->state.peers[id];
        p.connecting = false;
        if (!p.warned)
          log::warn("cannot connect to cluster member; retrying every heartbeat",
                    log::fields{}.add("node_id", id).add("error", self->system().render(err)));
        p.warned = true;
        check_ready(self);
      });
}

/// Publishes the endpoint (once per incarnation) and writes this node's row with a new epoch.
bool join(membership_actor* self) {
  auto& st = self->state;
  auto http = st.opts.state->http();
  if (!http)
    return false;
  const auto& s = st.opts.settings;
  st.node_id = resolve_node_id(s, http->second);
  if (!st.endpoint) {
    st.endpoint = spawn_cluster_endpoint(self, cluster_endpoint_options{caf::actor{self}, st.opts.state, st.opts.names,
                                                                        st.opts.metrics, st.opts.cache_shards,
                                                                        st.opts.limiter_shards, st.opts.probes,
                                                                        st.opts.spans,
                                                                        std::chrono::milliseconds{s.request_timeout_ms}});
    auto published = tls_configured(s)
                       ? caf::openssl::publish(st.endpoint, static_cast<uint16_t>(s.port), s.host.c_str(), false)
                       : self->system().middleman().publish(st.endpoint, static_cast<uint16_t>(s.port), s.host.c_str(),
                                                            false);
    if (!published) {
      log::error("cannot listen for cluster members", log::fields{}
                                                        .add("host", s.host)
                                                        .add("port", s.port)
                                                        .add("error", self->system().render(published.error())));
      self->quit(published.error());
      return false;
    }
    st.port = *published;
    // However this incarnation ends, its endpoint goes with it and the port is free for the next one.
    self->attach_functor([sys = &self->system(), endpoint = st.endpoint, port = st.port, tls = tls_configured(s)] {
      auto manager = tls ? sys->openssl_manager().actor_handle() : sys->middleman().actor_handle();
      caf::anon_send(manager, caf::unpublish_atom::value, endpoint.address(), port);
      caf::anon_send_exit(endpoint, caf::exit_reason::kill);
    });
  }
  try {
    std::vector<std::string> before;
    for (const auto& row : st.store->members())
      if (row.node_id != st.node_id && alive(row, s))
        before.push_back(row.node_id);
    if (before.empty())
      before.push_back(st.node_id); // alone: nobody served these users before
    member_row me;
    me.node_id = st.node_id;
    me.address = s.host;
    me.port = st.port;
    me.http_url = http->first;
    me.instance = st.opts.state->instance();
    auto epoch = st.store->join(me, "joining", std::chrono::milliseconds{s.failure_ms});
    if (!epoch) {
      if (!st.held_elsewhere)
        log::warn("another process holds this node id and is alive; joining once it is down or silent (a node "
                  "restarted at once waits for the others to take its users over first)",
                  log::fields{}.add("node_id", st.node_id));
      st.held_elsewhere = true;
      return false;
    }
    st.held_elsewhere = false;
    st.epoch = *epoch;
    st.opts.state->set_initial_placement(std::move(before));
  } catch (const std::exception& e) {
    log::warn("cannot join the cluster yet; retrying", log::fields{}.add("error", e.what()));
    return false;
  }
  st.joined = true;
  st.ready = false;
  st.rows_read = false;
  st.placed.clear();
  log::info("cluster joining", log::fields{}.add("node_id", st.node_id).add("epoch", st.epoch));
  return true;
}

void start_drain(membership_actor* self, bool exit_when_drained) {
  auto& st = self->state;
  if (st.draining)
    return;
  const auto& s = st.opts.settings;
  st.draining = true;
  st.exit_when_drained = exit_when_drained;
  auto now = std::chrono::steady_clock::now();
  // The others read the table every heartbeat: after two (and a margin) they all route this node's users elsewhere.
  st.handoff_at = now + std::chrono::milliseconds{2 * s.heartbeat_ms + 300};
  st.done_at = st.handoff_at + std::chrono::milliseconds{std::max<int64_t>(s.heartbeat_ms, 1000)};
  try {
    st.store->set_state(st.node_id, st.epoch, "leaving");
  } catch (const std::exception& e) {
    log::warn("cannot mark this node leaving; the others will find it silent instead",
              log::fields{}.add("error", e.what()));
  }
  log::info("cluster drain started", log::fields{}.add("node_id", st.node_id).add("epoch", st.epoch));
  publish_view(self);
}

/// Advances a drain: stop placing this node (hand its sessions over), then leave.
void step_drain(membership_actor* self) {
  auto& st = self->state;
  auto now = std::chrono::steady_clock::now();
  if (!st.self_unplaced && now >= st.handoff_at) {
    st.self_unplaced = true;
    publish_view(self); // the session manager hands every session to its new owner
    return;
  }
  if (st.self_unplaced && now >= st.done_at) {
    try {
      st.store->set_state(st.node_id, st.epoch, "down");
    } catch (const std::exception&) {
    }
    st.drained = true;
    log::info("cluster drain done", log::fields{}.add("node_id", st.node_id).add("epoch", st.epoch));
    for (auto& waiter : st.leave_waiters)
      waiter.deliver(true);
    st.leave_waiters.clear();
    if (st.exit_when_drained)
      ::kill(::getpid(), SIGTERM);
  }
}

void tick(membership_actor* self) {
  auto& st = self->state;
  const auto& s = st.opts.settings;
  if (st.drained)
    return;
  self->delayed_send(self, std::chrono::milliseconds{st.draining ? std::min<int64_t>(s.heartbeat_ms, 100) : s.heartbeat_ms},
                     cluster_tick_atom::value);
  if (!st.joined && !join(self))
    return;
  ++st.ticks;
  try {
    auto sessions = st.opts.sessions_active ? st.opts.sessions_active->load() : 0;
    auto sent_at = std::chrono::steady_clock::now();
    auto row_state = st.store->heartbeat(st.node_id, st.epoch, st.draining ? "leaving" : st.ready ? "up" : "joining",
                                         sessions);
    if (row_state)
      st.opts.state->extend_lease(sent_at + std::chrono::milliseconds{s.failure_ms - s.heartbeat_ms});
    if (row_state && *row_state == "leaving" && !st.draining)
      start_drain(self, true);
    if (!row_state) {
      // Declared down (or another process took this node id): this incarnation's users have moved on.
      log::warn("this node was declared down by the cluster; ending its sessions and joining again",
                log::fields{}.add("node_id", st.node_id).add("epoch", st.epoch));
      st.opts.state->publish(nullptr, monotonic_seconds());
      if (auto manager = st.opts.names->get(session_manager_name))
        self->send(*manager, cluster_reset_atom::value);
      // Cut off, it missed the cache invalidations the others sent meanwhile: it joins again with an empty cache.
      for (size_t i = 0; i < st.opts.cache_shards; ++i)
        if (auto shard = st.opts.names->get(cache_shard_name(i)))
          caf::anon_send(*shard, cache_clear_atom::value);
      st.joined = false;
      if (!join(self))
        return;
    }
    // A node whose own heartbeats stalled for about failure_ms (its process or machine froze) judges nobody on this
    // tick: the others may have been frozen with it, and get one heartbeat to show they live. The dead ones are
    // marked at the next tick (or by another node).
    auto beat = std::chrono::steady_clock::now();
    bool stalled = row_state && st.last_beat != std::chrono::steady_clock::time_point{}
                   && beat - st.last_beat > std::chrono::milliseconds{s.failure_ms - s.heartbeat_ms};
    if (row_state)
      st.last_beat = beat;
    if (stalled)
      log::info("this node's heartbeats stalled; judging no member silent on this tick",
                log::fields{}.add("node_id", st.node_id));
    else
      for (const auto& id : st.store->mark_silent_down(std::chrono::milliseconds{s.failure_ms}, st.node_id))
        log::warn("cluster member down", log::fields{}.add("node_id", id).add("by", st.node_id));
    if (st.ticks % 600 == 1)
      st.store->purge_down(std::chrono::milliseconds{s.purge_ms});
    st.rows = st.store->members();
    st.rows_read = true;
    if (st.database_failing)
      log::info("cluster membership table reachable again");
    st.database_failing = false;
  } catch (const std::exception& e) {
    if (!st.database_failing)
      log::warn("cluster membership table unreachable; keeping the last view", log::fields{}.add("error", e.what()));
    st.database_failing = true;
    return;
  }
  // Connect to the members that are up; forget the ones gone or restarted.
  std::set<std::string> current;
  for (const auto& row : st.rows) {
    if (row.node_id == st.node_id || !reachable(row, s))
      continue;
    current.insert(row.node_id);
    auto& p = st.peers[row.node_id];
    if (p.epoch < row.epoch) { // restarted (a hello may have told us first: never go back to an older epoch)
      if (p.endpoint)
        self->demonitor(p.endpoint);
      p = peer{};
      p.epoch = row.epoch;
    }
    if (!opens_connection_to(st.node_id, row.node_id))
      continue; // it connects to us and says hello
    if (!p.endpoint && !p.connecting)
      connect_to(self, row);
    else if (p.endpoint)
      self->send(p.endpoint, cluster_hello_atom::value, st.node_id, st.epoch, st.endpoint);
  }
  for (auto i = st.peers.begin(); i != st.peers.end();) {
    if (current.count(i->first) == 0 && !i->second.connecting) {
      if (i->second.endpoint)
        self->demonitor(i->second.endpoint);
      i = st.peers.erase(i);
    } else {
      ++i;
    }
  }
  check_ready(self);
  publish_view(self);
  if (st.draining)
    step_drain(self);
}

caf::behavior membership_impl(membership_actor* self, cluster_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.store = make_membership_store(st.opts.database_url);
  self->set_down_handler([self](caf::down_msg& msg) {
    for (auto& [id, p] : self->state.peers)
      if (p.endpoint && p.endpoint.address() == msg.source) {
        log::warn("cluster member connection lost", log::fields{}.add("node_id", id));
        p.endpoint = nullptr;
        publish_view(self);
        return;
      }
  });
  self->set_exit_handler([self](caf::exit_msg& msg) {
    // Leaving on purpose: marked down at once, so the others move this node's users without waiting for silence.
    auto& st = self->state;
    if (st.joined && !st.drained) {
      try {
        st.store->set_state(st.node_id, st.epoch, "down");
      } catch (const std::exception&) {
      }
      log::info("cluster left", log::fields{}.add("node_id", st.node_id).add("epoch", st.epoch));
    }
    st.opts.state->publish(nullptr, monotonic_seconds());
    self->quit(msg.reason);
  });
  self->send(self, cluster_tick_atom::value);
  return {
    [self](cluster_tick_atom) { tick(self); },
    [self](cluster_hello_atom, const std::string& node_id, int64_t epoch, caf::actor& endpoint) {
      // The other end of a connection it opened: its endpoint, over that connection.
      auto& st = self->state;
      if (!st.joined || node_id == st.node_id || !endpoint)
        return;
      auto& p = st.peers[node_id];
      if (epoch < p.epoch)
        return; // an older incarnation
      if (epoch > p.epoch) {
        if (p.endpoint)
          self->demonitor(p.endpoint);
        p = peer{};
        p.epoch = epoch;
      }
      if (p.endpoint == endpoint)
        return;
      if (p.endpoint)
        self->demonitor(p.endpoint);
      p.endpoint = std::move(endpoint);
      p.connected_once = true;
      self->monitor(p.endpoint);
      log::info("cluster member connected", log::fields{}.add("node_id", node_id).add("epoch", epoch));
      check_ready(self);
      publish_view(self);
    },
    [self](cluster_join_atom) {
      // The heartbeat timer runs from the start; joining now only saves waiting for it.
      if (!self->state.joined)
        join(self);
    },
    [self](cluster_leave_atom) -> caf::result<bool> {
      auto& st = self->state;
      if (!st.joined || st.drained)
        return true;
      auto promise = self->make_response_promise<bool>();
      st.leave_waiters.push_back(promise);
      start_drain(self, false);
      return promise;
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

void add_cluster_collector(metrics_registry& metrics, std::shared_ptr<cluster_state> state) {
  metrics.add_collector([state](prometheus_writer& out) {
    out.family("troupe_cluster_members", "gauge", "Cluster members as this node sees them, by state.");
    std::map<std::string, int64_t> by_state{{"joining", 0}, {"up", 0}, {"leaving", 0}, {"down", 0}};
    if (auto view = state->view())
      for (const auto& m : view->members)
        ++by_state[m.state];
    for (const auto& [s, n] : by_state)
      out.sample("troupe_cluster_members", {{"state", s}}, static_cast<double>(n));
    out.family("troupe_cluster_placed_members", "gauge",
               "Members this node places users on (up, and connected since they joined).");
    auto view = state->view();
    out.sample("troupe_cluster_placed_members", {}, view ? static_cast<double>(view->placed.size()) : 0.0);
    out.family("troupe_cluster_placement_changes_total", "counter",
               "Changes of the members that own users, as this node saw them (users moved).");
    out.sample("troupe_cluster_placement_changes_total", {}, static_cast<double>(state->placement_changes()));
  });
}

} // namespace

child_spec make_cluster_supervisor(cluster_options options) {
  if (options.metrics)
    add_cluster_collector(*options.metrics, options.state);
  return child_spec{"cluster",
                    [options](caf::actor_system& sys) { return sys.spawn<caf::detached>(membership_impl, options); },
                    restart_type::permanent, std::chrono::milliseconds{5000}, child_kind::worker};
}

void join_cluster(cluster_state& state, const directory& names, const std::string& http_url, uint16_t http_port) {
  state.set_http(http_url, http_port);
  if (auto membership = names.get("cluster"))
    caf::anon_send(*membership, cluster_join_atom::value);
}

} // namespace troupe
