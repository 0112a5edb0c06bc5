#pragma once
// What GET /api/security/status reads from the database, behind one typed message to "db.query"
// (persistence/query_router.hpp). Registered by troupe::register_message_types.

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

/// Security events of one kind (and one address or account, where the list is by those) in the window.
struct security_tally {
  std::string subject; // the type (by type), the address (by address) or the user id (by account)
  std::string type;    // the event type ("" in the list by type)
  int64_t count = 0;   // events (the rows' counts summed)
  int64_t last_at_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, security_tally& x) {
  return f(caf::meta::type_name("security_tally"), x.subject, x.type, x.count, x.last_at_ms);
}

struct revoked_key {
  std::string id;
  std::string user_id;
  std::string name;
  int64_t revoked_at_ms = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, revoked_key& x) {
  return f(caf::meta::type_name("revoked_key"), x.id, x.user_id, x.name, x.revoked_at_ms);
}

struct security_report {
  int64_t since_ms = 0;
  std::vector<security_tally> by_type;    // most events first
  std::vector<security_tally> by_address; // per (address, type), most events first
  std::vector<security_tally> by_account; // per (user, type), most events first
  std::vector<revoked_key> revoked_keys;  // revoked in the window, newest first
  int64_t revoked_keys_in_window = 0;
  int64_t revoked_tokens_active = 0;      // access tokens revoked before their expiry that have not expired yet
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, security_report& x) {
  return f(caf::meta::type_name("security_report"), x.since_ms, x.by_type, x.by_address, x.by_account, x.revoked_keys,
           x.revoked_keys_in_window, x.revoked_tokens_active);
}

/// (security_report_atom, int64_t since_unix_ms, int32_t limit) -> security_report: the events since then, each
/// list at most `limit` (1..1000) entries. invalid_input for a bad limit.
using security_report_atom = caf::atom_constant<caf::atom("secreport")>;

} // namespace troupe
