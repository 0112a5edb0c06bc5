#include "persistence/messages.hpp"
#include "persistence/queries.hpp"

#include <caf/actor_system_config.hpp>

#include <vector>

namespace troupe {

void register_persistence_types(caf::actor_system_config& cfg) {
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
  cfg.add_message_type<storage_status>("storage_status");
  cfg.add_message_type<plan_record>("plan_record");
  cfg.add_message_type<std::vector<plan_record>>("std::vector<plan_record>");
  cfg.add_message_type<security_tally>("security_tally");
  cfg.add_message_type<std::vector<security_tally>>("std::vector<security_tally>");
  cfg.add_message_type<revoked_key>("revoked_key");
  cfg.add_message_type<std::vector<revoked_key>>("std::vector<revoked_key>");
  cfg.add_message_type<security_report>("security_report");
  cfg.add_message_type<wishlist_entry>("wishlist_entry");
  cfg.add_message_type<std::vector<wishlist_entry>>("std::vector<wishlist_entry>");
  cfg.add_message_type<wishlist_cursor>("wishlist_cursor");
}

} // namespace troupe
