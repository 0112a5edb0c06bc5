#pragma once
// Internal to persistence/ (it takes libpqxx): committing a batch of write requests on one connection.

#include "persistence/messages.hpp"

#include <pqxx/pqxx>

#include <vector>

namespace troupe {

/// Prepares the statements commit_batch uses. Call once on every new connection.
void prepare_write_statements(pqxx::connection& conn);

/// Commits `batch` and returns one outcome per request, in order.
///
/// Fast path: one transaction for the whole batch, rows streamed with COPY. If it fails for any reason other than
/// the connection, every request is retried in a transaction of its own (INSERT ... ON CONFLICT DO NOTHING), so a
/// bad request fails alone and the others commit.
///
/// Throws pqxx::broken_connection or pqxx::in_doubt_error when the connection is lost: the outcome of the batch is
/// then unknown, and sending it again is safe (row ids and idempotency keys make a retry write nothing twice).
std::vector<write_outcome> commit_batch(pqxx::connection& conn, const std::vector<write_request>& batch);

} // namespace troupe
