#pragma once
// The usage report: what the AI gateway's calls used and cost (the usage_events ledger, migration 0008).
//
//   GET /api/usage ?from=YYYY-MM-DD &to=YYYY-MM-DD &group_by=model|key|day &user_id=<uuid>
//     200 {object:"usage", user_id, from, to, group_by,
//          data:[{model | key_id,key_name | day, requests, prompt_tokens, completion_tokens, total_tokens,
//                 estimated_requests, cost_usd}],
//          total:{requests, prompt_tokens, completion_tokens, total_tokens, estimated_requests, cost_usd}}
//
// Days are UTC days, both ends included: `to` defaults to today, `from` to 29 days before `to` (at most 366 days
// in one report). group_by defaults to day. cost_usd is the exact decimal sum of the calls' costs at the prices
// configured when each call was made. The caller's own calls; an admin may ask for any user's with user_id
// (anyone else gets 403 for another user's id).

#include "http/router.hpp"

#include "actors/persistence_supervisor.hpp"

#include <string>

namespace troupe::http {

class authenticator;

void add_usage_routes(router& routes, authenticator& auth, actor_name<db_query_actor> db_query = db_query_name);

} // namespace troupe::http
