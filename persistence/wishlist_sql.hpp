#pragma once
// Internal to persistence/ (it takes libpqxx): the SQL behind persistence/wishlist.hpp. As in accounts_sql.hpp, it
// runs in the caller's transaction and neither commits nor catches.

#include "persistence/wishlist.hpp"

#include <caf/expected.hpp>
#include <pqxx/pqxx>

namespace troupe::wishlist_sql {

void prepare_statements(pqxx::connection& conn);

caf::expected<bool> add(pqxx::transaction_base& tx, const wishlist_entry& entry);
caf::expected<std::vector<wishlist_entry>> list(pqxx::transaction_base& tx, const wishlist_cursor& after,
                                                int32_t limit);

} // namespace troupe::wishlist_sql
