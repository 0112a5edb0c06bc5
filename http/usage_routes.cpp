#include "http/usage_routes.hpp"

#include "http/auth.hpp"
#include "http/error_mapping.hpp"
#include "http/json_out.hpp"

#include "config/calendar.hpp"
#include "config/prices.hpp"
#include "persistence/ids.hpp"
#include "persistence/usage.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <charconv>
#include <chrono>
#include <ctime>

namespace troupe::http {

namespace {

constexpr int64_t max_report_days = 366;
constexpr auto db_timeout = std::chrono::seconds{10};

/// YYYY-MM-DD of days since 1970-01-01.
std::string day_text(int64_t days) {
  auto date = calendar::civil_from_days(days);
  char text[48];
  std::snprintf(text, sizeof text, "%04lld-%02u-%02u", static_cast<long long>(date.year), date.month, date.day);
  return text;
}

/// Days since 1970-01-01 of a YYYY-MM-DD date from 2000 to 9999 that exists, or nullopt.
std::optional<int64_t> parse_day(std::string_view text) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-')
    return std::nullopt;
  auto number = [&](size_t at, size_t length) -> std::optional<unsigned> {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data() + at, text.data() + at + length, value);
    if (ec != std::errc{} || end != text.data() + at + length)
      return std::nullopt;
    return value;
  };
  auto y = number(0, 4), m = number(5, 2), d = number(8, 2);
  if (!y || !m || !d || *y < 2000 || *m < 1 || *m > 12 || *d < 1)
    return std::nullopt;
  static const unsigned month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (*y % 4 == 0 && *y % 100 != 0) || *y % 400 == 0;
  if (*d > month_days[*m - 1] + (*m == 2 && leap ? 1 : 0))
    return std::nullopt;
  return calendar::days_from_civil(*y, *m, *d);
}

/// Pico-dollars of a decimal text with at most 12 decimals ("12.000000000001"); 0 if malformed (never: it comes
/// from numeric(30, 12)::text).
int64_t pusd_of(const std::string& text) {
  auto dot = text.find('.');
  int64_t whole = 0, fraction = 0;
  std::from_chars(text.data(), text.data() + (dot == std::string::npos ? text.size() : dot), whole);
  if (dot != std::string::npos) {
    auto digits = text.substr(dot + 1, 12);
    std::from_chars(digits.data(), digits.data() + digits.size(), fraction);
    for (size_t i = digits.size(); i < 12; ++i)
      fraction *= 10;
  }
  return whole * 1000000000000 + fraction;
}

void write_counts(json_writer& w, int64_t requests, int64_t prompt, int64_t completion, int64_t estimated,
                  const std::string& cost_usd) {
  w.Key("requests");
  w.Int64(requests);
  w.Key("prompt_tokens");
  w.Int64(prompt);
  w.Key("completion_tokens");
  w.Int64(completion);
  w.Key("total_tokens");
  w.Int64(prompt + completion);
  w.Key("estimated_requests");
  w.Int64(estimated);
  w.Key("cost_usd");
  // Exact: the decimal as summed, written as a JSON number (RawNumber would quote it).
  w.RawValue(cost_usd.c_str(), cost_usd.size(), rapidjson::kNumberType);
}

void bad_request(const std::shared_ptr<responder>& r, const std::string& message, const char* param) {
  r->send(error_response(service_error::invalid_input, message, r->req().id, param));
}

void usage_route(authenticator& auth, const actor_name<db_query_actor>& db_query, const std::shared_ptr<responder>& r) {
  const auto& req = r->req();
  auto today =
    std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count()
    / 86400;
  int64_t to = today;
  if (auto raw = req.query_param("to")) {
    auto day = parse_day(*raw);
    if (!day)
      return bad_request(r, "to must be a date YYYY-MM-DD (UTC).", "to");
    to = *day;
  }
  int64_t from = to - 29;
  if (auto raw = req.query_param("from")) {
    auto day = parse_day(*raw);
    if (!day)
      return bad_request(r, "from must be a date YYYY-MM-DD (UTC).", "from");
    from = *day;
  }
  if (from > to)
    return bad_request(r, "from must not be after to.", "from");
  if (to - from + 1 > max_report_days)
    return bad_request(r, "A report covers at most " + std::to_string(max_report_days) + " days.", "from");
  auto group_by = req.query_param("group_by").value_or("day");
  usage_grouping grouping;
  if (group_by == "model")
    grouping = usage_grouping::model;
  else if (group_by == "key")
    grouping = usage_grouping::key;
  else if (group_by == "day")
    grouping = usage_grouping::day;
  else
    return bad_request(r, "group_by must be model, key or day.", "group_by");
  auto asked_user = req.query_param("user_id").value_or("");
  if (!asked_user.empty() && !is_uuid(asked_user))
    return bad_request(r, "user_id must be a user's id (a UUID).", "user_id");
  auto from_day = day_text(from), to_day = day_text(to);

  auth.authenticate(r, [&auth, db_query, r, asked_user, from_day, to_day, group_by,
                        grouping](caf::event_based_actor* self, const identity& who) {
    auto user_id = asked_user.empty() ? who.user_id : asked_user;
    if (user_id != who.user_id && who.role != "admin") {
      r->fail(make_error(service_error::forbidden, "Only an admin may read another user's usage."));
      return;
    }
    auto db = auth.bridge().find(db_query);
    if (!db) {
      r->fail(make_error(service_error::unavailable, "The database is restarting; retry shortly."));
      return;
    }
    self
      ->request(*db, caf::duration{db_timeout}, usage_report_atom::value, user_id, from_day, to_day,
                static_cast<uint8_t>(grouping))
      .then(
        [r, user_id, from_day, to_day, group_by, grouping](std::vector<usage_group>& groups) {
          int64_t requests = 0, prompt = 0, completion = 0, estimated = 0, cost = 0;
          auto body = json_of([&](json_writer& w) {
            w.StartObject();
            write_string(w, "object", "usage");
            write_string(w, "user_id", user_id);
            write_string(w, "from", from_day);
            write_string(w, "to", to_day);
            write_string(w, "group_by", group_by);
            w.Key("data");
            w.StartArray();
            for (const auto& g : groups) {
              w.StartObject();
              if (grouping == usage_grouping::model) {
                write_string(w, "model", g.key);
              } else if (grouping == usage_grouping::day) {
                write_string(w, "day", g.key);
              } else {
                write_string_or_null(w, "key_id", g.key);
                write_string_or_null(w, "key_name", g.label);
              }
              write_counts(w, g.requests, g.prompt_tokens, g.completion_tokens, g.estimated, g.cost_usd);
              w.EndObject();
              requests += g.requests;
              prompt += g.prompt_tokens;
              completion += g.completion_tokens;
              estimated += g.estimated;
              cost += pusd_of(g.cost_usd);
            }
            w.EndArray();
            w.Key("total");
            w.StartObject();
            write_counts(w, requests, prompt, completion, estimated, config::usd_text(cost));
            w.EndObject();
            w.EndObject();
          });
          auto res = json_response(200, std::move(body));
          res.header("Cache-Control", "no-store");
          r->send(std::move(res));
        },
        [r](caf::error& err) { r->fail(err); });
  });
}

} // namespace

void add_usage_routes(router& routes, authenticator& auth, actor_name<db_query_actor> db_query) {
  routes.add("GET", "/api/usage",
             [&auth, db_query](const std::shared_ptr<responder>& r) { usage_route(auth, db_query, r); });
}

} // namespace troupe::http
