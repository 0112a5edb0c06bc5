#pragma once
// Retention of append-only tables, behind a typed message to "db.query" (persistence/query_router.hpp). The
// sweeper actor (actors/retention.hpp) decides when and how much; this is one bounded step of it.
// Registered by troupe::register_message_types.

#include <caf/atom.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace troupe {

/// A table with a retention period, and the column its rows are aged by.
struct retention_table {
  const char* table;
  const char* time_column;
};

/// Every table the retention step accepts:
///   security_events   by created_at (the first event of the row's minute)   security.retention_days
///   idempotency_keys  by created_at (a key is honoured for 24 h either way)  idempotency.retention_days
///   funnel_events     by received_at (our clock, not the client's)           events.retention_days
///   feedback          by created_at                                          feedback.retention_days
const std::vector<retention_table>& retention_tables();

/// (retention_delete_atom, std::string table, int64_t cutoff_unix_ms, int32_t max_rows) -> int64_t rows deleted:
/// deletes at most max_rows (1..100000) rows of `table` older than the cutoff, in one short transaction. Fewer than
/// max_rows deleted means none older remain (barring concurrent inserts of old rows). invalid_input for a table not
/// in retention_tables() or a bad max_rows; unavailable as for every query.
using retention_delete_atom = caf::atom_constant<caf::atom("retdelete")>;

} // namespace troupe
