#include "http/write_routes.hpp"

#include "http/auth.hpp"
#include "http/body_schemas.hpp"
#include "http/error_mapping.hpp"
#include "config/hashing.hpp"
#include "http/json_body.hpp"
#include "config/json_schema.hpp"
#include "http/traffic.hpp"

#include "persistence/messages.hpp"

#include <cstdio>
#include <ctime>

namespace troupe::http {

namespace {

constexpr size_t max_properties_bytes = 8 * 1024;

bool contains_nul(const rapidjson::Value& v) {
  if (v.IsString())
    return std::char_traits<char>::find(v.GetString(), v.GetStringLength(), '\0') != nullptr;
  if (v.IsArray()) {
    for (const auto& item : v.GetArray())
      if (contains_nul(item))
        return true;
  } else if (v.IsObject()) {
    for (const auto& member : v.GetObject())
      if (contains_nul(member.name) || contains_nul(member.value))
        return true;
  }
  return false;
}


/// Validates an optional Idempotency-Key and fills the request's key, scope and hash. Answers 400 and returns false
/// when the key is malformed.
bool take_idempotency_key(const std::shared_ptr<responder>& r, write_request& out) {
  const auto& req = r->req();
  auto key = req.header("Idempotency-Key");
  if (!key)
    return true;  // no key: nothing to compare a retry with, so no hash to compute
  bool printable = !key->empty() && key->size() <= 255;
  for (unsigned char c : *key)
    printable = printable && c >= 0x21 && c <= 0x7E;
  if (!printable) {
    r->send(error_response(service_error::invalid_input,
                           "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces.", req.id,
                           "Idempotency-Key"));
    return false;
  }
  out.idempotency_key = *key;
  out.request_hash = sha256_hex(req.route + "\n" + req.body);
  return true;
}

void answer_invalid(const std::shared_ptr<responder>& r, const std::string& param, const std::string& message) {
  r->send(error_response(service_error::invalid_input, message, r->req().id, param));
}

/// Checks a parsed body against its schema and for NUL characters (PostgreSQL text and jsonb refuse them);
/// answers 400 naming the field and returns false when it fails.
bool valid_body(const std::shared_ptr<responder>& r, const json_schema& schema, const rapidjson::Value& doc) {
  if (auto bad = schema.validate(doc)) {
    answer_invalid(r, bad->param, bad->message);
    return false;
  }
  if (contains_nul(doc)) {
    answer_invalid(r, "", "Strings must not contain NUL characters.");
    return false;
  }
  return true;
}

/// Fills an event row from one validated event object; answers 400 and returns false on a semantic error.
bool to_event_row(const std::shared_ptr<responder>& r, const rapidjson::Value& obj, const std::string& prefix,
                  event_row& row) {
  const auto& req = r->req();
  row.event = string_member(obj, "event");
  row.session_id = string_member(obj, "session_id");
  row.source = string_member(obj, "source");
  row.lang = string_member(obj, "lang");
  row.occurred_at = string_member(obj, "occurred_at");
  if (!row.occurred_at.empty() && !is_rfc3339(row.occurred_at)) {
    answer_invalid(r, prefix + "occurred_at",
                   prefix + "occurred_at must be an RFC 3339 date-time such as 2026-11-21T10:00:00Z.");
    return false;
  }
  if (auto props = obj.FindMember("properties"); props != obj.MemberEnd()) {
    row.properties = to_json(props->value);
    if (row.properties.size() > max_properties_bytes) {
      answer_invalid(r, prefix + "properties", prefix + "properties must be at most 8 KiB of JSON.");
      return false;
    }
  }
  row.request_id = req.id;
  return true;
}

/// Common tail of both routes: authenticate, stamp the caller's identity and address (behind trusted proxies) on the
/// rows (never taken from the body), hand the request to the writer; 201 with the committed (or replayed) result.
void write(authenticator& auth, const write_route_options& options, const std::shared_ptr<responder>& r,
           write_request request) {
  if (auth.traffic() && auth.traffic()->shed(r, true))
    return;
  auth.authenticate(r, [&auth, options, r, request = std::move(request)](caf::event_based_actor* self,
                                                                        const identity& who) mutable {
    request.scope = "user:" + who.user_id;
    auto ip = valid_ip(auth.client_ip(r->req()));
    for (auto& e : request.events) {
      e.user_id = who.user_id;
      e.ip = ip;
    }
    for (auto& f : request.feedback) {
      f.user_id = who.user_id;
      f.ip = ip;
    }
    auto writer = auth.bridge().find(options.writer);
    if (!writer) {
      r->fail(make_error(service_error::unavailable, "The DB writer is restarting; retry shortly."));
      return;
    }
    self->request(*writer, caf::duration{auth.bridge().timeout()}, write_atom::value, std::move(request))
      .then(
        [r](write_result& done) {
          r->mark("database");
          auto res = json_response(201, std::move(done.result));
          if (done.replayed)
            res.header("Idempotent-Replayed", "true");
          r->send(std::move(res));
        },
        [r](caf::error& err) { r->fail(err); });
  });
}

} // namespace

bool is_rfc3339(const std::string& text) {
  int year, month, day, hour, minute, second;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &month, &day, &hour, &minute, &second, &consumed)
        != 6
      || consumed != 19 || text[4] != '-' || text[7] != '-' || (text[10] != 'T' && text[10] != 't'))
    return false;
  size_t pos = 19;
  if (pos < text.size() && text[pos] == '.') {
    size_t digits = 0;
    while (++pos < text.size() && text[pos] >= '0' && text[pos] <= '9')
      ++digits;
    if (digits == 0 || digits > 9)
      return false;
  }
  auto zone = text.substr(pos);
  bool zone_ok = zone == "Z" || zone == "z"
                 || (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':'
                     && std::isdigit(static_cast<unsigned char>(zone[1])) && std::isdigit(static_cast<unsigned char>(zone[2]))
                     && std::isdigit(static_cast<unsigned char>(zone[4])) && std::isdigit(static_cast<unsigned char>(zone[5]))
                     && std::stoi(zone.substr(1, 2)) < 24 && std::stoi(zone.substr(4, 2)) < 60);
  if (!zone_ok || year < 1 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 60)
    return false;
  // The day must exist in that month (timegm normalises 2026-02-30 to March).
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = 12;
  ::timegm(&tm);
  return tm.tm_mday == day && tm.tm_mon == month - 1;
}

void add_write_routes(router& routes, authenticator& auth, const write_route_options& options) {
  auto single = std::make_shared<json_schema>(schemas::event);
  auto batch = std::make_shared<json_schema>(schemas::event_batch());
  auto feedback = std::make_shared<json_schema>(schemas::feedback);

  routes.add("POST", "/api/events", [&auth, options, single, batch](const std::shared_ptr<responder>& r) {
    auto doc = parse_json_body(r);
    if (!doc)
      return;
    bool is_batch = doc->IsObject() && doc->HasMember("events");
    write_request request;
    if (!valid_body(r, *(is_batch ? batch : single), *doc) || !take_idempotency_key(r, request))
      return;
    if (is_batch) {
      const auto& events = (*doc)["events"];
      request.events.resize(events.Size());
      for (rapidjson::SizeType i = 0; i < events.Size(); ++i)
        if (!to_event_row(r, events[i], "events[" + std::to_string(i) + "].", request.events[i]))
          return;
    } else {
      request.events.resize(1);
      if (!to_event_row(r, *doc, "", request.events[0]))
        return;
    }
    request.result = R"({"accepted":)" + std::to_string(request.events.size()) + "}";
    write(auth, options, r, std::move(request));
  });

  routes.add("POST", "/api/feedback", [&auth, options, feedback](const std::shared_ptr<responder>& r) {
    auto doc = parse_json_body(r);
    if (!doc)
      return;
    write_request request;
    if (!valid_body(r, *feedback, *doc) || !take_idempotency_key(r, request))
      return;
    feedback_row row;
    row.rating = (*doc)["rating"].GetInt();
    row.comment = string_member(*doc, "comment");
    row.lang = string_member(*doc, "lang");
    row.request_id = r->req().id;
    request.feedback.push_back(std::move(row));
    request.result = R"({"status":"received"})";
    write(auth, options, r, std::move(request));
  });
}

} // namespace troupe::http
