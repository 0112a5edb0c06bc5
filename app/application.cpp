#include "app/application.hpp"

#include "actors/auth_workers.hpp"
#include "actors/cache.hpp"
#include "actors/cluster.hpp"
#include "actors/cluster_endpoint.hpp"
#include "actors/directory.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "actors/ops.hpp"
#include "actors/persistence_supervisor.hpp"
#include "actors/rate_limit.hpp"
#include "actors/sessions.hpp"
#include "actors/supervisor.hpp"
#include "actors/uploads.hpp"
#include "config/build_info.hpp"
#include "config/log.hpp"
#include "http/auth.hpp"
#include "http/bridge.hpp"
#include "http/cache_routes.hpp"
#include "http/cluster_routes.hpp"
#include "actors/upstream_client.hpp"
#include "http/cors.hpp"
#include "http/debug_routes.hpp"
#include "http/gateway.hpp"
#include "config/hashing.hpp"
#include "http/json_body.hpp"
#include "http/load_monitor.hpp"
#include "http/observability_routes.hpp"
#include "http/ops_routes.hpp"
#include "http/repository_routes.hpp"
#include "http/server.hpp"
#include "actors/span_export.hpp"
#include "http/traffic.hpp"
#include "http/upload_routes.hpp"
#include "http/plan_job.hpp"
#include "http/plan_routes.hpp"
#include "http/usage_routes.hpp"
#include "http/wishlist_routes.hpp"
#include "http/websocket.hpp"
#include "http/write_routes.hpp"
#include "introspect/probe.hpp"
#include "persistence/admin.hpp"
#include "persistence/migrations.hpp"

#include <caf/all.hpp>

#include <csignal>
#include <cstdlib>
#include <malloc.h>
#include <pthread.h>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>

namespace troupe::app {

namespace {

using std::chrono::milliseconds;

/// What the subsystems share, each piece made once from the settings and handed to the subsystems (and the HTTP
/// routes) that need it; what only one subsystem uses stays inside its supervisor's factory.
struct shared_pieces {
  supervision_context tree;                 // the name directory and the metrics registry: every supervisor
  std::shared_ptr<writer_counters> writer;  // the DB writer's counters: persistence, the load monitor
  std::shared_ptr<directory> sessions;      // live sessions by user id: the session manager, authentication
  std::shared_ptr<cache_stats> cache;       // the cache's counters and its shard count: the cache, its clients
  client::upstream_handles upstreams; // breaker gauges and client doorbells: the upstreams, the gateway
  http::load_control load;                  // shed state and in-flight gates: the load monitor, HTTP, readiness
  std::shared_ptr<probe_registry> probes;   // debug mode only: the mailbox watch, the debug routes
  std::string uploads_dir;                  // uploads.dir, absolute
  std::shared_ptr<storage_epoch> storage_changes; // counted by persistence, read by sessions (GET /api/me's storage)
  std::shared_ptr<std::atomic<int64_t>> sessions_active; // live session actors: sessions, the cluster's row
  std::shared_ptr<cluster_state> cluster;   // placement: the cluster, sessions, authentication, the gateway
  std::shared_ptr<http::plan_jobs> plans;   // the "plan" jobs: run under uploads, given the gateway by HTTP
  std::shared_ptr<tracing::span_queue> spans; // tracing.otlp_endpoint only: HTTP pushes, the exporter sends
};

shared_pieces make_shared_pieces(const config::settings& s, std::shared_ptr<probe_registry> probes) {
  shared_pieces p;
  p.tree = {std::make_shared<directory>(), std::make_shared<metrics_registry>()};
  p.writer = std::make_shared<writer_counters>();
  p.sessions = std::make_shared<directory>();
  p.cache = std::make_shared<cache_stats>(cache_shard_count(s.cache), static_cast<uint64_t>(s.cache.max_bytes));
  p.upstreams = client::make_upstream_handles(s);
  p.load = http::make_load_control(s.limits);
  p.probes = std::move(probes);
  p.uploads_dir = absolute_uploads_dir(s.uploads.dir);
  p.storage_changes = std::make_shared<storage_epoch>();
  p.sessions_active = std::make_shared<std::atomic<int64_t>>(0);
  p.cluster = std::make_shared<cluster_state>(s.cluster.enabled, s.cluster.node_id);
  http::plan_jobs::settings plans;
  plans.default_model = s.plans.model;
  plans.context_segments = static_cast<int32_t>(s.plans.context_segments);
  plans.call_timeout = std::chrono::milliseconds{s.gateway.request_timeout_ms + 10000};
  p.plans = std::make_shared<http::plan_jobs>(plans, db_query_lookup(p.tree.names));
  if (!s.tracing.otlp_endpoint.empty())
    p.spans = std::make_shared<tracing::span_queue>(static_cast<size_t>(s.tracing.max_queue));
  return p;
}

/// HTTP's subtree, with the span exporter when tracing.otlp_endpoint is set.
supervisor_config http_tree(const config::settings& s, const shared_pieces& p) {
  auto tree = http::make_http_supervisor(s, p.tree, p.load, p.writer);
  if (p.spans) {
    tracing::exporter_options exporter;
    exporter.url = s.tracing.otlp_endpoint;
    exporter.queue = p.spans;
    exporter.interval = milliseconds{s.tracing.export_ms};
    exporter.service_version = build_info::version;
    exporter.instance = [cluster = p.cluster] { return cluster->node_id(); };
    tree.children.push_back(tracing::exporter_child(exporter));
    tracing::add_tracing_collector(*p.tree.metrics, p.spans);
  }
  return tree;
}

/// The supervision tree: the subsystems in start order (shutdown stops them in reverse), each one's supervisor made
/// next to its code. Registers the subsystems' metric collectors in p.tree.metrics: call it once.
supervisor_config root_tree(const config::settings& s, const shared_pieces& p) {
  ops_inputs ops{{http::shedding_probe(p.load.shedding), upstreams_probe(s.upstreams, p.tree.names)},
                 p.probes,
                 [cluster = p.cluster] { return cluster->node_id(); },
                 nullptr};
  auto root = subsystem_supervisor("root", supervision_strategy::one_for_one, p.tree);
  root.children = {
    supervisor_child(make_persistence_supervisor(s, p.tree, p.writer, p.storage_changes)),
    supervisor_child(make_auth_supervisor(s, p.tree)),
    supervisor_child(make_limits_supervisor(s.limits, p.tree)),
    make_sessions_supervisor(s, p.tree, session_pieces{p.sessions, p.storage_changes, p.sessions_active, p.cluster}),
    supervisor_child(make_cache_supervisor(s.cache, p.tree, p.cache)),
    supervisor_child(client::make_upstreams_supervisor(s, p.tree, p.upstreams)),
    supervisor_child(
      make_uploads_supervisor(s, p.tree, p.uploads_dir, {{"plan", http::plan_job_handler(p.plans)}}, p.spans)),
    supervisor_child(make_ops_supervisor(s, p.tree, std::move(ops))),
    supervisor_child(http_tree(s, p)),
  };
  // After the sessions (its exit, marking this node down, comes before theirs); it joins once HTTP listens.
  if (s.cluster.enabled)
    root.children.insert(root.children.begin() + 4,
                         make_cluster_supervisor(cluster_options{s.cluster, s.db.url, p.cluster, p.tree.names,
                                                                 p.tree.metrics, p.sessions_active,
                                                                 p.cache->shards(), limiter_shard_count(s.limits),
                                                                 p.probes, p.spans}));
  return root;
}

/// Makes the accounts named by TROUPE_ADMIN_EMAILS admins, those that exist now: registering later with one of those
/// emails grants nothing (whoever registers first would get it), `troupe admin grant` does. Logs every grant with the
/// account's registration time, so an operator can tell an account registered by someone else.
void grant_configured_admins(const config::settings& s) {
  if (s.db.url.empty())
    return;
  for (const auto& email : http::parse_admin_emails(s.auth.admin_emails)) {
    auto outcome = set_user_role(s.db.url, email, "admin");
    if (auto* error = std::get_if<std::string>(&outcome)) {
      log::warn("could not grant admin", log::fields{}.add("email", email).add("error", *error));
      continue;
    }
    const auto& change = std::get<role_change>(outcome);
    if (!change.found)
      log::warn("admin email has no account; registering with it will not grant admin: run troupe admin grant "
                "once its owner has registered",
                log::fields{}.add("email", email));
    else if (change.previous_role != "admin")
      log::info(
        "admin granted at start-up",
        log::fields{}.add("email", email).add("user_id", change.user_id).add("registered_at_unix", change.created_at));
  }
}

/// troupe_http_requests_in_flight, read from the HTTP server's state while it exists.
void add_http_collector(metrics_registry& metrics, const std::shared_ptr<http::server_state>& http_state) {
  std::weak_ptr<http::server_state> weak = http_state;
  metrics.add_collector([weak](prometheus_writer& out) {
    auto state = weak.lock();
    if (!state)
      return;
    out.family("troupe_http_requests_in_flight", "gauge", "HTTP requests being handled right now.");
    out.sample("troupe_http_requests_in_flight", {}, static_cast<double>(state->in_flight()));
    const auto& totals = http::process_connection_totals();
    out.family("troupe_http_connections_open", "gauge", "HTTP connections open (WebSockets and streams included).");
    out.sample("troupe_http_connections_open", {}, static_cast<double>(totals.open.load(std::memory_order_relaxed)));
    out.family("troupe_http_network_bytes_total", "counter", "Bytes read from (in) and written to (out) clients.");
    out.sample("troupe_http_network_bytes_total", {{"direction", "in"}},
               static_cast<double>(totals.bytes_in.load(std::memory_order_relaxed)));
    out.sample("troupe_http_network_bytes_total", {{"direction", "out"}},
               static_cast<double>(totals.bytes_out.load(std::memory_order_relaxed)));
  });
}

/// Blocks until the root supervisor has terminated, or the timeout passed.
bool await_termination(caf::actor_system& sys, const caf::actor& root, milliseconds timeout) {
  caf::scoped_actor self{sys};
  self->monitor(root);
  bool done = false;
  self->receive([&](caf::down_msg&) { done = true; }, caf::after(timeout) >> [] {});
  return done;
}

/// Blocks until every supervisor of the tree has started its children (and so named them in the directory), or the
/// timeout passed. A supervisor answers children_atom only after its own start, which spawns its children; asking
/// each supervisor child in turn walks the whole tree. Serving before that would answer the first requests with
/// "restarting" errors on a slow machine.
bool await_tree_started(caf::actor_system& sys, const caf::actor& root, milliseconds timeout) {
  caf::scoped_actor self{sys};
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<caf::actor> pending{root};
  while (!pending.empty()) {
    auto supervisor = pending.back();
    pending.pop_back();
    auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      return false;
    bool answered = false;
    self->request(supervisor, caf::duration{left}, children_atom::value)
      .receive(
        [&](std::vector<child_info>& children) {
          answered = true;
          for (auto& child : children)
            if (child.kind == "supervisor" && child.handle)
              pending.push_back(child.handle);
        },
        [](caf::error&) {});
    if (!answered)
      return false;
  }
  return true;
}

/// Raises the soft RLIMIT_NOFILE towards `wanted` (at most the hard limit); warns when it stays below it.
void raise_open_file_limit(rlim_t wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0)
    return;
  auto target = limit.rlim_max == RLIM_INFINITY ? wanted : std::min(wanted, limit.rlim_max);
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < target) {
    limit.rlim_cur = target;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted)
    log::warn("the open file limit is below http.max_connections; connections beyond it are refused by the kernel",
              log::fields{}.add("limit", static_cast<int64_t>(limit.rlim_cur)).add("wanted", static_cast<int64_t>(wanted)));
}

} // namespace

int run_server(const config::settings& settings) {
  // Signals are handled by sigwait on this thread; every thread started from here on inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  log::level level = log::level::info;
  log::parse_level(settings.log.level, level);
  log::setup(level);

  // Every connection is a file descriptor: take the hard limit (the default soft limit, 1024, would refuse clients
  // long before http.max_connections).
  raise_open_file_limit(static_cast<rlim_t>(settings.http.max_connections) + 4096);

  // Large buffers (request bodies: upload chunks of up to uploads.max_chunk_bytes, buffered whole) are
  // mmap'd and unmapped when freed. glibc's default raises this threshold after the first such free, after which
  // freed chunk buffers stay in per-thread arenas: a 256 MiB upload in 4 MiB chunks then grew RSS by ~45 MiB instead
  // of ~20 MiB (tests/integration/uploads_test.cpp, MemoryIsBoundedByTheChunkSize).
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  // Every job runner is a new (detached) thread, and glibc gives new threads new arenas up to 8 x cores, each keeping
  // what it once held: RSS crept up by ~1 MiB per processed upload. Two arenas per core bound that.
  mallopt(M_ARENA_MAX, static_cast<int>(2 * config::cores()));

  // Bring the schema up to date before serving, when the database is reachable. When it is not, start anyway:
  // readiness reports it, and every connection actor migrates as soon as it connects.
  if (!settings.db.url.empty()) {
    auto migrated = migrate_database(settings.db.url);
    if (auto* error = std::get_if<std::string>(&migrated))
      log::warn("database not migrated at start-up; will retry on connect", log::fields{}.add("error", *error));
    else
      grant_configured_admins(settings);
  }

  if (auto problem = cluster_settings_problem(settings.cluster); !problem.empty()) {
    log::error("refusing to start", log::fields{}.add("error", problem));
    log::shutdown();
    return 1;
  }
  for (const auto* file : {&settings.cluster.tls_cert, &settings.cluster.tls_key, &settings.cluster.tls_ca})
    if (settings.cluster.enabled && !file->empty() && ::access(file->c_str(), R_OK) != 0) {
      // CAF reads them at every connection and ends the process when it cannot: refuse now, with the reason.
      log::error("refusing to start", log::fields{}.add("error", "cannot read the cluster TLS file " + *file));
      log::shutdown();
      return 1;
    }
  if (settings.cluster.enabled && settings.db.url.empty()) {
    log::error("refusing to start",
               log::fields{}.add("error", "cluster.enabled needs the database (TROUPE_DATABASE_URL): it holds the "
                                          "membership table"));
    log::shutdown();
    return 1;
  }

  // Debug mode gives every actor a probe (introspect/observed_actor.hpp); without it actors carry none.
  system_config cfg;
  if (settings.debug.enabled)
    cfg.probes = std::make_shared<probe_registry>();
  register_message_types(cfg);
  cfg.set("scheduler.max-threads", config::or_cores(settings.actors.threads));
  cfg.set("scheduler.max-throughput", static_cast<size_t>(settings.actors.max_throughput));
  // CAF's default (500 polls 50 us apart after every burst of work) keeps the threads of a node with periodic
  // timers spinning: 12-23% of a core on an idle node, measured (1% with 10). Under sparse load (work arriving every
  // few hundred us) even 10 polls cost a sleep and a wake-up each: 0 (the default) lets a thread that ran out of
  // work wait on its condition variable until an enqueue wakes it (gateway +25% capacity, 503s at half the CPU:
  // bench/RESULTS.md, 2026-12-06 evening).
  cfg.set("work-stealing.moderate-poll-attempts", static_cast<size_t>(settings.actors.idle_polls));
  configure_cluster_transport(cfg, settings.cluster);
  int exit_status = 0;
  {
    caf::actor_system sys{cfg};
    auto shared = make_shared_pieces(settings, cfg.probes);
    auto& names = shared.tree.names;
    auto& metrics = shared.tree.metrics;

    // Upload bytes live under uploads.dir: it must exist.
    if (auto problem = prepare_upload_dirs(shared.uploads_dir); !problem.empty()) {
      log::error("uploads.dir is not usable", log::fields{}.add("dir", shared.uploads_dir).add("error", problem));
      log::shutdown();
      return 1;
    }

    // 1. The supervision tree. If the root gives up, the process shuts down with status 1.
    auto root = spawn_supervisor(sys, root_tree(settings, shared));
    names->put("root", root);
    auto root_failed = std::make_shared<std::atomic<bool>>(false);
    root->attach_functor([root_failed](const caf::error& reason) {
      if (reason && reason != caf::exit_reason::user_shutdown) {
        root_failed->store(true);
        ::kill(::getpid(), SIGTERM);
      }
    });

    // 2. HTTP: routes, the bridge to the actors, the endpoint.
    http::set_max_body_depth(static_cast<size_t>(settings.http.max_json_depth));
    auto routes = std::make_shared<http::router>();
    http::caller caller{sys};
    http::actor_bridge bridge{names, config::or_cores(settings.http.threads),
                              milliseconds{settings.http.request_timeout_ms}, caller};
    http::auth_options auth_opts;
    http::jwt_settings jwt;
    jwt.secret = settings.auth.jwt_secret;
    jwt.issuer = settings.auth.issuer;
    jwt.audience = settings.auth.audience;
    jwt.access_ttl = std::chrono::duration_cast<std::chrono::seconds>(milliseconds{settings.auth.access_ttl_ms});
    auth_opts.jwt = std::make_shared<http::jwt_codec>(jwt);
    auth_opts.refresh_ttl =
      std::chrono::duration_cast<std::chrono::seconds>(milliseconds{settings.auth.refresh_ttl_ms});
    auth_opts.sessions = shared.sessions;
    auth_opts.cluster = shared.cluster;
    auth_opts.remote_timeout = milliseconds{settings.cluster.request_timeout_ms};
    if (settings.cluster.enabled)
      auth_opts.remote_latency = &shared.tree.metrics->histogram(
        "troupe_cluster_remote_request_seconds",
        "Time the owner node of a user took to vouch for a request made on another node, by outcome.", {"outcome"},
        latency_buckets_seconds());
    auth_opts.hashers = static_cast<size_t>(settings.auth.hashers);
    auth_opts.guests = settings.guest.enabled;
    auth_opts.dummy_password_hash = hash_password_blocking({}, random_url_token(16));
    auto traffic_opts = http::traffic_options_from(settings);
    traffic_opts.shedding = shared.load.shedding;
    traffic_opts.metrics = metrics;
    if (settings.cluster.enabled)
      traffic_opts.cluster = shared.cluster;
    http::authenticator* auth_for_events = nullptr;
    traffic_opts.on_rejected = [&auth_for_events](const http::request& req, const std::string& policy,
                                                  const std::string& subject) {
      if (auth_for_events)
        auth_for_events->record(req, "rate_limited", "info", "",
                                "{\"policy\":\"" + policy + "\",\"subject\":\"" + subject + "\"}");
    };
    http::traffic_control traffic{bridge, traffic_opts};
    http::authenticator authenticator{bridge, auth_opts, &traffic};
    auth_for_events = &authenticator;
    http::add_auth_routes(*routes, authenticator);
    // Debug routes: open to a client on this machine (its address, behind trusted proxies, is loopback), unless
    // debug.admin_only; an admin credential otherwise. Where Troupe listens does not matter: a reverse proxy on
    // the same host connects from loopback for clients anywhere.
    http::route_guard debug_guard;
    if (settings.debug.enabled)
      debug_guard = [&authenticator, admin_only = settings.debug.admin_only](const std::shared_ptr<http::responder>& r,
                                                                             const http::route_handler& handler) {
        if (!admin_only && authenticator.is_local_client(r->req())) {
          handler(r);
          return;
        }
        authenticator.require_admin(r, [r, handler](caf::event_based_actor*, const identity&) { handler(r); });
      };
    if (shared.load.debug_gate && debug_guard)
      debug_guard = [gate = shared.load.debug_gate, guard = debug_guard](const std::shared_ptr<http::responder>& r,
                                                                         const http::route_handler& handler) {
        guard(r, http::gated(gate, handler));
      };
    // Readiness details (errors, hosts, latencies) for a client on this machine or an admin; statuses for others.
    http::detail_access health_details = [&authenticator](const std::shared_ptr<http::responder>& r,
                                                          std::function<void(bool)> then) {
      auto local = authenticator.is_local_client(r->req());
      if (local || !r->req().header("Authorization")) {
        then(local);
        return;
      }
      authenticator.authenticate(r,
                                 [then](caf::event_based_actor*, const identity& who) { then(who.role == "admin"); });
    };
    http::add_ops_routes(*routes, bridge, http::ops_actor_names{}, debug_guard, health_details);
    if (debug_guard)
      http::add_debug_routes(*routes, bridge, http::debug_route_options{names, shared.probes, shared.cluster},
                             debug_guard);
    http::add_write_routes(*routes, authenticator, http::write_route_options{});
    // In a cluster the gateway's responses are placed by key over the nodes (one copy and one single flight per
    // call cluster-wide) and invalidations reach every node; profiles stay in this node's shards.
    auto cluster_cache = std::make_shared<cache_client>(names, shared.cache->shards());
    if (settings.cluster.enabled)
      cluster_cache->place(cluster_cache_placement(shared.cluster,
                                                   std::chrono::milliseconds{settings.cluster.request_timeout_ms},
                                                   std::chrono::milliseconds{settings.cache.near_ttl_ms}));
    http::cache_route_options cache_routes;
    cache_routes.cache = std::make_shared<cache_client>(names, shared.cache->shards());
    cache_routes.invalidations = cluster_cache;
    cache_routes.stats = shared.cache;
    http::add_cache_routes(*routes, authenticator, std::move(cache_routes));
    // The AI gateway: OpenAI-compatible routes over the upstreams, behind the generation in-flight gate.
    auto gw = http::gateway_options_from(settings);
    gw.clients = std::make_shared<client::upstream_clients>(names, shared.upstreams.doorbells);
    gw.cache = cluster_cache;
    gw.names = names;
    gw.metrics = metrics;
    gw.gauges = shared.upstreams.breakers;
    auto gateway = std::make_shared<http::gateway>(authenticator, std::move(gw));
    http::add_gateway_routes(*routes, gateway, shared.load.generate_gate);
    // Plan jobs call the model as their user, through the same route (and generation gate) as the user's own calls.
    shared.plans->set({http::gated(shared.load.generate_gate,
                                   [gateway](const std::shared_ptr<http::responder>& r) { gateway->chat(r); }),
                       auth_opts.jwt, {}, shared.spans});
    // The WebSocket channel: chats as messages, through the same route and gate as the HTTP ones.
    std::shared_ptr<http::ws_runtime> ws_runtime;
    if (settings.ws.enabled) {
      ws_runtime = std::make_shared<http::ws_runtime>();
      ws_runtime->settings = settings.ws;
      ws_runtime->max_message_bytes =
        static_cast<uint64_t>(std::min(settings.ws.max_message_bytes, settings.http.max_body_bytes));
      ws_runtime->max_json_depth = static_cast<size_t>(settings.http.max_json_depth);
      ws_runtime->chat = http::gated(shared.load.generate_gate,
                                     [gateway](const std::shared_ptr<http::responder>& r) { gateway->chat(r); });
      ws_runtime->auth = &authenticator;
      ws_runtime->spans = shared.spans;
      http::add_websocket_routes(*routes, authenticator, ws_runtime);
    }
    auto cors = std::make_shared<http::cors_policy>(settings.http.cors_origins);
    http::add_upload_routes(*routes, authenticator, http::upload_route_options_from(settings, cors));
    http::repository_route_options repository_routes;
    repository_routes.cors = cors;
    http::add_repository_routes(*routes, authenticator, repository_routes);
    http::add_cluster_routes(*routes, authenticator, shared.cluster);
    http::observability_route_options observability;
    observability.settings = std::make_shared<const config::settings>(settings);
    observability.cluster = shared.cluster;
    observability.breakers = shared.upstreams.breakers;
    http::add_observability_routes(*routes, authenticator, std::move(observability));
    http::add_usage_routes(*routes, authenticator);
    http::plan_route_options plan_routes;
    plan_routes.max_attempts = static_cast<int32_t>(settings.jobs.max_attempts);
    plan_routes.max_active = static_cast<int32_t>(settings.plans.max_active_per_user);
    plan_routes.cors = cors;
    http::add_plan_routes(*routes, authenticator, plan_routes);
    http::wishlist_route_options wishlist_routes;
    wishlist_routes.cors = cors;
    http::add_wishlist_routes(*routes, authenticator, wishlist_routes);
    auto http_state = std::make_shared<http::server_state>(settings, routes, metrics);
    http_state->set_span_queue(shared.spans);
    if (ws_runtime) // before the server starts: no session reads it yet
      ws_runtime->draining = [weak = std::weak_ptr<http::server_state>(http_state)] {
        auto state = weak.lock();
        return !state || state->draining();
      };
    add_http_collector(*metrics, http_state);
    http::server server{settings, http_state};
    if (!await_tree_started(sys, root, milliseconds{10000}))
      log::warn("the supervision tree was not fully started after 10 s; serving anyway (readiness tells)");
    uint16_t port = 0;
    try {
      port = server.start();
    } catch (const std::exception& e) {
      log::error(
        "cannot listen",
        log::fields{}.add("address", settings.http.address).add("port", settings.http.port).add("error", e.what()));
      caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
      await_termination(sys, root, milliseconds{5000});
      log::shutdown();
      return 1;
    }
    auto url = "http://" + settings.http.address + ":" + std::to_string(port);
    // Known once HTTP listens: the default node id names the port.
    auto node_id = resolve_node_id(settings.cluster, port);
    shared.cluster->set_node_id(node_id);
    http_state->set_node_id(node_id);
    if (settings.cluster.enabled)
      join_cluster(*shared.cluster, *names, url, port);
    log::info("listening", log::fields{}.add("url", url).add("port", static_cast<int64_t>(port)));

    // 3. Wait for SIGTERM/SIGINT (or the root's failure).
    int received = 0;
    sigwait(&signals, &received);
    // In a cluster, hand this node's users to their new owners first, while it still serves (and forwards).
    if (settings.cluster.enabled)
      if (auto membership = names->get("cluster")) {
        caf::scoped_actor self{sys};
        auto bound = milliseconds{3 * settings.cluster.heartbeat_ms + 5000};
        self->request(*membership, caf::duration{bound}, cluster_leave_atom::value)
          .receive([](bool) {},
                   [](caf::error& err) {
                     log::warn("cluster drain did not finish; leaving anyway", log::fields{}.add("error", to_string(err)));
                   });
      }
    // Refuse new requests before saying so: whoever reads "shutting down" in the log may rely on it.
    http_state->begin_drain();
    log::info("shutting down", log::fields{}
                                 .add("signal", received == SIGINT ? "SIGINT" : "SIGTERM")
                                 .add("in_flight", http_state->in_flight())
                                 .add("grace_ms", settings.shutdown.grace_ms));
    // A second signal means "now".
    std::thread{[signals] {
      int again = 0;
      sigwait(&signals, &again);
      std::_Exit(130);
    }}.detach();

    // 4. Drain: new requests get 503 (since begin_drain above), in-flight ones finish within the grace time.
    if (!http_state->wait_idle(milliseconds{settings.shutdown.grace_ms}))
      log::warn("grace time over; closing connections with requests in flight",
                log::fields{}.add("in_flight", http_state->in_flight()));
    server.stop();
    // From now on plan jobs start no call through the gateway (the routes serve nobody any more). Not at the start of
    // the drain: the job queue still claims then, and a plan job refused its call for the whole grace time would
    // use up its attempts.
    shared.plans->clear();

    // 5. Stop the tree in reverse start order.
    caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
    if (!await_termination(sys, root, milliseconds{settings.shutdown.grace_ms + 30000}))
      log::warn("supervision tree did not stop in time");
    exit_status = root_failed->load() ? 1 : 0;
    log::info("stopped", log::fields{}.add("exit_status", exit_status));
  }
  log::shutdown();
  return exit_status;
}

} // namespace troupe::app
