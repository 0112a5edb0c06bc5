// Tests of the integration harness itself (tests/integration/harness.cpp): what in a server's output fails a test
// (sanitizer reports always; error-level lines and supervisor restarts unless the test declared them), and that a
// real server's undeclared error line does fail the test that provoked it.

#include "tests/integration/harness.hpp"
#include "tests/persistence/scratch_database.hpp"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

using namespace troupe::testing;

namespace {

const std::string info_line = R"({"ts":"2026-01-01T00:00:00.000Z","level":"info","msg":"listening","port":1})";
const std::string warn_line = R"({"ts":"2026-01-01T00:00:00.000Z","level":"warning","msg":"slow"})";
const std::string error_line = R"({"ts":"2026-01-01T00:00:00.000Z","level":"error","msg":"write failed","error":"x"})";
const std::string critical_line = R"({"ts":"2026-01-01T00:00:00.000Z","level":"critical","msg":"boom"})";
const std::string restart_line =
  R"({"ts":"2026-01-01T00:00:00.000Z","level":"warning","msg":"actor failed","supervisor":"root","child":"db"})";
const std::string gave_up_line =
  R"({"ts":"2026-01-01T00:00:00.000Z","level":"error","msg":"supervisor gives up","supervisor":"root"})";

// Info and warning lines are the server's ordinary talk.
TEST(OutputFindings, OrdinaryLinesAreFine) {
  EXPECT_TRUE(output_findings(info_line + "\n" + warn_line + "\nplain text\n", {}).empty());
}

// Error and critical lines, a supervisor's restart and its giving up are findings, each once, in order.
TEST(OutputFindings, ErrorLinesAndRestartsAreFindings) {
  auto found =
    output_findings(info_line + "\n" + error_line + "\n" + critical_line + "\n" + restart_line + "\n" + gave_up_line, {});
  EXPECT_EQ(found, (std::vector<std::string>{error_line, critical_line, restart_line, gave_up_line}));
}

// CAF's report of a message no handler took is a protocol mismatch between two actors: a finding.
TEST(OutputFindings, UnexpectedMessagesAreFindings) {
  const std::string line = "*** unexpected message [id: 36, name: ws]: ('mailbox')";
  EXPECT_EQ(output_findings(info_line + "\n" + line + "\n", {}), std::vector<std::string>{line});
}

// A line containing a declared substring is not a finding; the others still are.
TEST(OutputFindings, DeclaredLinesAreAllowed) {
  auto found = output_findings(error_line + "\n" + restart_line + "\n", {"write failed"});
  EXPECT_EQ(found, std::vector<std::string>{restart_line});
  EXPECT_TRUE(output_findings(error_line + "\n" + restart_line + "\n", {"write failed", "\"child\":\"db\""}).empty());
}

// Sanitizer reports are findings whatever the test declared.
TEST(OutputFindings, SanitizerReportsCannotBeDeclaredAway) {
  const std::vector<std::string> reports = {
    "==123==ERROR: AddressSanitizer: heap-use-after-free on address 0x6020",
    "==123==ERROR: LeakSanitizer: detected memory leaks",
    "actors/x.cpp:10:5: runtime error: signed integer overflow",
    "WARNING: ThreadSanitizer: data race (pid=123)",
  };
  for (const auto& report : reports)
    EXPECT_EQ(output_findings(info_line + "\n" + report + "\n", {"AddressSanitizer", "runtime error", "Sanitizer"}),
              std::vector<std::string>{report});
}

std::string scratch_url;

/// A server whose funnel_events table was renamed away: a POST /api/events logs "write failed" at error level.
void provoke_write_failure(bool declare) {
  troupe_process::options opts;
  opts.env["TROUPE_DATABASE_URL"] = scratch_url;
  opts.args = {"--set", "limits.enabled=false"};
  if (declare)
    opts.expected_output = {"\"msg\":\"write failed\""};
  troupe_process t{opts};
  auto login = sign_up(t, "harness@example.com");
  scratch_database::execute_on(scratch_url, "ALTER TABLE funnel_events RENAME TO funnel_events_gone");
  auto res = http({"POST", t.url("/api/events"), R"({"event":"x"})",
                   {"Content-Type: application/json", "Authorization: Bearer " + json_string(login, "access_token")},
                   20000});
  EXPECT_EQ(res.status, 500) << res.body;
  EXPECT_TRUE(t.wait_for_output("\"msg\":\"write failed\"", std::chrono::seconds{10}));
  scratch_database::execute_on(scratch_url, "ALTER TABLE funnel_events_gone RENAME TO funnel_events");
}

// A real server's undeclared error-level line fails the test that provoked it (the harness's destructor reports it);
// the same line, declared, does not.
TEST(TroupeProcess, UndeclaredErrorLineFailsTheTest) {
  scratch_database db;
  ASSERT_TRUE(db.available()) << "no TROUPE_DATABASE_URL (make test provides a PostgreSQL)";
  scratch_url = db.url();
  EXPECT_NONFATAL_FAILURE(provoke_write_failure(false), "\"msg\":\"write failed\"");
  provoke_write_failure(true);
}

} // namespace
