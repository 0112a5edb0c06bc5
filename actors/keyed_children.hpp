#pragma once
// Children a manager actor starts on demand, one per key: a user's session (actors/sessions.cpp), an upload's
// session (actors/uploads.cpp). They are monitored, not linked (a child killed with exit_reason::kill must not take
// its manager down), and they end with their manager whatever its exit reason.
//
// Usage, inside the manager: stop_with(self) once at start; after spawning a child, self->monitor(child) and
// add(key, child); in the down handler, remove(msg.source) says whose child it was (if it was one).

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/exit_reason.hpp>
#include <caf/local_actor.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace troupe {

class keyed_children {
public:
  /// Stops every live child when `self` exits.
  void stop_with(caf::local_actor* self) {
    self->attach_functor([live = live_](const caf::error&) {
      for (auto& child : *live)
        caf::anon_send_exit(child, caf::exit_reason::user_shutdown);
    });
  }

  void add(const std::string& key, caf::actor child) {
    live_->push_back(child);
    owners_[child.address()] = key;
    by_key_[key] = std::move(child);
  }

  std::optional<caf::actor> find(const std::string& key) const {
    if (auto i = by_key_.find(key); i != by_key_.end())
      return i->second;
    return std::nullopt;
  }

  /// Forgets the child that `source` was and returns its key and handle; nullopt if it was none of ours.
  std::optional<std::pair<std::string, caf::actor>> remove(const caf::actor_addr& source) {
    auto owner = owners_.find(source);
    if (owner == owners_.end())
      return std::nullopt;
    auto key = std::move(owner->second);
    owners_.erase(owner);
    auto i = by_key_.find(key);
    if (i == by_key_.end() || i->second.address() != source) // the key has a newer child already
      return std::make_pair(std::move(key), caf::actor{});
    auto child = std::move(i->second);
    by_key_.erase(i);
    live_->erase(std::remove(live_->begin(), live_->end(), child), live_->end());
    return std::make_pair(std::move(key), std::move(child));
  }

  const std::unordered_map<std::string, caf::actor>& all() const { return by_key_; }

private:
  std::unordered_map<std::string, caf::actor> by_key_;
  std::unordered_map<caf::actor_addr, std::string> owners_;
  // Shared with the exit functor, which outlives the state it was attached from.
  std::shared_ptr<std::vector<caf::actor>> live_ = std::make_shared<std::vector<caf::actor>>();
};

} // namespace troupe
