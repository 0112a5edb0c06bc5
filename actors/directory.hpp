#pragma once
// A name -> actor directory that always resolves to the live incarnation.
// Supervisors put a child's handle when it starts and erase it when it stops, so a lookup never returns a
// dead actor for long (CAF's registry keeps names of dead actors: see LIBRARY-NOTES.md). Thread-safe: HTTP
// threads read it, supervisors write it.

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>

#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace troupe {

/// A directory name that says which interface answers there (a caf::typed_actor handle type), so that looking it up
/// gives a typed handle: the messages sent to it and the replies expected are checked when compiling.
template <class Handle>
struct actor_name {
  std::string value;
};

class directory {
public:
  /// Points `name` at `handle`, replacing any earlier incarnation.
  void put(const std::string& name, caf::actor handle);

  /// Removes `name` only if it still points at `handle` (a newer incarnation is left alone).
  void erase(const std::string& name, const caf::actor& handle);

  /// The same for a typed name and handle.
  template <class Handle>
  void put(const actor_name<Handle>& name, const Handle& handle) {
    put(name.value, caf::actor_cast<caf::actor>(handle));
  }
  template <class Handle>
  void erase(const actor_name<Handle>& name, const Handle& handle) {
    erase(name.value, caf::actor_cast<caf::actor>(handle));
  }

  /// The live incarnation, or nullopt while the actor is not running.
  std::optional<caf::actor> get(const std::string& name) const;

  /// The live incarnation under `name` in a directory whose every entry answers `Handle` (the sessions').
  template <class Handle>
  std::optional<Handle> get_as(const std::string& name) const {
    auto found = get(name);
    if (!found)
      return std::nullopt;
    return caf::actor_cast<Handle>(std::move(*found));
  }

  /// The live incarnation as a handle of the interface its name declares.
  template <class Handle>
  std::optional<Handle> get(const actor_name<Handle>& name) const {
    auto found = get(name.value);
    if (!found)
      return std::nullopt;
    return caf::actor_cast<Handle>(std::move(*found));
  }

  /// Every name and handle, sorted by name.
  std::vector<std::pair<std::string, caf::actor>> snapshot() const;

private:
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, caf::actor> actors_;
};

} // namespace troupe
