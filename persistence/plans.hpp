#pragma once
// AI plans for repositories (table plans, migration 0012) behind typed messages. Registered by
// troupe::register_message_types. Send every message to "db.query"; each runs in one transaction.

#include "persistence/jobs.hpp"

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

struct plan_record {
  std::string id;
  std::string user_id;
  std::string repository_id;
  std::string job_id;   // the job that made it ("" once that job is deleted)
  std::string title;
  std::string overview;
  std::string sections = "[]"; // JSON array of {title, files:[...], steps:[...]}, validated before it is stored
  std::string metadata = "{}"; // JSON object: model, tokens, retrieved files, attempts
  std::string prompt;
  int64_t created_at_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, plan_record& x) {
  return f(caf::meta::type_name("plan_record"), x.id, x.user_id, x.repository_id, x.job_id, x.title, x.overview,
           x.sections, x.metadata, x.prompt, x.created_at_ms);
}

/// (plan_request_atom, user_id, repository_id, job_draft, int32_t max_active) -> job_record: enqueues the job that
/// makes a plan, in the transaction that checks the repository is the user's (not_found otherwise) and that the
/// user has fewer than max_active plan jobs queued, running or retrying (rate_limited otherwise; the user's row is
/// locked meanwhile, so concurrent requests cannot pass the cap together).
using plan_request_atom = caf::atom_constant<caf::atom("planreq")>;
/// (plan_store_atom, plan_record) -> plan_record: stores the plan of plan.job_id, or answers the one that job stored
/// already (a retried job stores no second plan). The record's id and created_at are ignored.
using plan_store_atom = caf::atom_constant<caf::atom("planstore")>;
/// (plan_get_atom, user_id, plan_id) -> plan_record; not_found unless it is the user's.
using plan_get_atom = caf::atom_constant<caf::atom("planget")>;
/// (plan_list_atom, user_id, repository_id, int32_t limit) -> std::vector<plan_record>: newest first, at most
/// `limit` (1..50); not_found unless the repository is the user's.
using plan_list_atom = caf::atom_constant<caf::atom("planlist")>;
/// (plan_delete_atom, user_id, plan_id) -> bool; not_found unless it is the user's.
using plan_delete_atom = caf::atom_constant<caf::atom("plandel")>;

} // namespace troupe
