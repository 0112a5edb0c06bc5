#pragma once
// The libpqxx side of persistence/migrations.hpp, for code inside persistence/ only (nothing outside this
// folder may include libpqxx).

#include "persistence/migrations.hpp"

#include <pqxx/connection>

#include <vector>

namespace troupe {

/// Applies the pending ones of `migrations` (ascending versions) on `conn` under pg_advisory_lock(
/// migration_lock_key), each in its own transaction with its schema_migrations row, creating schema_migrations
/// first if needed. Returns the versions applied now, empty when up to date or when the database records a
/// version not in `migrations` (then nothing is applied and a warning is logged). Throws the pqxx exception of
/// the first failure (e.g. pqxx::sql_error, pqxx::broken_connection); the failing migration is rolled back and
/// logged with its version. `conn` must not have a transaction open. Blocks while another session migrates.
std::vector<int> apply_migrations(pqxx::connection& conn, const std::vector<migration>& migrations);

/// apply_migrations(conn, all_migrations()).
std::vector<int> apply_migrations(pqxx::connection& conn);

} // namespace troupe
