#pragma once
// A name -> actor directory that always resolves to the live incarnation.
// Supervisors put a child's handle when it starts and erase it when it stops, so a lookup never returns a
// dead actor for long (CAF's registry keeps names of dead actors: see LIBRARY-NOTES.md). Thread-safe: HTTP
// threads read it, supervisors write it.

#include <caf/actor.hpp>

#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace troupe {

class directory {
public:
  /// Points `name` at `handle`, replacing any earlier incarnation.
  void put(const std::string& name, caf::actor handle);

  /// Removes `name` only if it still points at `handle` (a newer incarnation is left alone).
  void erase(const std::string& name, const caf::actor& handle);

  /// The live incarnation, or nullopt while the actor is not running.
  std::optional<caf::actor> get(const std::string& name) const;

  /// Every name and handle, sorted by name.
  std::vector<std::pair<std::string, caf::actor>> snapshot() const;

private:
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, caf::actor> actors_;
};

} // namespace troupe
