#pragma once
// The pro wishlist (table pro_wishlist, migration 0010) behind typed messages. Registered by
// troupe::register_message_types. Send every message to "db.query"; each runs in one transaction on a connection
// actor and answers after COMMIT.

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

/// One entry. Strings that were not given are "" (NULL in the table).
struct wishlist_entry {
  std::string id;
  std::string user_id; // the signed-in submitter
  std::string email;   // normalised: trimmed, lower case
  std::string lang;
  std::string source;
  std::string note;
  std::string ip;
  int64_t created_at_us = 0; // unix microseconds (the listing's cursor needs the column's full precision)
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, wishlist_entry& x) {
  return f(caf::meta::type_name("wishlist_entry"), x.id, x.user_id, x.email, x.lang, x.source, x.note, x.ip,
           x.created_at_us);
}

/// Where a page of the listing starts: strictly older than (created_at_us, id). Empty id: the newest entries.
struct wishlist_cursor {
  int64_t created_at_us = 0;
  std::string id;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, wishlist_cursor& x) {
  return f(caf::meta::type_name("wishlist_cursor"), x.created_at_us, x.id);
}

/// (wishlist_add_atom, wishlist_entry) -> bool: true when the email was added, false when it was listed already (the
/// existing row is left as it was: the first submission of an email wins). The entry's id and created_at are ignored.
using wishlist_add_atom = caf::atom_constant<caf::atom("wishadd")>;
/// (wishlist_list_atom, wishlist_cursor after, int32_t limit) -> std::vector<wishlist_entry>: newest first, at most
/// `limit` (1..10000) entries older than `after`.
using wishlist_list_atom = caf::atom_constant<caf::atom("wishlist")>;

} // namespace troupe
