#pragma once
// A closure run inside a worker actor: the HTTP bridge's workers (http/bridge.hpp) take it, and the gateway's calls
// (actors/gateway_calls.hpp) send it to the worker that runs them for their retries and the streams' heartbeat sweep.
// Local only: it never crosses a node (CAF cannot serialise a std::function).

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/event_based_actor.hpp>

#include <functional>

namespace troupe {

struct worker_job {
  std::function<void(caf::event_based_actor*)> run;
};

} // namespace troupe

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::worker_job)
