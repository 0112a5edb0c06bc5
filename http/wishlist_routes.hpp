#pragma once
// The pro wishlist (table pro_wishlist, persistence/wishlist.hpp).
//
//   POST /api/wishlist {email, lang?, source?, note?}
//     Anyone, signed in or not. Anonymous callers take a token of the "auth" policy for their address (the
//     limit sign-ups have); a bearer credential, when sent, must be valid and puts the caller's user id on the entry.
//     201 {object:"wishlist_entry", email, listed:true} once the entry is committed: the same answer whether the
//     email was new or already listed (the first submission of an email wins; nothing tells a caller whether
//     somebody else listed an address, and a retry is harmless). 400 naming the field for a bad body or email.
//
//   GET /api/wishlist ?limit=1..1000 (100) &cursor=<next_cursor of the previous page>      (admin)
//     200 {object:"list", data:[{id, email, lang, source, note, user_id, ip, created_at}], next_cursor}, newest
//     first; with Accept: text/csv, the same page as CSV (limit up to 10000): a header line, then one line per
//     entry (RFC 4180 quoting; a cell that a spreadsheet would run as a formula is prefixed with '). A full page
//     has a next_cursor, also given as Link: <...>; rel="next"; the last page has null.

#include "http/router.hpp"

#include "actors/persistence_supervisor.hpp"
#include "persistence/wishlist.hpp"

#include <memory>
#include <optional>
#include <string>

namespace troupe::http {

class authenticator;
class cors_policy;

struct wishlist_route_options {
  actor_name<db_query_actor> db_query = db_query_name;
  std::shared_ptr<cors_policy> cors; // the wishlist form is usually on another origin (a marketing page)
};

void add_wishlist_routes(router& routes, authenticator& auth, const wishlist_route_options& options);

/// One CSV cell (RFC 4180): quoted when it holds a comma, quote or line break; a cell that starts with = + - @ tab
/// or CR is prefixed with ' so that a spreadsheet shows it instead of running it (OWASP's CSV injection advice).
std::string csv_cell(const std::string& text);

/// The listing's opaque cursor: "<created_at in unix microseconds>_<id>", and back (nullopt when malformed).
std::string wishlist_cursor_text(const wishlist_cursor& cursor);
std::optional<wishlist_cursor> parse_wishlist_cursor(const std::string& text);

} // namespace troupe::http
