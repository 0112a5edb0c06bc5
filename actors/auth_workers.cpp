#include "actors/auth_workers.hpp"
#include "introspect/observed_actor.hpp"

#include "config/service_error.hpp"

#include <caf/all.hpp>
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
  std::unordered_map<std::string, std::deque<clock_type::time_point>> failures;  // "email:..." / "ip:..."
  static inline const char* name = "login_throttle";
};

using throttle_actor = observed_stateful_actor<throttle_state>;

clock_type::time_point now(throttle_actor* self) {
  return self->state.opts.clock ? self->state.opts.clock() : clock_type::now();
}

/// Drops failures older than the window; returns how long until `key` may try again (0 = now).
int64_t wait_seconds(throttle_actor* self, const std::string& key) {
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
  if (times.size() < st.opts.max_failures)
    return 0;
  auto wait = std::chrono::duration_cast<std::chrono::seconds>(times.front() + st.opts.window - t).count();
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
      return std::max(wait_seconds(self, "email:" + email), wait_seconds(self, "ip:" + ip));
    },
    [self](throttle_fail_atom, const std::string& email, const std::string& ip) {
      auto& st = self->state;
      if (st.failures.size() >= st.opts.max_entries)
        sweep(self);
      if (st.failures.size() >= st.opts.max_entries)
        st.failures.erase(st.failures.begin());  // still full of live entries: drop an arbitrary one
      auto t = now(self);
      for (auto key : {"email:" + email, "ip:" + ip}) {
        auto& times = st.failures[key];
        times.push_back(t);
        while (times.size() > st.opts.max_failures)
          times.pop_front();  // only the last max_failures matter
      }
    },
    [self](throttle_reset_atom, const std::string& email) { self->state.failures.erase("email:" + email); },
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
  static inline const char* name = "api_key_cache";
};

using key_cache_actor = observed_stateful_actor<key_cache_state>;

caf::behavior key_cache_impl(key_cache_actor* self, api_key_cache_options opts) {
  self->state.opts = std::move(opts);
  return {
    [self](key_lookup_atom, const std::string& key_hash) -> caf::result<api_key_record> {
      auto& st = self->state;
      if (auto i = st.by_hash.find(key_hash); i != st.by_hash.end()) {
        if (clock_type::now() - i->second.loaded < st.opts.ttl)
          return i->second.record;
        st.hash_of_id.erase(i->second.record.id);
        st.by_hash.erase(i);
      }
      auto db = st.opts.db_query ? st.opts.db_query() : std::nullopt;
      if (!db)
        return make_error(service_error::unavailable, "The database is restarting; retry shortly.");
      auto promise = self->make_response_promise<api_key_record>();
      self->request(*db, caf::duration{std::chrono::seconds{10}}, api_key_lookup_atom::value, key_hash)
        .then(
          [self, promise, key_hash](api_key_record& record) mutable {
            auto& st = self->state;
            if (st.by_hash.size() >= st.opts.max_entries) {
              st.by_hash.clear();
              st.hash_of_id.clear();
            }
            st.hash_of_id[record.id] = key_hash;
            st.by_hash[key_hash] = cached_key{record, clock_type::now()};
            promise.deliver(std::move(record));
          },
          [promise](caf::error& err) mutable { promise.deliver(std::move(err)); });
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

} // namespace troupe
