#include "introspect/messages.hpp"

#include <caf/actor_system_config.hpp>

#include <vector>

namespace troupe {

void register_introspect_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<health_check>("health_check");
  cfg.add_message_type<std::vector<health_check>>("std::vector<health_check>");
}

} // namespace troupe
