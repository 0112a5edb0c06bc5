// The cache client of actors/cache.hpp: key -> shard routing and the asynchronous operations, single-flight
// get_or_compute included, for use from inside any actor.

#include "actors/cache.hpp"

#include "config/service_error.hpp"

#include <caf/all.hpp>

#include <algorithm>

namespace troupe {

using std::chrono::milliseconds;

// --- cache_client ------------------------------------------------------------------------------------------------

namespace {

caf::duration request_timeout(milliseconds timeout) {
  return timeout.count() > 0 ? caf::duration{timeout} : caf::duration{caf::infinite};
}

milliseconds claim_margin(milliseconds timeout) {
  return timeout.count() > 0 ? timeout : milliseconds{5000};
}

} // namespace

cache_client::cache_client(std::shared_ptr<directory> names, size_t shards, milliseconds timeout)
  : shards_(std::max<size_t>(1, shards)), timeout_(request_timeout(timeout)), claim_margin_(claim_margin(timeout)) {
  std::vector<actor_name<cache_shard_actor>> shard_names;
  for (size_t i = 0; i < shards_; ++i)
    shard_names.push_back(cache_shard_name(i));
  lookup_ = [names = std::move(names), shard_names = std::move(shard_names)](size_t i) {
    return names->get(shard_names[i]);
  };
}

cache_client::cache_client(std::vector<cache_shard_actor> shards, milliseconds timeout)
  : shards_(std::max<size_t>(1, shards.size())), timeout_(request_timeout(timeout)),
    claim_margin_(claim_margin(timeout)) {
  lookup_ = [shards = std::move(shards)](size_t i) -> std::optional<cache_shard_actor> {
    if (i >= shards.size() || !shards[i])
      return std::nullopt;
    return shards[i];
  };
}

size_t cache_client::shard_index(std::string_view key) const {
  return std::hash<std::string_view>{}(key) % shards_;
}

std::optional<cache_client::target> cache_client::route(std::string_view key) const {
  if (placement_.remote)
    if (auto endpoint = placement_.remote(key))
      return target{std::move(*endpoint), caf::duration{placement_.timeout}, true};
  if (auto shard = lookup_(shard_index(key)))
    return target{std::move(*shard), timeout_, false};
  return std::nullopt;
}

std::optional<cache_key_actor> cache_client::shard_for(std::string_view key) const {
  if (auto where = route(key))
    return std::move(where->actor);
  return std::nullopt;
}

std::optional<cache_key_actor> cache_client::first_stop(std::string_view key) const {
  if (placement_.near_ttl.count() > 0) {
    auto shard = lookup_(shard_index(key));
    return shard ? std::optional<cache_key_actor>{*shard} : std::nullopt;
  }
  return shard_for(key);
}

namespace {

caf::error shard_unavailable() {
  return make_error(service_error::unavailable, "The cache shard is restarting; retry shortly.");
}

} // namespace

void cache_client::get(caf::event_based_actor* self, const std::string& key, value_handler then) const {
  auto where = route(key);
  if (!where) {
    then(shard_unavailable());
    return;
  }
  self->request(where->actor, where->timeout, cache_get_atom::value, key)
    .then(
      [then](cache_reply& reply) {
        then(reply.hit ? std::optional<std::string>{std::move(reply.value)} : std::optional<std::string>{});
      },
      [then](caf::error& err) { then(std::move(err)); });
}

void cache_client::put(caf::event_based_actor* self, const std::string& key, std::string value, milliseconds ttl,
                       std::vector<std::string> tags, bool_handler then) const {
  auto where = route(key);
  if (!where) {
    if (then)
      then(shard_unavailable());
    return;
  }
  auto ttl_ms = static_cast<int64_t>(ttl.count());
  if (!then) {
    caf::anon_send(where->actor, cache_put_atom::value, key, std::move(value), ttl_ms, std::move(tags));
    return;
  }
  self->request(where->actor, where->timeout, cache_put_atom::value, key, std::move(value), ttl_ms, std::move(tags))
    .then([then](bool stored) { then(stored); }, [then](caf::error& err) { then(std::move(err)); });
}

void cache_client::erase(caf::event_based_actor* self, const std::string& key, bool_handler then) const {
  auto where = route(key);
  if (!where) {
    if (then)
      then(shard_unavailable());
    return;
  }
  if (!then) {
    caf::anon_send(where->actor, cache_erase_atom::value, key);
    return;
  }
  self->request(where->actor, where->timeout, cache_erase_atom::value, key)
    .then([then](bool removed) { then(removed); }, [then](caf::error& err) { then(std::move(err)); });
}

template <class... Ts>
void cache_client::broadcast(caf::event_based_actor* self, count_handler then, Ts... msg) const {
  std::vector<std::pair<cache_invalidation_actor, caf::duration>> targets;
  for (size_t i = 0; i < shards_; ++i) {
    auto shard = lookup_(i);
    if (!shard) {
      // Nothing is sent when a shard is missing: an invalidation must not be reported done while one shard
      // could still hold the entries (the restarted shard starts empty, so a retry succeeds).
      if (then)
        then(shard_unavailable());
      return;
    }
    targets.emplace_back(std::move(*shard), timeout_);
  }
  if (placement_.peers) {
    // The other nodes' endpoints pass the message to each of their shards and answer the sum.
    auto peers = placement_.peers();
    if (!peers) {
      if (then)
        then(std::move(peers.error()));
      return;
    }
    for (auto& peer : *peers)
      targets.emplace_back(std::move(peer), caf::duration{placement_.timeout});
  }
  if (!then) {
    for (auto& target : targets)
      caf::anon_send(target.first, msg...);
    return;
  }
  struct tally {
    size_t pending;
    uint64_t sum = 0;
    std::optional<caf::error> error;
    count_handler then;
  };
  auto t = std::make_shared<tally>(tally{targets.size(), 0, std::nullopt, std::move(then)});
  auto arrive = [t] {
    if (--t->pending > 0)
      return;
    if (t->error)
      t->then(std::move(*t->error));
    else
      t->then(t->sum);
  };
  for (auto& target : targets)
    self->request(target.first, target.second, msg...)
      .then(
        [t, arrive](uint64_t n) {
          t->sum += n;
          arrive();
        },
        [t, arrive](caf::error& err) {
          if (!t->error)
            t->error = std::move(err);
          arrive();
        });
}

void cache_client::invalidate_tag(caf::event_based_actor* self, const std::string& tag, count_handler then) const {
  broadcast(self, std::move(then), cache_tag_atom::value, tag);
}

void cache_client::invalidate_prefix(caf::event_based_actor* self, const std::string& prefix,
                                     count_handler then) const {
  broadcast(self, std::move(then), cache_prefix_atom::value, prefix);
}

void cache_client::clear(caf::event_based_actor* self, count_handler then) const {
  broadcast(self, std::move(then), cache_clear_atom::value);
}

void cache_client::claim_and_compute(caf::event_based_actor* self, cache_key_actor target, bool remote,
                                     const std::string& key, int64_t ttl_ms, std::vector<std::string> tags,
                                     producer produce, result_handler then, milliseconds producer_timeout) const {
  // Another node's shard may go away unanswered: its claim and wait time out, long enough after the producer's
  // deadline for the shard to answer a parked claim with its own timeout first. This node's shard always answers
  // both (at once, or at the fill, the failure or the producer's deadline), as it answers a get, which is untimed
  // here too: no CAF timer for them (each one a wake-up of the clock thread when set and when it fires, for every
  // gateway call). Should the shard itself die, it answers the callers parked behind another's claim unavailable as
  // it ends (cache.cpp: ~shard_state), and a producer's own answer still ends its call.
  auto wait = remote ? caf::duration{producer_timeout + claim_margin_} : caf::duration{caf::infinite};
  self->request(target, wait, cache_claim_atom::value, key, static_cast<int64_t>(producer_timeout.count()))
    .then(
      [self, target, key, ttl_ms, tags = std::move(tags), produce = std::move(produce), then,
       wait](cache_reply& reply) mutable {
        if (reply.hit || reply.token == 0) {
          then(std::move(reply.value));
          return;
        }
        // This caller produces. `then` runs once: with the producer's result, or with the shard's timeout if the
        // producer overruns (the wait below is released by the fill, the failure or the timeout, whichever first).
        // Any other error of the wait (a shard that ended, a node that went away) leaves the call to its producer.
        auto token = reply.token;
        auto answered = std::make_shared<bool>(false);
        auto finish = [answered, then](caf::expected<std::string> result) {
          if (*answered)
            return;
          *answered = true;
          then(std::move(result));
        };
        self->request(target, wait, cache_wait_atom::value, key, token)
          .then([finish](cache_reply& r) { finish(std::move(r.value)); },
                [finish](caf::error& err) {
                  if (service_code(err) == service_error::timeout)
                    finish(std::move(err));
                });
        produce(self, [target, key, token, ttl_ms, tags, finish](caf::expected<std::string> result) {
          if (result)
            caf::anon_send(target, cache_fill_atom::value, key, token, *result, ttl_ms, tags);
          else
            caf::anon_send(target, cache_fail_atom::value, key, token, result.error());
          finish(std::move(result));
        });
      },
      [then](caf::error& err) { then(std::move(err)); });
}

void cache_client::get_or_compute(caf::event_based_actor* self, const std::string& key, milliseconds ttl,
                                  std::vector<std::string> tags, producer produce, result_handler then,
                                  milliseconds producer_timeout) const {
  auto where = route(key);
  if (!where) {
    // The cache is restarting: compute without it rather than fail the caller.
    produce(self, std::move(then));
    return;
  }
  auto ttl_ms = std::max<int64_t>(0, static_cast<int64_t>(ttl.count()));
  auto near = where->remote && placement_.near_ttl.count() > 0 ? lookup_(shard_index(key)) : std::nullopt;
  if (!near) {
    fetch(self, std::move(*where), key, ttl_ms, std::move(tags), std::move(produce), std::move(then), producer_timeout);
    return;
  }
  // The near tier: this node's copy first; else the holder, and a copy of what the holder had cached. Never of a
  // value computed meanwhile (produced here or shared by a single flight): an invalidation that overtook that
  // computation keeps it out of the holder's shard, and a copy here would bring it back.
  auto near_ms = static_cast<int64_t>(placement_.near_ttl.count());
  if (ttl_ms > 0)
    near_ms = std::min(near_ms, ttl_ms);
  hit_copier keep = [near = *near, key, near_ms, tags](const std::string& value) {
    caf::anon_send(near, cache_put_atom::value, key, value, near_ms, tags);
  };
  self->request(*near, timeout_, cache_get_atom::value, key)
    .then(
      [this, self, where = *where, key, ttl_ms, tags, produce, then, keep, producer_timeout](cache_reply& reply) {
        if (reply.hit)
          then(std::move(reply.value));
        else
          fetch(self, where, key, ttl_ms, tags, produce, then, producer_timeout, keep);
      },
      [this, self, where = *where, key, ttl_ms, tags, produce, then, keep, producer_timeout](caf::error&) {
        fetch(self, where, key, ttl_ms, tags, produce, then, producer_timeout, keep);
      });
}

void cache_client::fetch(caf::event_based_actor* self, target where, const std::string& key, int64_t ttl_ms,
                         std::vector<std::string> tags, producer produce, result_handler then,
                         milliseconds producer_timeout, hit_copier copy_hit) const {
  auto target = std::move(where.actor);
  auto remote = where.remote;
  // The hit path is one get (untimed on this node); only a miss pays for the (timed) claim.
  self->request(target, where.timeout, cache_get_atom::value, key)
    .then(
      [this, self, target, remote, key, ttl_ms, tags, produce, then, producer_timeout,
       copy_hit](cache_reply& reply) mutable {
        if (reply.hit) {
          if (copy_hit)
            copy_hit(reply.value);
          then(std::move(reply.value));
        } else
          claim_and_compute(self, target, remote, key, ttl_ms, std::move(tags), std::move(produce), then,
                            producer_timeout);
      },
      [self, remote, produce, then](caf::error& err) mutable {
        // The node holding the key did not answer (it died or hangs): compute here, without the cache.
        if (remote)
          produce(self, std::move(then));
        else
          then(std::move(err));
      });
}

void cache_client::single_flight(caf::event_based_actor* self, const std::string& key, producer produce,
                                 result_handler then, milliseconds producer_timeout) const {
  auto where = route(key);
  if (!where) {
    produce(self, std::move(then));
    return;
  }
  claim_and_compute(self, std::move(where->actor), where->remote, key, -1, {}, std::move(produce), std::move(then),
                    producer_timeout);
}

} // namespace troupe
