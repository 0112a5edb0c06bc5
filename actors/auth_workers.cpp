#include "actors/auth_workers.hpp"
#include "introspect/observed_actor.hpp"

#include "actors/persistence_supervisor.hpp"
#include "actors/security_events.hpp"

#include "config/service_error.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <sodium.h>

#include <deque>
#include <list>
#include <unordered_map>

namespace troupe {

namespace {

using clock_type = std::chrono::steady_clock;

// --- password hasher ---

caf::behavior hasher_impl(observed_actor* self, password_hasher_options opts) {
  if (sodium_init() < 0)
    throw std::runtime_error("libsodium failed to initialise");
  auto ops = opts.ops_limit ? opts.ops_limit : crypto_pwhash_OPSLIMIT_INTERACTIVE;
  auto mem = opts.mem_limit ? opts.mem_limit : crypto_pwhash_MEMLIMIT_INTERACTIVE;
  return {
    [ops, mem](hash_password_atom, const std::string& password) -> caf::result<std::string> {
      char hash[crypto_pwhash_STRBYTES];
      if (crypto_pwhash_str(hash, password.data(), password.size(), ops, mem) != 0)
        return make_error(service_error::overloaded, "Not enough memory to hash the password; retry shortly.");
      return std::string{hash};
    },
    [](verify_password_atom, const std::string& hash, const std::string& password) {
      if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES)
        return false;
      return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

// --- login throttle ---

struct throttle_state {
  login_throttle_options opts;
  // "pair:<ip> <email>" (an address never contains a space) and "ip:<ip>": the last failures, oldest first.
  std::unordered_map<std::string, std::deque<clock_type::time_point>> failures;
  static inline const char* name = "login_throttle";
};

std::string pair_key(const std::string& email, const std::string& ip) {
  return "pair:" + ip + " " + email;
}

std::string address_key(const std::string& ip) {
  return "ip:" + ip;
}

using throttle_actor = observed_stateful_actor<throttle_state>;

clock_type::time_point now(throttle_actor* self) {
  return self->state.opts.clock ? self->state.opts.clock() : clock_type::now();
}

/// Drops failures older than the window; returns how long until `key` may try again (0 = now) when at most
/// `max_failures` may lie in the window.
int64_t wait_seconds(throttle_actor* self, const std::string& key, size_t max_failures) {
  auto& st = self->state;
  auto i = st.failures.find(key);
  if (i == st.failures.end())
    return 0;
  auto t = now(self);
  auto& times = i->second;
  while (!times.empty() && times.front() + st.opts.window <= t)
    times.pop_front();
  if (times.empty()) {
    st.failures.erase(i);
    return 0;
  }
  if (times.size() < max_failures)
    return 0;
  // The oldest failure that still counts against the limit: once it leaves the window, one attempt is free again.
  auto oldest = times[times.size() - max_failures];
  auto wait = std::chrono::duration_cast<std::chrono::seconds>(oldest + st.opts.window - t).count();
  return std::max<int64_t>(1, wait + 1);  // whole seconds, never earlier than allowed
}

void sweep(throttle_actor* self) {
  auto& st = self->state;
  auto t = now(self);
  for (auto i = st.failures.begin(); i != st.failures.end();) {
    if (i->second.empty() || i->second.back() + st.opts.window <= t)
      i = st.failures.erase(i);
    else
      ++i;
  }
}

caf::behavior throttle_impl(throttle_actor* self, login_throttle_options opts) {
  self->state.opts = std::move(opts);
  return {
    [self](throttle_check_atom, const std::string& email, const std::string& ip) {
      auto& opts = self->state.opts;
      return std::max(wait_seconds(self, pair_key(email, ip), opts.max_failures),
                      wait_seconds(self, address_key(ip), opts.max_address_failures));
    },
    [self](throttle_fail_atom, const std::string& email, const std::string& ip) {
      auto& st = self->state;
      auto t = now(self);
      for (auto [key, keep] : {std::pair{pair_key(email, ip), st.opts.max_failures},
                               std::pair{address_key(ip), st.opts.max_address_failures}}) {
        if (st.failures.size() >= st.opts.max_entries && st.failures.count(key) == 0) {
          sweep(self);
          if (st.failures.size() >= st.opts.max_entries)
            st.failures.erase(st.failures.begin()); // still full of live entries: drop an arbitrary one
        }
        auto& times = st.failures[key];
        times.push_back(t);
        while (times.size() > keep)
          times.pop_front(); // only the last `keep` matter
      }
    },
    [self](throttle_reset_atom, const std::string& email, const std::string& ip) {
      self->state.failures.erase(pair_key(email, ip));
    },
    [self](throttle_list_atom, int32_t limit) {
      auto& st = self->state;
      std::vector<std::string> keys;
      keys.reserve(st.failures.size());
      for (const auto& [key, times] : st.failures)
        keys.push_back(key);
      std::vector<throttled_entry> out;
      for (const auto& key : keys) {
        bool address = key.rfind("ip:", 0) == 0;
        auto wait = wait_seconds(self, key, address ? st.opts.max_address_failures : st.opts.max_failures);
        if (wait <= 0)
          continue;
        throttled_entry e;
        e.kind = address ? "address" : "account";
        if (address) {
          e.address = key.substr(3);
        } else { // "pair:<ip> <email>"
          auto space = key.find(' ', 5);
          e.address = key.substr(5, space == std::string::npos ? std::string::npos : space - 5);
          if (space != std::string::npos)
            e.email = key.substr(space + 1);
        }
        auto i = st.failures.find(key);
        e.failures = i == st.failures.end() ? 0 : static_cast<int64_t>(i->second.size());
        e.wait_seconds = wait;
        out.push_back(std::move(e));
      }
      std::sort(out.begin(), out.end(),
                [](const throttled_entry& a, const throttled_entry& b) { return a.wait_seconds > b.wait_seconds; });
      if (out.size() > static_cast<size_t>(std::max<int32_t>(0, limit)))
        out.resize(static_cast<size_t>(std::max<int32_t>(0, limit)));
      return out;
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

// --- API key cache ---

struct cached_key {
  api_key_record record;
  clock_type::time_point loaded;
};

struct key_cache_state {
  api_key_cache_options opts;
  std::unordered_map<std::string, cached_key> by_hash;
  std::unordered_map<std::string, std::string> hash_of_id;
  // Unknown or revoked hashes until they expire, and their order of arrival (to drop the oldest when full).
  std::unordered_map<std::string, clock_type::time_point> misses;
  std::deque<std::pair<std::string, clock_type::time_point>> miss_order;
  // Look-ups under way, by hash: the callers that wait for it.
  std::unordered_map<std::string, std::vector<caf::typed_response_promise<api_key_record>>> pending;
  static inline const char* name = "api_key_cache";
};

using key_cache_actor = observed_stateful_actor<key_cache_state>;

clock_type::time_point now(key_cache_actor* self) {
  return self->state.opts.clock ? self->state.opts.clock() : clock_type::now();
}

void remember_miss(key_cache_actor* self, const std::string& key_hash) {
  auto& st = self->state;
  auto t = now(self);
  // Expired misses leave from the front; past the bound, the oldest leave even if live.
  while (!st.miss_order.empty()
         && (st.miss_order.front().second + st.opts.miss_ttl <= t || st.misses.size() >= st.opts.max_misses)) {
    auto& [hash, since] = st.miss_order.front();
    if (auto i = st.misses.find(hash); i != st.misses.end() && i->second == since)
      st.misses.erase(i);
    st.miss_order.pop_front();
  }
  if (st.opts.max_misses == 0)
    return;
  st.misses[key_hash] = t;
  st.miss_order.emplace_back(key_hash, t);
}

caf::behavior key_cache_impl(key_cache_actor* self, api_key_cache_options opts) {
  self->state.opts = std::move(opts);
  if (!self->state.opts.counters)
    self->state.opts.counters = std::make_shared<api_key_cache_counters>();
  return {
    [self](key_lookup_atom, const std::string& key_hash, bool use_database) -> caf::result<api_key_record> {
      auto& st = self->state;
      auto t = now(self);
      if (auto i = st.by_hash.find(key_hash); i != st.by_hash.end()) {
        if (t - i->second.loaded < st.opts.ttl) {
          st.opts.counters->hits++;
          return i->second.record;
        }
        st.hash_of_id.erase(i->second.record.id);
        st.by_hash.erase(i);
      }
      if (auto i = st.misses.find(key_hash); i != st.misses.end()) {
        if (t - i->second < st.opts.miss_ttl) {
          st.opts.counters->miss_hits++;
          return make_error(service_error::unauthenticated, "The API key is invalid or revoked.");
        }
        st.misses.erase(i);
      }
      if (!use_database) {
        st.opts.counters->not_cached++;
        return make_error(service_error::not_found, "The API key is not in memory.");
      }
      auto promise = self->make_response_promise<api_key_record>();
      auto& waiting = st.pending[key_hash];
      waiting.push_back(promise);
      if (waiting.size() > 1)
        return promise; // a look-up of this hash is under way: it answers everyone
      auto answer = [self, key_hash](caf::expected<api_key_record> outcome) {
        auto& st = self->state;
        auto waiting = std::move(st.pending[key_hash]);
        st.pending.erase(key_hash);
        for (auto& p : waiting)
          if (outcome)
            p.deliver(*outcome);
          else
            p.deliver(outcome.error());
      };
      auto db = st.opts.db_query ? st.opts.db_query() : std::nullopt;
      if (!db) {
        answer(make_error(service_error::unavailable, "The database is restarting; retry shortly."));
        return promise;
      }
      st.opts.counters->queries++;
      self->request(*db, caf::duration{std::chrono::seconds{10}}, api_key_lookup_atom::value, key_hash)
        .then(
          [self, key_hash, answer](api_key_record& record) {
            auto& st = self->state;
            if (st.by_hash.size() >= st.opts.max_entries) {
              st.by_hash.clear();
              st.hash_of_id.clear();
            }
            st.hash_of_id[record.id] = key_hash;
            st.by_hash[key_hash] = cached_key{record, now(self)};
            answer(std::move(record));
          },
          [self, key_hash, answer](caf::error& err) {
            if (service_code(err) == service_error::unauthenticated)
              remember_miss(self, key_hash);
            answer(std::move(err));
          });
      return promise;
    },
    [self](key_evict_atom, const std::string& key_id) {
      auto& st = self->state;
      if (auto i = st.hash_of_id.find(key_id); i != st.hash_of_id.end()) {
        st.by_hash.erase(i->second);
        st.hash_of_id.erase(i);
      }
      return true;
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

std::string hash_password_blocking(const password_hasher_options& opts, const std::string& password) {
  if (sodium_init() < 0)
    throw std::runtime_error("libsodium failed to initialise");
  char hash[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(hash, password.data(), password.size(),
                        opts.ops_limit ? opts.ops_limit : crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        opts.mem_limit ? opts.mem_limit : crypto_pwhash_MEMLIMIT_INTERACTIVE)
      != 0)
    throw std::runtime_error("crypto_pwhash_str failed");
  return hash;
}

caf::actor spawn_password_hasher(caf::actor_system& sys, password_hasher_options options) {
  return sys.spawn<caf::detached>(hasher_impl, options);
}

caf::actor spawn_login_throttle(caf::actor_system& sys, login_throttle_options options) {
  return sys.spawn(throttle_impl, std::move(options));
}

caf::actor spawn_api_key_cache(caf::actor_system& sys, api_key_cache_options options) {
  return sys.spawn(key_cache_impl, std::move(options));
}

void add_api_key_collector(metrics_registry& metrics, std::shared_ptr<api_key_cache_counters> keys) {
  metrics.add_collector([keys](prometheus_writer& out) {
    out.family("troupe_api_key_lookups_total", "counter",
               "API key look-ups by where they were answered: memory (cache, miss_cache), the database, or not at all "
               "(not_cached: the client's address had used up its failed authentications).");
    out.sample("troupe_api_key_lookups_total", {{"source", "cache"}}, static_cast<double>(keys->hits.load()));
    out.sample("troupe_api_key_lookups_total", {{"source", "miss_cache"}}, static_cast<double>(keys->miss_hits.load()));
    out.sample("troupe_api_key_lookups_total", {{"source", "database"}}, static_cast<double>(keys->queries.load()));
    out.sample("troupe_api_key_lookups_total", {{"source", "not_cached"}},
               static_cast<double>(keys->not_cached.load()));
  });
}

supervisor_config make_auth_supervisor(const config::settings& s, const supervision_context& context) {
  using std::chrono::milliseconds;
  // Password hashers (detached: argon2id is CPU-heavy), login throttle, API key cache, and the aggregator of security
  // events.
  auto auth = subsystem_supervisor("auth", supervision_strategy::one_for_one, context);
  for (int64_t i = 0; i < s.auth.hashers; ++i)
    auth.children.push_back(worker_child(
      "auth.hasher." + std::to_string(i), [](caf::actor_system& sys) { return spawn_password_hasher(sys, {}); },
      milliseconds{5000}));
  login_throttle_options throttle;
  throttle.max_failures = static_cast<size_t>(s.auth.login_max_failures);
  throttle.max_address_failures = static_cast<size_t>(s.auth.login_max_address_failures);
  auth.children.push_back(worker_child(
    login_throttle_name, [throttle](caf::actor_system& sys) { return spawn_login_throttle(sys, throttle); },
    milliseconds{1000}));
  api_key_cache_options keys;
  keys.db_query = db_query_lookup(context.names);
  auth.children.push_back(worker_child(
    "auth.keys", [keys](caf::actor_system& sys) { return spawn_api_key_cache(sys, keys); }, milliseconds{1000}));
  security_event_options events;
  events.writer = db_writer_lookup(context.names);
  auth.children.push_back(worker_child(
    "auth.events", [events](caf::actor_system& sys) { return spawn_security_events(sys, events); },
    milliseconds{1000}));
  if (context.metrics) {
    add_api_key_collector(*context.metrics, keys.counters);
    add_security_event_collector(*context.metrics, events.counters);
  }
  return auth;
}

} // namespace troupe
