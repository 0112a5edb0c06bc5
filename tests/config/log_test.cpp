// Tests of config/log.cpp: every line is one JSON object (ts, level, msg, then the fields), whatever the fields hold,
// and the levels are spelled as the integration harness reads them ("error", "warning": tests/integration/harness.cpp).

#include "config/log.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace troupe;

namespace {

/// Runs `body` with stdout redirected to a temporary file (mkstemp) and returns what was written, one entry a line.
template <class F>
std::vector<std::string> captured_lines(F body) {
  char path[] = "/tmp/troupe-log-test-XXXXXX";
  int fd = ::mkstemp(path);
  EXPECT_GE(fd, 0);
  std::fflush(stdout);
  int saved = ::dup(STDOUT_FILENO);
  ::dup2(fd, STDOUT_FILENO);
  body();
  std::fflush(stdout);
  ::dup2(saved, STDOUT_FILENO);
  ::close(saved);
  ::close(fd);
  std::ifstream in{path};
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  ::unlink(path);
  return lines;
}

std::string escaped(std::string_view text) {
  std::string out;
  log::append_json_escaped(out, text);
  return out;
}

// Quotes, backslashes and every control character are escaped; other bytes pass unchanged.
TEST(Log, EscapesJsonStrings) {
  EXPECT_EQ(escaped(R"(say "hi" \ bye)"), R"(say \"hi\" \\ bye)");
  EXPECT_EQ(escaped("a\nb\rc\td"), R"(a\nb\rc\td)");
  EXPECT_EQ(escaped(std::string("\x00\x01\x1f", 3)), R"(\u0000\u0001\u001f)");
  EXPECT_EQ(escaped("r\xC3\xA9sum\xC3\xA9"), "r\xC3\xA9sum\xC3\xA9");
}

// Fields of every type follow "msg" as JSON members; a value cannot end its string and add a member of its own.
TEST(Log, FieldsAreJsonMembers) {
  log::fields f;
  f.add("s", R"(x","level":"error)").add("i", int64_t{-3}).add("u", uint64_t{7}).add("d", 1.5).add("b", true);
  f.add("nan", 0.0 / 0.0);
  rapidjson::Document doc;
  doc.Parse(("{\"msg\":\"m\"" + f.json() + "}").c_str());
  ASSERT_FALSE(doc.HasParseError()) << f.json();
  EXPECT_EQ(std::string{doc["s"].GetString()}, R"(x","level":"error)");
  EXPECT_FALSE(doc.HasMember("level"));
  EXPECT_EQ(doc["i"].GetInt64(), -3);
  EXPECT_EQ(doc["u"].GetUint64(), 7u);
  EXPECT_DOUBLE_EQ(doc["d"].GetDouble(), 1.5);
  EXPECT_TRUE(doc["b"].GetBool());
  EXPECT_TRUE(doc["nan"].IsNull());
}

// A written line is one JSON object: ts (UTC, milliseconds), level as spdlog names it, msg, the fields. Lines below
// the configured level are not written.
TEST(Log, LinesAreJsonObjectsWithTheHarnessLevelNames) {
  auto lines = captured_lines([] {
    log::setup(log::level::info);
    log::debug("hidden");
    log::info("hello", log::fields{}.add("n", 1));
    log::warn("careful");
    log::error("broken \"thing\"", log::fields{}.add("error", "line\nbreak"));
    log::shutdown();
  });
  ASSERT_EQ(lines.size(), 3u);
  const char* levels[] = {"info", "warning", "error"};
  const char* messages[] = {"hello", "careful", "broken \"thing\""};
  for (size_t i = 0; i < lines.size(); ++i) {
    rapidjson::Document doc;
    doc.Parse(lines[i].c_str());
    ASSERT_FALSE(doc.HasParseError()) << lines[i];
    EXPECT_EQ(std::string{doc["level"].GetString()}, levels[i]);
    EXPECT_EQ(std::string{doc["msg"].GetString()}, messages[i]);
    std::string ts = doc["ts"].GetString();
    EXPECT_EQ(ts.size(), 24u) << ts; // 2026-01-01T00:00:00.000Z
    EXPECT_EQ(ts.back(), 'Z');
    // The harness matches these exact spellings.
    EXPECT_NE(lines[i].find(std::string{"\"level\":\""} + levels[i] + "\""), std::string::npos);
  }
  EXPECT_EQ(rapidjson::Document{}.Parse(lines[2].c_str())["error"].GetString(), std::string{"line\nbreak"});
}

// Level names: the six the option accepts, nothing else.
TEST(Log, ParsesLevelNames) {
  log::level lvl = log::level::off;
  for (const char* name : {"trace", "debug", "info", "warn", "error", "off"})
    EXPECT_TRUE(log::parse_level(name, lvl)) << name;
  EXPECT_EQ(lvl, log::level::off);
  EXPECT_TRUE(log::parse_level("warn", lvl));
  EXPECT_EQ(lvl, log::level::warn);
  for (const char* name : {"", "WARN", "warning", "critical", "info "})
    EXPECT_FALSE(log::parse_level(name, lvl)) << name;
}

} // namespace

// Inside a trace_scope every line carries the trace id (unless the line names one itself); scopes nest and end.
TEST(Log, TraceScopesAddTheTraceId) {
  auto lines = captured_lines([] {
    log::setup(log::level::info);
    log::info("before");
    {
      log::trace_scope outer{"aaaa"};
      log::info("outer");
      {
        log::trace_scope inner{"bbbb"};
        log::info("inner");
        log::info("own", log::fields{}.add("trace_id", "cccc"));
      }
      log::info("outer again");
    }
    log::info("after");
    log::shutdown();
  });
  ASSERT_EQ(lines.size(), 6u);
  auto trace_of = [](const std::string& line) {
    rapidjson::Document doc;
    doc.Parse(line.c_str());
    return doc.HasMember("trace_id") ? std::string{doc["trace_id"].GetString()} : std::string{"-"};
  };
  EXPECT_EQ(trace_of(lines[0]), "-");
  EXPECT_EQ(trace_of(lines[1]), "aaaa");
  EXPECT_EQ(trace_of(lines[2]), "bbbb");
  EXPECT_EQ(trace_of(lines[3]), "cccc");
  EXPECT_EQ(lines[3].find("bbbb"), std::string::npos) << "one trace_id member";
  EXPECT_EQ(trace_of(lines[4]), "aaaa");
  EXPECT_EQ(trace_of(lines[5]), "-");
}

// A line budget lets `per_second` lines through in a second and counts the rest.
TEST(Log, LineBudgetBoundsLinesPerSecond) {
  log::line_budget budget{3};
  int taken = 0;
  for (int i = 0; i < 10; ++i)
    taken += budget.take();
  // Ten takes within one second, unless the second turned in between (then at most twice the budget).
  EXPECT_GE(taken, 3);
  EXPECT_LE(taken, 6);
  EXPECT_EQ(budget.suppressed(), static_cast<uint64_t>(10 - taken));
  EXPECT_EQ(budget.suppressed(), 0u) << "read and reset";
}
