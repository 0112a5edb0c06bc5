// bench_copy: the direct-COPY reference of `make bench-db` (bench/db.sh).
//
// Streams rows into funnel_events over ONE connection with COPY (pqxx::stream_to), in transactions of --batch
// rows, for --seconds, and prints one line on stdout:
//
//   rows=N seconds=S rows_per_second=R
//
// The rows have the shape of the rows Troupe writes for the bench's POST /api/events bodies (same columns, in the
// order persistence/batch_commit.cpp COPYs them): a random v4 uuid id, user_id = --user-id (NULL without it; Troupe
// stamps the caller's user id on every row, so bench/db.sh passes its bench user's), ip 127.0.0.1, event "bench",
// session_id "bench-NNNN", source and lang NULL, properties {"i":N}, occurred_at = the transaction's start time
// (RFC 3339, UTC, microseconds, as Troupe stores rows without their own timestamp), and one request id per
// transaction (Troupe gives the 1000 events of one batch request one request id).
//
// The schema is created first if missing (troupe::migrate_database), so the tool works on an empty database.
// Exit status: 0 on success, 1 on a database error, 2 on a bad command line.

#include "persistence/ids.hpp"
#include "persistence/migrations.hpp"

#include <pqxx/pqxx>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iostream>
#include <random>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

namespace {

const char* usage = R"(Usage: bench_copy [--url URL] [--seconds N] [--batch ROWS] [--user-id UUID]

COPYs rows shaped like Troupe's funnel events into funnel_events over one connection, ROWS per transaction, for
N seconds (default 10; a transaction under way at the deadline is finished and counted), then prints
"rows=N seconds=S rows_per_second=R". URL defaults to $TROUPE_DATABASE_URL; ROWS to 1000. The rows' user_id is
UUID (an existing user: the column references users), NULL without --user-id.
)";

[[noreturn]] void bad_usage(const std::string& message) {
  std::cerr << "bench_copy: " << message << "\n" << usage;
  std::exit(2);
}

/// A positive integer option value, or exit 2.
long long positive(const std::string& name, const std::string& value, long long max) {
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno != 0 || n < 1 || n > max)
    bad_usage(name + " must be an integer from 1 to " + std::to_string(max) + ", not '" + value + "'");
  return n;
}

} // namespace

int main(int argc, char** argv) {
  std::string url;
  if (const char* env = std::getenv("TROUPE_DATABASE_URL"))
    url = env;
  std::string user_id;
  long long seconds = 10;
  long long batch = 1000;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << usage;
      return 0;
    }
    if (arg != "--url" && arg != "--seconds" && arg != "--batch" && arg != "--user-id")
      bad_usage("unknown argument '" + arg + "'");
    if (i + 1 >= argc)
      bad_usage(arg + " needs a value");
    std::string value = argv[++i];
    if (arg == "--url")
      url = value;
    else if (arg == "--user-id")
      user_id = value;
    else if (arg == "--seconds")
      seconds = positive(arg, value, 86400);
    else
      batch = positive(arg, value, 10000000);
  }
  if (url.empty())
    bad_usage("no database: pass --url or set TROUPE_DATABASE_URL");

  auto migrated = troupe::migrate_database(url);
  if (auto* error = std::get_if<std::string>(&migrated)) {
    std::cerr << "bench_copy: could not prepare the schema: " << *error << "\n";
    return 1;
  }

  const std::vector<std::string> columns{"id",     "user_id", "ip",         "event",       "session_id",
                                         "source", "lang",    "properties", "occurred_at", "request_id"};
  std::mt19937_64 random{std::random_device{}()};
  char id_prefix[16];
  std::snprintf(id_prefix, sizeof(id_prefix), "%08x", static_cast<unsigned>(random()));

  uint64_t rows = 0;
  uint64_t transactions = 0;
  std::chrono::duration<double> elapsed{};
  try {
    pqxx::connection conn{url};
    const char* user = user_id.empty() ? nullptr : user_id.c_str();
    std::string session_id;
    std::string properties;
    auto start = std::chrono::steady_clock::now();
    auto deadline = start + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      char request_id[32];
      std::snprintf(request_id, sizeof(request_id), "%s-%012llx", id_prefix,
                    static_cast<unsigned long long>(transactions));
      auto occurred_at = troupe::utc_now_rfc3339();
      pqxx::work tx{conn};
      pqxx::stream_to copy{tx, "funnel_events", columns};
      for (long long i = 0; i < batch; ++i) {
        auto n = rows + static_cast<uint64_t>(i);
        char session[16];
        std::snprintf(session, sizeof(session), "bench-%04u", static_cast<unsigned>(n % 1000));
        session_id = session;
        properties = "{\"i\":" + std::to_string(n) + "}";
        auto id = troupe::random_uuid(random);
        copy << std::make_tuple(id.c_str(), user, "127.0.0.1", "bench", session_id.c_str(),
                                static_cast<const char*>(nullptr), static_cast<const char*>(nullptr),
                                properties.c_str(), occurred_at.c_str(), static_cast<const char*>(request_id));
      }
      copy.complete();
      tx.commit();
      rows += static_cast<uint64_t>(batch);
      ++transactions;
    }
    elapsed = std::chrono::steady_clock::now() - start;
  } catch (const std::exception& e) {
    std::cerr << "bench_copy: " << e.what() << "\n";
    return 1;
  }

  double secs = elapsed.count();
  std::printf("rows=%llu seconds=%.3f rows_per_second=%.0f\n", static_cast<unsigned long long>(rows), secs,
              secs > 0 ? static_cast<double>(rows) / secs : 0.0);
  return 0;
}
