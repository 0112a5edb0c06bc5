#include "actors/guards.hpp"

#include <caf/abstract_actor.hpp>
#include <caf/error.hpp>

namespace troupe {

void hold_while_alive(const caf::actor& actor, count_holder holder) {
  if (!actor)
    return; // `holder` ends here
  // The functor (and the holder with it) is destroyed when the actor terminates, or at once if it already has.
  auto held = std::make_shared<count_holder>(std::move(holder));
  actor->attach_functor([held](const caf::error&) { held->release(); });
}

} // namespace troupe
