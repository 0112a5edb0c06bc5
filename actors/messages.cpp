#include "actors/messages.hpp"
#include "actors/breaker.hpp"
#include "actors/rate_limit.hpp"

#include "config/service_error.hpp"
#include "persistence/accounts.hpp"
#include "persistence/usage.hpp"

#include <caf/all.hpp>

namespace troupe {

void register_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<child_info>("child_info");
  cfg.add_message_type<breaker_admission>("breaker_admission");
  cfg.add_message_type<breaker_snapshot>("breaker_snapshot");
  cfg.add_message_type<std::vector<child_info>>("std::vector<child_info>");
  cfg.add_message_type<health_check>("health_check");
  cfg.add_message_type<std::vector<health_check>>("std::vector<health_check>");
  cfg.add_message_type<event_row>("event_row");
  cfg.add_message_type<std::vector<event_row>>("std::vector<event_row>");
  cfg.add_message_type<feedback_row>("feedback_row");
  cfg.add_message_type<std::vector<feedback_row>>("std::vector<feedback_row>");
  cfg.add_message_type<security_event_row>("security_event_row");
  cfg.add_message_type<std::vector<security_event_row>>("std::vector<security_event_row>");
  cfg.add_message_type<usage_row>("usage_row");
  cfg.add_message_type<std::vector<usage_row>>("std::vector<usage_row>");
  cfg.add_message_type<usage_event_row>("usage_event_row");
  cfg.add_message_type<usage_group>("usage_group");
  cfg.add_message_type<spend_totals>("spend_totals");
  cfg.add_message_type<spend_settlement>("spend_settlement");
  cfg.add_message_type<spend_hold>("spend_hold");
  cfg.add_message_type<std::vector<spend_hold>>("std::vector<spend_hold>");
  cfg.add_message_type<spend_status>("spend_status");
  cfg.add_message_type<std::vector<usage_group>>("std::vector<usage_group>");
  cfg.add_message_type<std::vector<usage_event_row>>("std::vector<usage_event_row>");
  cfg.add_message_type<write_request>("write_request");
  cfg.add_message_type<std::vector<write_request>>("std::vector<write_request>");
  cfg.add_message_type<write_result>("write_result");
  cfg.add_message_type<write_outcome>("write_outcome");
  cfg.add_message_type<std::vector<write_outcome>>("std::vector<write_outcome>");
  cfg.add_message_type<user_record>("user_record");
  cfg.add_message_type<api_key_record>("api_key_record");
  cfg.add_message_type<api_key_limits>("api_key_limits");
  cfg.add_message_type<std::vector<api_key_record>>("std::vector<api_key_record>");
  cfg.add_message_type<session_snapshot>("session_snapshot");
  cfg.add_message_type<refresh_rotation>("refresh_rotation");
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
  // Uploads, jobs and repositories (persistence/uploads.hpp, jobs.hpp, repositories.hpp; actors/uploads.hpp)
  cfg.add_message_type<upload_record>("upload_record");
  cfg.add_message_type<std::vector<upload_record>>("std::vector<upload_record>");
  cfg.add_message_type<job_draft>("job_draft");
  cfg.add_message_type<job_record>("job_record");
  cfg.add_message_type<std::vector<job_record>>("std::vector<job_record>");
  cfg.add_message_type<job_attempt>("job_attempt");
  cfg.add_message_type<std::vector<job_attempt>>("std::vector<job_attempt>");
  cfg.add_message_type<repository_record>("repository_record");
  cfg.add_message_type<std::vector<repository_record>>("std::vector<repository_record>");
  cfg.add_message_type<file_record>("file_record");
  cfg.add_message_type<std::vector<file_record>>("std::vector<file_record>");
  cfg.add_message_type<file_page>("file_page");
  cfg.add_message_type<search_hit>("search_hit");
  cfg.add_message_type<std::vector<search_hit>>("std::vector<search_hit>");
  cfg.add_message_type<file_entry>("file_entry");
  cfg.add_message_type<std::vector<file_entry>>("std::vector<file_entry>");
  cfg.add_message_type<segment_row>("segment_row");
  cfg.add_message_type<std::vector<segment_row>>("std::vector<segment_row>");
  cfg.add_message_type<file_outcome>("file_outcome");
  cfg.add_message_type<std::vector<file_outcome>>("std::vector<file_outcome>");
  cfg.add_message_type<file_batch>("file_batch");
  cfg.add_message_type<upload_spec>("upload_spec");
  cfg.add_message_type<upload_chunk>("upload_chunk");
  cfg.add_message_type<upload_status>("upload_status");
  cfg.add_message_type<chunk_segment>("chunk_segment");
  cfg.add_message_type<std::vector<chunk_segment>>("std::vector<chunk_segment>");
  cfg.add_message_type<chunk_summary>("chunk_summary");
  cfg.add_message_type<storage_status>("storage_status");
  // Plans (persistence/plans.hpp)
  cfg.add_message_type<plan_record>("plan_record");
  cfg.add_message_type<std::vector<plan_record>>("std::vector<plan_record>");
  // GET /api/security/status (persistence/security_status.hpp, actors/auth_workers.hpp)
  cfg.add_message_type<security_tally>("security_tally");
  cfg.add_message_type<std::vector<security_tally>>("std::vector<security_tally>");
  cfg.add_message_type<revoked_key>("revoked_key");
  cfg.add_message_type<std::vector<revoked_key>>("std::vector<revoked_key>");
  cfg.add_message_type<security_report>("security_report");
  cfg.add_message_type<throttled_entry>("throttled_entry");
  cfg.add_message_type<std::vector<throttled_entry>>("std::vector<throttled_entry>");
  // The wishlist (persistence/wishlist.hpp)
  cfg.add_message_type<wishlist_entry>("wishlist_entry");
  cfg.add_message_type<std::vector<wishlist_entry>>("std::vector<wishlist_entry>");
  cfg.add_message_type<wishlist_cursor>("wishlist_cursor");
  cfg.add_error_category(service_error_category::value,
                         [](uint8_t code, caf::atom_value, const caf::message& context) -> std::string {
                           std::string result = to_string(static_cast<service_error>(code));
                           if (context.match_elements<std::string>()) {
                             result += ": ";
                             result += context.get_as<std::string>(0);
                           }
                           return result;
                         });
}

} // namespace troupe
