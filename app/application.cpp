#include "app/application.hpp"

#include "actors/auth_workers.hpp"
#include "actors/breaker.hpp"
#include "actors/cache.hpp"
#include "actors/directory.hpp"
#include "actors/jobs.hpp"
#include "actors/messages.hpp"
#include "actors/metrics.hpp"
#include "actors/ops.hpp"
#include "actors/processing.hpp"
#include "actors/rate_limit.hpp"
#include "actors/retention.hpp"
#include "actors/security_events.hpp"
#include "actors/sessions.hpp"
#include "actors/supervisor.hpp"
#include "actors/uploads.hpp"
#include "config/log.hpp"
#include "introspect/probe.hpp"
#include "http/auth.hpp"
#include "http/bridge.hpp"
#include "http/cache_routes.hpp"
#include "http/client/upstream_client.hpp"
#include "http/debug_routes.hpp"
#include "http/gateway.hpp"
#include "http/cors.hpp"
#include "http/hashing.hpp"
#include "http/json_body.hpp"
#include "http/load_monitor.hpp"
#include "http/ops_routes.hpp"
#include "http/repository_routes.hpp"
#include "http/server.hpp"
#include "http/traffic.hpp"
#include "http/upload_routes.hpp"
#include "http/write_routes.hpp"
#include "persistence/admin.hpp"
#include "persistence/database.hpp"
#include "persistence/migrations.hpp"
#include "persistence/query_router.hpp"
#include "persistence/writer.hpp"

#include <caf/all.hpp>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <malloc.h>
#include <pthread.h>
#include <sys/resource.h>
#include <thread>
#include <unistd.h>

namespace troupe::app {

namespace {

using std::chrono::milliseconds;

size_t cores() {
  return std::max(1u, std::thread::hardware_concurrency());
}

size_t or_cores(int64_t configured) {
  return configured > 0 ? static_cast<size_t>(configured) : cores();
}

std::string connection_name(size_t i) {
  return "db.connection." + std::to_string(i);
}

std::string search_connection_name(size_t i) {
  return "db.search." + std::to_string(i);
}

/// What the supervision tree shares with the HTTP side and with metrics.
struct shared_state {
  std::shared_ptr<directory> names = std::make_shared<directory>();
  std::shared_ptr<metrics_registry> metrics = std::make_shared<metrics_registry>();
  std::shared_ptr<writer_counters> writer = std::make_shared<writer_counters>();
  session_manager_options sessions;
  std::shared_ptr<cache_stats> cache; // set in run_server from settings.cache
  std::shared_ptr<http::shed_state> shedding = std::make_shared<http::shed_state>();
  std::shared_ptr<http::inflight_gate> debug_gate;    // null: no cap
  std::shared_ptr<http::inflight_gate> generate_gate; // null: no cap
  std::shared_ptr<probe_registry> probes;             // debug mode only
  std::shared_ptr<std::atomic<int64_t>> limiter_keys = std::make_shared<std::atomic<int64_t>>(0);
  std::vector<std::shared_ptr<breaker_gauges>> breakers;          // one per configured upstream, in order
  std::vector<std::shared_ptr<http::client::doorbell>> doorbells; // one per upstream client actor
  std::shared_ptr<upload_counters> uploads = std::make_shared<upload_counters>();
  std::shared_ptr<job_counters> jobs = std::make_shared<job_counters>();
  std::string uploads_dir;  // settings.uploads.dir made absolute
  std::shared_ptr<api_key_cache_counters> api_keys = std::make_shared<api_key_cache_counters>();
  std::shared_ptr<security_event_counters> security_events = std::make_shared<security_event_counters>();
  std::shared_ptr<retention_counters> retention; // set by root_tree
};

/// Rows of append-only tables older than their retention (config: *.retention_days) are deleted by the sweeper.
retention_options retention_of(const config::settings& s, std::shared_ptr<directory> names) {
  constexpr int64_t day_ms = 24 * 3600 * 1000;
  retention_options r;
  r.tables = {{"security_events", s.retention.security_days * day_ms},
              {"idempotency_keys", s.retention.idempotency_days * day_ms},
              {"funnel_events", s.retention.events_days * day_ms},
              {"feedback", s.retention.feedback_days * day_ms}};
  r.interval = milliseconds{s.retention.sweep_ms};
  r.first_delay = std::min(r.interval, milliseconds{10000});
  r.db_query = [names]() { return names->get("db.query"); };
  return r;
}

size_t limiter_shards(const config::settings& s) {
  return s.limits.shards > 0 ? static_cast<size_t>(s.limits.shards) : 2 * cores();
}

std::string limiter_name(size_t i) {
  return "limits.shard." + std::to_string(i);
}

std::string upload_io_name(size_t i) {
  return "uploads.io." + std::to_string(i);
}

std::string processor_name(size_t i) {
  return "jobs.processor." + std::to_string(i);
}

/// The supervision tree (docs/ARCHITECTURE.md draws it).
supervisor_config root_tree(const config::settings& s, shared_state& shared) {
  const auto& names = shared.names;
  const auto& metrics = shared.metrics;
  auto base = [&](std::string name, supervision_strategy strategy) {
    supervisor_config cfg;
    cfg.name = std::move(name);
    cfg.strategy = strategy;
    cfg.max_restarts = 5;
    cfg.restart_window = milliseconds{10000};
    cfg.names = names;
    cfg.metrics = metrics;
    return cfg;
  };

  // Connections first (the pool, then the search connections), the writer after them (rest_for_one: a restarted
  // connection restarts the writer too).
  auto persistence = base("persistence", supervision_strategy::rest_for_one);
  database_options db{s.db.url, milliseconds{s.db.connect_timeout_ms}};
  db.storage.free_bytes = s.quota.free_storage_bytes;
  db.storage.pro_bytes = s.quota.pro_storage_bytes;
  db.search_timeout = milliseconds{s.db.search_timeout_ms};
  auto pool_size = static_cast<size_t>(s.db.pool_size);
  for (size_t i = 0; i < pool_size; ++i)
    persistence.children.push_back({connection_name(i),
                                    [db](caf::actor_system& sys) { return spawn_database_connection(sys, db); },
                                    restart_type::permanent, milliseconds{5000}, child_kind::worker});
  search_lane searches;
  searches.connections = static_cast<size_t>(s.db.search_connections);
  searches.connection = [names](size_t i) { return names->get(search_connection_name(i)); };
  // A search ends within its statement_timeout; a connection re-established meanwhile adds its connect timeout.
  searches.answer_timeout = 2 * milliseconds{s.db.search_timeout_ms} + 2 * milliseconds{s.db.connect_timeout_ms};
  for (size_t i = 0; i < searches.connections; ++i)
    persistence.children.push_back({search_connection_name(i),
                                    [db](caf::actor_system& sys) { return spawn_database_connection(sys, db); },
                                    restart_type::permanent, milliseconds{5000}, child_kind::worker});
  writer_options writer;
  writer.batch_max_rows = static_cast<size_t>(s.db.batch_max_rows);
  writer.flush_interval = milliseconds{s.db.flush_ms};
  writer.max_queue_rows = static_cast<size_t>(s.db.max_queue);
  writer.max_wait = milliseconds{s.db.max_wait_ms};
  writer.connections = pool_size;
  writer.connection = [names](size_t i) { return names->get(connection_name(i)); };
  writer.counters = shared.writer;
  persistence.children.push_back({"db.query",
                                  [pool_size, names, searches](caf::actor_system& sys) {
                                    return spawn_query_router(
                                      sys, pool_size, [names](size_t i) { return names->get(connection_name(i)); },
                                      searches);
                                  },
                                  restart_type::permanent, milliseconds{5000}, child_kind::worker});
  persistence.children.push_back({"db.writer",
                                  [writer](caf::actor_system& sys) { return spawn_db_writer(sys, writer); },
                                  restart_type::permanent, milliseconds{5000}, child_kind::worker});

  auto ops = base("ops", supervision_strategy::one_for_one);
  auto shedding = shared.shedding;
  health_probe load_probe{"load", [shedding](caf::event_based_actor*, std::function<void(health_check)> done) {
                            done(http::shedding_check(*shedding));
                          }};
  std::vector<health_probe> probes{supervision_probe(names, "root", milliseconds{1000}),
                                   ping_probe("database", names, connection_name(0), milliseconds{3000}), load_probe,
                                   http::upstreams_probe(s.upstreams, names)};
  ops.children.push_back({"ops.health", [probes](caf::actor_system& sys) { return spawn_health_actor(sys, probes); },
                          restart_type::permanent, milliseconds{1000}, child_kind::worker});
  ops.children.push_back(
    {"ops.metrics",
     [metrics, names](caf::actor_system& sys) { return spawn_metrics_actor(sys, metrics, names, milliseconds{250}); },
     restart_type::permanent, milliseconds{1000}, child_kind::worker});
  mailbox_watch_options watch;
  watch.names = names;
  watch.threshold = static_cast<size_t>(s.debug.mailbox_warn);
  watch.warn_after = milliseconds{s.debug.mailbox_warn_ms};
  watch.probes = shared.probes;
  ops.children.push_back({"ops.mailboxes",
                          [watch](caf::actor_system& sys) { return spawn_mailbox_watch(sys, watch); },
                          restart_type::permanent, milliseconds{1000}, child_kind::worker});
  auto retention = retention_of(s, names);
  retention.counters = shared.retention = make_retention_counters(retention);
  ops.children.push_back({"ops.retention",
                          [retention](caf::actor_system& sys) { return spawn_retention_sweeper(sys, retention); },
                          restart_type::permanent, milliseconds{1000}, child_kind::worker});
  if (s.debug.enabled)
    ops.children.push_back({"debug.helper", [](caf::actor_system& sys) { return spawn_debug_helper(sys); },
                            restart_type::permanent, milliseconds{1000}, child_kind::worker});

  auto http = base("http", supervision_strategy::one_for_one);
  http.children = http::bridge_children(or_cores(s.http.threads));
  http::load_monitor_options load;
  load.max_rss_bytes = static_cast<uint64_t>(s.limits.max_rss_bytes);
  load.mailbox_threshold = static_cast<size_t>(s.limits.mailbox_threshold);
  load.names = names;
  load.write_actors = {"db.writer"};
  load.api_actors = {"sessions"};
  for (size_t i = 0; i < limiter_shards(s); ++i)
    load.api_actors.push_back(limiter_name(i));
  load.writer = shared.writer;
  load.writer_max_rows = static_cast<size_t>(s.db.max_queue) * 9 / 10;
  load.shedding = shared.shedding;
  for (const auto& gate : {shared.debug_gate, shared.generate_gate})
    if (gate)
      load.gates.push_back(gate);
  http.children.push_back({"ops.load", [load](caf::actor_system& sys) { return http::spawn_load_monitor(sys, load); },
                           restart_type::permanent, milliseconds{1000}, child_kind::worker});

  // Rate limiter shards: one owner per (subject, policy) key.
  auto limits = base("limits", supervision_strategy::one_for_one);
  limiter_options limiter;
  limiter.max_keys = static_cast<size_t>(s.limits.max_keys);
  limiter.keys = shared.limiter_keys;
  for (size_t i = 0; i < limiter_shards(s); ++i)
    limits.children.push_back({limiter_name(i),
                               [limiter](caf::actor_system& sys) { return spawn_limiter_shard(sys, limiter); },
                               restart_type::permanent, milliseconds{1000}, child_kind::worker});

  // Authentication: password hashers (detached: argon2id is CPU-heavy), login throttle, API key cache, and the
  // aggregator of security events.
  auto auth = base("auth", supervision_strategy::one_for_one);
  for (int64_t i = 0; i < s.auth.hashers; ++i)
    auth.children.push_back({"auth.hasher." + std::to_string(i),
                             [](caf::actor_system& sys) { return spawn_password_hasher(sys, {}); },
                             restart_type::permanent, milliseconds{5000}, child_kind::worker});
  login_throttle_options throttle;
  throttle.max_failures = static_cast<size_t>(s.auth.login_max_failures);
  throttle.max_address_failures = static_cast<size_t>(s.auth.login_max_address_failures);
  auth.children.push_back({"auth.throttle",
                           [throttle](caf::actor_system& sys) { return spawn_login_throttle(sys, throttle); },
                           restart_type::permanent, milliseconds{1000}, child_kind::worker});
  auto db_query = [names]() { return names->get("db.query"); };
  api_key_cache_options key_cache;
  key_cache.db_query = db_query;
  key_cache.counters = shared.api_keys;
  auth.children.push_back({"auth.keys",
                           [key_cache](caf::actor_system& sys) { return spawn_api_key_cache(sys, key_cache); },
                           restart_type::permanent, milliseconds{1000}, child_kind::worker});
  security_event_options security_events;
  security_events.writer = [names]() { return names->get("db.writer"); };
  security_events.counters = shared.security_events;
  auth.children.push_back(
    {"auth.events", [security_events](caf::actor_system& sys) { return spawn_security_events(sys, security_events); },
     restart_type::permanent, milliseconds{1000}, child_kind::worker});

  // Sessions: the manager routes user ids to session actors (loaded on first use, passivated when idle).
  shared.sessions.session.idle = milliseconds{s.session.idle_ms};
  shared.sessions.session.db_query = db_query;
  shared.sessions.session.writer = [names]() { return names->get("db.writer"); };
  shared.sessions.session.reset_utc_hour = static_cast<int>(s.quota.reset_utc_hour);
  auto free_quota = s.quota.free_per_day;
  auto pro_quota = s.quota.pro_per_day;
  shared.sessions.session.daily_quota = [free_quota, pro_quota](const std::string& plan) {
    return plan == "pro" ? pro_quota : free_quota;
  };
  shared.sessions.metrics = metrics;
  auto session_options = shared.sessions;

  // Upstreams: a circuit breaker per upstream, and the HTTP client actors (libcurl multi, detached) that call them.
  auto upstreams = base("upstreams", supervision_strategy::one_for_one);
  for (const auto& u : s.upstreams) {
    breaker_options b;
    b.upstream = u.name;
    b.failures = s.breaker.failures;
    b.open_for = milliseconds{s.breaker.open_ms};
    b.half_open_probes = s.breaker.half_open_probes;
    b.gauges = std::make_shared<breaker_gauges>();
    shared.breakers.push_back(b.gauges);
    upstreams.children.push_back({breaker_name(u.name), [b](caf::actor_system& sys) { return spawn_breaker(sys, b); },
                                  restart_type::permanent, milliseconds{1000}, child_kind::worker});
  }
  for (int64_t i = 0; i < s.upstream.clients; ++i) {
    http::client::upstream_client_options client;
    shared.doorbells.push_back(client.bell);
    upstreams.children.push_back(
      {http::client::upstream_clients::client_name(static_cast<size_t>(i)),
       [client](caf::actor_system& sys) { return http::client::spawn_upstream_client(sys, client); },
       restart_type::permanent, milliseconds{5000}, child_kind::worker});
  }
  // Uploads and jobs: upload I/O actors (detached), the upload router with its sessions, the expiry sweeper.
  auto uploads = base("uploads", supervision_strategy::one_for_one);
  upload_options upload;
  upload.dir = shared.uploads_dir;
  upload.expire_ms = s.uploads.expire_ms;
  upload.session_idle = milliseconds{s.uploads.session_idle_ms};
  upload.sweep_interval = milliseconds{s.uploads.sweep_ms};
  upload.job_max_attempts = static_cast<int32_t>(s.jobs.max_attempts);
  upload.io_actors = or_cores(s.http.threads);
  upload.io = [names](size_t i) { return names->get(upload_io_name(i)); };
  upload.db_query = db_query;
  upload.router = [names]() { return names->get("uploads.router"); };
  upload.job_queue = [names]() { return names->get("jobs.queue"); };
  upload.counters = shared.uploads;
  for (size_t i = 0; i < upload.io_actors; ++i)
    uploads.children.push_back({upload_io_name(i), [](caf::actor_system& sys) { return spawn_upload_io(sys); },
                                restart_type::permanent, milliseconds{5000}, child_kind::worker});
  uploads.children.push_back({"uploads.router",
                              [upload](caf::actor_system& sys) { return spawn_upload_router(sys, upload); },
                              restart_type::permanent, milliseconds{5000}, child_kind::worker});
  uploads.children.push_back({"uploads.sweeper",
                              [upload](caf::actor_system& sys) { return spawn_upload_sweeper(sys, upload); },
                              restart_type::permanent, milliseconds{1000}, child_kind::worker});
  // The file-chunk processor pool (detached: CPU-bound), then the job queue that runs jobs on it.
  processing_options processing;
  processing.dir = shared.uploads_dir;
  processing.limits.max_entries = static_cast<uint64_t>(s.uploads.archive_max_entries);
  processing.limits.max_bytes = static_cast<uint64_t>(s.uploads.archive_max_bytes);
  processing.limits.max_ratio = s.uploads.archive_max_ratio;
  processing.limits.max_depth = static_cast<size_t>(s.uploads.archive_max_depth);
  processing.processors = or_cores(s.jobs.processors);
  processing.processor = [names](size_t i) { return names->get(processor_name(i)); };
  processing.db_query = db_query;
  for (size_t i = 0; i < processing.processors; ++i)
    uploads.children.push_back({processor_name(i), [](caf::actor_system& sys) { return spawn_chunk_processor(sys); },
                                restart_type::permanent, milliseconds{5000}, child_kind::worker});
  job_queue_options queue;
  queue.owner = make_node_id();
  queue.lease = milliseconds{s.jobs.lease_ms};
  queue.poll = milliseconds{s.jobs.poll_ms};
  queue.concurrency = static_cast<size_t>(s.jobs.concurrency);
  queue.backoff_base_ms = s.jobs.backoff_base_ms;
  queue.handlers["upload"] = upload_job_handler(processing);
  queue.db_query = db_query;
  queue.counters = shared.jobs;
  uploads.children.push_back({"jobs.queue", [queue](caf::actor_system& sys) { return spawn_job_queue(sys, queue); },
                              restart_type::permanent, milliseconds{5000}, child_kind::worker});

  auto root = base("root", supervision_strategy::one_for_one);
  root.children.push_back(supervisor_child(std::move(persistence)));
  root.children.push_back(supervisor_child(std::move(auth)));
  root.children.push_back(supervisor_child(std::move(limits)));
  root.children.push_back({"sessions",
                           [session_options](caf::actor_system& sys) {
                             return spawn_session_manager(sys, session_options);
                           },
                           // It supervises the session actors (answers children_atom like a supervisor).
                           restart_type::permanent, milliseconds{5000}, child_kind::supervisor});
  root.children.push_back(supervisor_child(cache_supervisor(s.cache, shared.cache, names, metrics)));
  root.children.push_back(supervisor_child(std::move(upstreams)));
  root.children.push_back(supervisor_child(std::move(uploads)));
  root.children.push_back(supervisor_child(std::move(ops)));
  root.children.push_back(supervisor_child(std::move(http)));
  return root;
}

void add_writer_collector(metrics_registry& metrics, std::shared_ptr<writer_counters> counters) {
  metrics.add_collector([counters](prometheus_writer& out) {
    auto counter = [&](const char* name, const char* help, const std::atomic<uint64_t>& value) {
      out.family(name, "counter", help);
      out.sample(name, {}, static_cast<double>(value.load()));
    };
    counter("troupe_db_batches_total", "Transactions that committed a batch of writes.", counters->batches);
    counter("troupe_db_write_requests_total", "Write requests acknowledged after COMMIT (including replays).",
            counters->requests);
    counter("troupe_db_rows_total", "Rows committed by the DB writer.", counters->rows);
    counter("troupe_db_write_failures_total", "Write requests that failed alone (rejected data, key conflict).",
            counters->failed);
    counter("troupe_db_write_rejections_total", "Write requests refused: queue full or database unavailable.",
            counters->rejected);
    counter("troupe_db_batch_retries_total", "Batches sent again after a lost connection.", counters->retried_batches);
    out.family("troupe_db_queue_rows", "gauge", "Rows waiting for, or in, a commit.");
    out.sample("troupe_db_queue_rows", {}, static_cast<double>(counters->queued_rows.load()));
  });
}

void add_upload_collector(metrics_registry& metrics, std::shared_ptr<upload_counters> counters) {
  metrics.add_collector([counters](prometheus_writer& out) {
    auto counter = [&](const char* name, const char* help, const std::atomic<uint64_t>& value) {
      out.family(name, "counter", help);
      out.sample(name, {}, static_cast<double>(value.load()));
    };
    counter("troupe_uploads_created_total", "tus uploads created.", counters->created);
    counter("troupe_uploads_completed_total", "tus uploads whose last byte arrived (their job is enqueued).",
            counters->completed);
    counter("troupe_uploads_expired_total", "Unfinished uploads removed after uploads.expire_ms.", counters->expired);
    counter("troupe_uploads_terminated_total", "Uploads deleted by their owner (tus termination).",
            counters->terminated);
    counter("troupe_upload_bytes_total", "Upload bytes stored: fsynced and committed.", counters->bytes);
    out.family("troupe_upload_sessions", "gauge", "Upload session actors alive.");
    out.sample("troupe_upload_sessions", {}, static_cast<double>(counters->sessions.load()));
  });
}

void add_job_collector(metrics_registry& metrics, std::shared_ptr<job_counters> counters) {
  metrics.add_collector([counters](prometheus_writer& out) {
    out.family("troupe_job_attempts_total", "counter", "Job attempts by how they ended on this node.");
    out.sample("troupe_job_attempts_total", {{"outcome", "started"}}, static_cast<double>(counters->started.load()));
    out.sample("troupe_job_attempts_total", {{"outcome", "done"}}, static_cast<double>(counters->done.load()));
    out.sample("troupe_job_attempts_total", {{"outcome", "retrying"}}, static_cast<double>(counters->retried.load()));
    out.sample("troupe_job_attempts_total", {{"outcome", "failed"}}, static_cast<double>(counters->failed.load()));
    out.sample("troupe_job_attempts_total", {{"outcome", "lease_lost"}}, static_cast<double>(counters->lost.load()));
    out.family("troupe_jobs_running", "gauge", "Jobs running on this node.");
    out.sample("troupe_jobs_running", {}, static_cast<double>(counters->running.load()));
  });
}

/// API key look-ups by where they were answered, security events, and rows deleted by the retention sweeper.
void add_auth_collector(metrics_registry& metrics, const shared_state& shared) {
  metrics.add_collector([keys = shared.api_keys, events = shared.security_events,
                         retention = shared.retention](prometheus_writer& out) {
    out.family("troupe_api_key_lookups_total", "counter",
               "API key look-ups by where they were answered: memory (cache, miss_cache), the database, or not at all "
               "(not_cached: the client's address had used up its failed authentications).");
    out.sample("troupe_api_key_lookups_total", {{"source", "cache"}}, static_cast<double>(keys->hits.load()));
    out.sample("troupe_api_key_lookups_total", {{"source", "miss_cache"}}, static_cast<double>(keys->miss_hits.load()));
    out.sample("troupe_api_key_lookups_total", {{"source", "database"}}, static_cast<double>(keys->queries.load()));
    out.sample("troupe_api_key_lookups_total", {{"source", "not_cached"}},
               static_cast<double>(keys->not_cached.load()));
    out.family("troupe_security_events_total", "counter",
               "Security events by outcome: recorded (counted), written (committed within their minute's row), "
               "dropped (the writer refused them).");
    out.sample("troupe_security_events_total", {{"outcome", "recorded"}}, static_cast<double>(events->recorded.load()));
    out.sample("troupe_security_events_total", {{"outcome", "written"}}, static_cast<double>(events->written.load()));
    out.sample("troupe_security_events_total", {{"outcome", "dropped"}}, static_cast<double>(events->dropped.load()));
    if (!retention)
      return;
    out.family(
      "troupe_retention_deleted_rows_total", "counter",
      "Rows deleted by the retention sweeper, by table (auth_tokens: expired revocations and refresh tokens).");
    for (const auto& [table, rows] : retention->deleted)
      out.sample("troupe_retention_deleted_rows_total", {{"table", table}}, static_cast<double>(rows.load()));
  });
}

void add_session_collector(metrics_registry& metrics, std::shared_ptr<std::atomic<int64_t>> active) {
  metrics.add_collector([active](prometheus_writer& out) {
    out.family("troupe_sessions_active", "gauge", "Session actors alive (one per recently active user).");
    out.sample("troupe_sessions_active", {}, static_cast<double>(active->load()));
  });
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

void add_process_collectors(metrics_registry& metrics, const std::shared_ptr<http::server_state>& http_state) {
  metrics.add_collector([](prometheus_writer& out) {
    auto stats = read_process_stats();
    out.family("troupe_process_resident_memory_bytes", "gauge", "Resident set size of the process.");
    out.sample("troupe_process_resident_memory_bytes", {}, static_cast<double>(stats.resident_bytes));
    out.family("troupe_process_open_fds", "gauge", "Open file descriptors of the process.");
    out.sample("troupe_process_open_fds", {}, static_cast<double>(stats.open_fds));
  });
  std::weak_ptr<http::server_state> weak = http_state;
  metrics.add_collector([weak](prometheus_writer& out) {
    auto state = weak.lock();
    if (!state)
      return;
    out.family("troupe_http_requests_in_flight", "gauge", "HTTP requests being handled right now.");
    out.sample("troupe_http_requests_in_flight", {}, static_cast<double>(state->in_flight()));
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
  mallopt(M_ARENA_MAX, static_cast<int>(2 * cores()));

  // Bring the schema up to date before serving, when the database is reachable. When it is not, start anyway:
  // readiness reports it, and every connection actor migrates as soon as it connects.
  if (!settings.db.url.empty()) {
    auto migrated = migrate_database(settings.db.url);
    if (auto* error = std::get_if<std::string>(&migrated))
      log::warn("database not migrated at start-up; will retry on connect", log::fields{}.add("error", *error));
    else
      grant_configured_admins(settings);
  }

  // Debug mode gives every actor a probe (introspect/observed_actor.hpp); without it actors carry none.
  system_config cfg;
  if (settings.debug.enabled)
    cfg.probes = std::make_shared<probe_registry>();
  register_message_types(cfg);
  cfg.set("scheduler.max-threads", or_cores(settings.actors.threads));
  cfg.set("scheduler.max-throughput", static_cast<size_t>(settings.actors.max_throughput));
  // CAF's default (500 polls 50 us apart after every burst of work) keeps the threads of a node with periodic
  // timers spinning: ~23% of a core on an idle node, measured. After idle_polls they sleep until work comes.
  cfg.set("work-stealing.moderate-poll-attempts", static_cast<size_t>(settings.actors.idle_polls));
  int exit_status = 0;
  {
    caf::actor_system sys{cfg};
    shared_state shared;
    shared.probes = cfg.probes;
    if (settings.limits.debug_max_inflight > 0)
      shared.debug_gate = std::make_shared<http::inflight_gate>(
        "debug", static_cast<size_t>(settings.limits.debug_max_inflight), static_cast<size_t>(settings.limits.queue),
        milliseconds{settings.limits.queue_wait_ms});
    if (settings.limits.generate_max_inflight > 0)
      shared.generate_gate = std::make_shared<http::inflight_gate>(
        "generate", static_cast<size_t>(settings.limits.generate_max_inflight),
        static_cast<size_t>(settings.limits.queue), milliseconds{settings.limits.queue_wait_ms});
    auto& names = shared.names;
    auto& metrics = shared.metrics;

    // Upload bytes live under uploads.dir: it must exist (and be absolute: the working directory may change).
    shared.uploads_dir = std::filesystem::absolute(settings.uploads.dir).lexically_normal().string();
    while (shared.uploads_dir.size() > 1 && shared.uploads_dir.back() == '/')
      shared.uploads_dir.pop_back();
    if (auto problem = prepare_upload_dirs(shared.uploads_dir); !problem.empty()) {
      log::error("uploads.dir is not usable", log::fields{}.add("dir", shared.uploads_dir).add("error", problem));
      log::shutdown();
      return 1;
    }

    // 1. The supervision tree. If the root gives up, the process shuts down with status 1.
    add_upload_collector(*metrics, shared.uploads);
    add_job_collector(*metrics, shared.jobs);
    add_writer_collector(*metrics, shared.writer);
    add_session_collector(*metrics, shared.sessions.active);
    shared.cache = std::make_shared<cache_stats>(cache_shard_count(settings.cache), settings.cache.max_bytes);
    add_cache_collector(*metrics, shared.cache);
    metrics->add_collector([keys = shared.limiter_keys](prometheus_writer& out) {
      out.family("troupe_rate_limit_buckets", "gauge", "Token buckets held by the rate limiter shards.");
      out.sample("troupe_rate_limit_buckets", {}, static_cast<double>(keys->load()));
    });
    auto root = spawn_supervisor(sys, root_tree(settings, shared));
    add_auth_collector(*metrics, shared);
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
    http::actor_bridge bridge{names, or_cores(settings.http.threads), milliseconds{settings.http.request_timeout_ms},
                              caller};
    http::auth_options auth_opts;
    http::jwt_settings jwt;
    jwt.secret = settings.auth.jwt_secret;
    jwt.issuer = settings.auth.issuer;
    jwt.audience = settings.auth.audience;
    jwt.access_ttl = std::chrono::duration_cast<std::chrono::seconds>(milliseconds{settings.auth.access_ttl_ms});
    auth_opts.jwt = std::make_shared<http::jwt_codec>(jwt);
    auth_opts.refresh_ttl =
      std::chrono::duration_cast<std::chrono::seconds>(milliseconds{settings.auth.refresh_ttl_ms});
    auth_opts.sessions = shared.sessions.sessions;
    auth_opts.hashers = static_cast<size_t>(settings.auth.hashers);
    auth_opts.dummy_password_hash = hash_password_blocking({}, http::random_url_token(16));
    http::traffic_options traffic_opts;
    traffic_opts.enabled = settings.limits.enabled;
    const auto& lim = settings.limits;
    traffic_opts.policies = {{"default", {"default", lim.default_per_minute, lim.default_burst}},
                             {"generate", {"generate", lim.generate_per_minute, lim.generate_burst}},
                             {"auth", {"auth", lim.auth_per_minute, lim.auth_burst}},
                             {"anonymous", {"anonymous", lim.anonymous_per_minute, lim.anonymous_burst}},
                             {"upload", {"upload", lim.upload_per_minute, lim.upload_burst}}};
    traffic_opts.shards = limiter_shards(settings);
    traffic_opts.trusted_proxies = http::split_list(settings.http.trusted_proxies);
    traffic_opts.max_failure_buckets = static_cast<size_t>(settings.limits.max_keys);
    traffic_opts.shedding = shared.shedding;
    traffic_opts.metrics = metrics;
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
    if (shared.debug_gate && debug_guard)
      debug_guard = [gate = shared.debug_gate, guard = debug_guard](const std::shared_ptr<http::responder>& r,
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
      http::add_debug_routes(*routes, bridge, http::debug_route_options{names, shared.probes}, debug_guard);
    http::add_write_routes(*routes, authenticator, http::write_route_options{});
    http::add_cache_routes(*routes, authenticator,
                           {std::make_shared<cache_client>(names, shared.cache->shards()), shared.cache});
    // The AI gateway: OpenAI-compatible routes over the upstreams, behind the generation in-flight gate.
    http::gateway_options gw;
    gw.upstreams = settings.upstreams;
    gw.clients = std::make_shared<http::client::upstream_clients>(names, shared.doorbells);
    gw.cache = std::make_shared<cache_client>(names, shared.cache->shards());
    gw.names = names;
    gw.max_attempts = settings.retry.max_attempts;
    gw.retry_base = milliseconds{settings.retry.base_ms};
    gw.retry_cap = milliseconds{settings.retry.max_backoff_ms};
    gw.max_response_bytes = static_cast<size_t>(settings.upstream.max_response_bytes);
    gw.max_messages = static_cast<size_t>(settings.gateway.max_messages);
    gw.cache_ttl = milliseconds{settings.gateway.cache_ttl_ms};
    gw.max_generation = milliseconds{settings.gateway.max_generation_ms};
    gw.stream_idle = milliseconds{settings.gateway.stream_idle_ms};
    gw.stream_heartbeat = milliseconds{settings.gateway.stream_heartbeat_ms};
    gw.quota_reset_utc_hour = static_cast<int>(settings.quota.reset_utc_hour);
    gw.metrics = metrics;
    gw.gauges = shared.breakers;
    auto gateway = std::make_shared<http::gateway>(authenticator, std::move(gw));
    http::add_gateway_routes(*routes, gateway, shared.generate_gate);
    auto cors = std::make_shared<http::cors_policy>(settings.http.cors_origins);
    http::upload_route_options upload_routes;
    upload_routes.max_size_bytes = settings.uploads.max_size_bytes;
    upload_routes.max_chunk_bytes = static_cast<size_t>(settings.uploads.max_chunk_bytes);
    upload_routes.cors = cors;
    http::add_upload_routes(*routes, authenticator, upload_routes);
    http::repository_route_options repository_routes;
    repository_routes.cors = cors;
    http::add_repository_routes(*routes, authenticator, repository_routes);
    auto http_state = std::make_shared<http::server_state>(settings, routes, metrics);
    add_process_collectors(*metrics, http_state);
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
    log::info("listening", log::fields{}.add("url", url).add("port", static_cast<int64_t>(port)));

    // 3. Wait for SIGTERM/SIGINT (or the root's failure).
    int received = 0;
    sigwait(&signals, &received);
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
