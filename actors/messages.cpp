#include "actors/messages.hpp"
#include "actors/breaker.hpp"
#include "actors/rate_limit.hpp"

#include "config/service_error.hpp"
#include "persistence/accounts.hpp"
#include "persistence/usage.hpp"

#include <caf/all.hpp>

namespace troupe {

void register_actor_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<child_info>("child_info");
  cfg.add_message_type<breaker_admission>("breaker_admission");
  cfg.add_message_type<breaker_snapshot>("breaker_snapshot");
  cfg.add_message_type<std::vector<child_info>>("std::vector<child_info>");
  cfg.add_message_type<spend_settlement>("spend_settlement");
  cfg.add_message_type<spend_hold>("spend_hold");
  cfg.add_message_type<std::vector<spend_hold>>("std::vector<spend_hold>");
  cfg.add_message_type<spend_status>("spend_status");
  cfg.add_message_type<rate_policy>("rate_policy");
  cfg.add_message_type<limit_decision>("limit_decision");
  cfg.add_message_type<quota_status>("quota_status");
  cfg.add_message_type<cache_reply>("cache_reply");
  cfg.add_message_type<credential>("credential");
  cfg.add_message_type<identity>("identity");
  cfg.add_message_type<cluster_origin>("cluster_origin");
  cfg.add_message_type<bucket_level>("bucket_level");
  cfg.add_message_type<std::vector<bucket_level>>("std::vector<bucket_level>");
  cfg.add_message_type<session_handoff>("session_handoff");
  cfg.add_message_type<upload_spec>("upload_spec");
  cfg.add_message_type<upload_chunk>("upload_chunk");
  cfg.add_message_type<upload_status>("upload_status");
  cfg.add_message_type<chunk_segment>("chunk_segment");
  cfg.add_message_type<std::vector<chunk_segment>>("std::vector<chunk_segment>");
  cfg.add_message_type<chunk_summary>("chunk_summary");
  cfg.add_message_type<throttled_entry>("throttled_entry");
  cfg.add_message_type<std::vector<throttled_entry>>("std::vector<throttled_entry>");
}

void register_message_types(caf::actor_system_config& cfg) {
  register_service_errors(cfg);
  register_introspect_types(cfg);
  register_persistence_types(cfg);
  register_actor_types(cfg);
}

} // namespace troupe
