#include "http/wishlist_routes.hpp"

#include "http/auth.hpp"
#include "http/body_schemas.hpp"
#include "http/cors.hpp"
#include "http/error_mapping.hpp"
#include "http/json_body.hpp"
#include "http/json_out.hpp"
#include "http/traffic.hpp"

#include "actors/messages.hpp"
#include "persistence/ids.hpp"

#include <charconv>

namespace troupe::http {

namespace {

constexpr int32_t max_json_page = 1000;
constexpr int32_t max_csv_page = 10000;

struct route_context {
  authenticator& auth;
  wishlist_route_options opts;
  json_schema body{schemas::wishlist};

  route_context(authenticator& a, wishlist_route_options o) : auth(a), opts(std::move(o)) {}
  caf::duration timeout() const { return caf::duration{auth.bridge().timeout()}; }
};

bool has_credential(const request& req) {
  return req.header("Authorization").has_value() || req.header("x-api-key").has_value();
}

/// Writes the entry (after COMMIT) and answers 201, the same whether it was new.
void add_entry(route_context& ctx, caf::event_based_actor* self, const std::shared_ptr<responder>& r,
               wishlist_entry entry) {
  auto db = ctx.auth.bridge().find(ctx.opts.db_query);
  if (!db) {
    r->fail(make_error(service_error::unavailable, "The database is restarting; retry shortly."));
    return;
  }
  auto email = entry.email;
  self->request(*db, ctx.timeout(), wishlist_add_atom::value, std::move(entry))
    .then(
      [r, email](bool) {
        auto res = json_response(201, json_of([&](json_writer& w) {
                                   w.StartObject();
                                   write_string(w, "object", "wishlist_entry");
                                   write_string(w, "email", email);
                                   w.Key("listed");
                                   w.Bool(true);
                                   w.EndObject();
                                 }));
        r->send(std::move(res.header("Cache-Control", "no-store")));
      },
      [r](caf::error& err) { r->fail(err); });
}

void post_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  if (ctx.opts.cors)
    ctx.opts.cors->apply(r, false);
  auto body = validated_json_body(r, ctx.body);
  if (!body)
    return;
  wishlist_entry entry;
  entry.email = normalise_email(string_member(*body, "email"));
  if (entry.email.empty()) {
    r->send(error_response(service_error::invalid_input, "email is not a valid email address.", r->req().id, "email"));
    return;
  }
  entry.lang = string_member(*body, "lang");
  entry.source = string_member(*body, "source");
  entry.note = string_member(*body, "note");
  for (const auto* field : {&entry.source, &entry.note})
    if (field->find('\0') != std::string::npos) {
      r->send(error_response(service_error::invalid_input, "Strings must not contain NUL characters.", r->req().id,
                             field == &entry.source ? "source" : "note"));
      return;
    }
  entry.ip = valid_ip(ctx.auth.client_ip(r->req()));
  if (has_credential(r->req())) {
    ctx.auth.authenticate(r, [&ctx, r, entry](caf::event_based_actor* self, const identity& who) mutable {
      entry.user_id = who.user_id;
      add_entry(ctx, self, r, std::move(entry));
    });
    return;
  }
  auto subject = "ip:" + ctx.auth.client_ip(r->req());
  ctx.auth.bridge().run(r, [&ctx, r, entry, subject](caf::event_based_actor* self) {
    auto* traffic = ctx.auth.traffic();
    if (!traffic) {
      add_entry(ctx, self, r, entry);
      return;
    }
    traffic->limit(self, r, "auth", subject, [&ctx, self, r, entry] { add_entry(ctx, self, r, entry); });
  });
}

bool wants_csv(const request& req) {
  auto accept = req.header("Accept").value_or("");
  return accept.find("text/csv") != std::string::npos;
}

std::string time_text(int64_t created_at_us) {
  return rfc3339_from_ms(created_at_us / 1000);
}

std::string csv_page(const std::vector<wishlist_entry>& entries) {
  std::string out = "email,lang,source,note,user_id,ip,created_at,id\r\n";
  for (const auto& e : entries) {
    for (const auto* cell : {&e.email, &e.lang, &e.source, &e.note, &e.user_id, &e.ip}) {
      out += csv_cell(*cell);
      out += ',';
    }
    out += time_text(e.created_at_us);
    out += ',';
    out += e.id;
    out += "\r\n";
  }
  return out;
}

std::string json_page(const std::vector<wishlist_entry>& entries, const std::string& next) {
  return json_of([&](json_writer& w) {
    w.StartObject();
    write_string(w, "object", "list");
    w.Key("data");
    w.StartArray();
    for (const auto& e : entries) {
      w.StartObject();
      write_string(w, "id", e.id);
      write_string(w, "email", e.email);
      write_string_or_null(w, "lang", e.lang);
      write_string_or_null(w, "source", e.source);
      write_string_or_null(w, "note", e.note);
      write_string_or_null(w, "user_id", e.user_id);
      write_string_or_null(w, "ip", e.ip);
      write_string(w, "created_at", time_text(e.created_at_us));
      w.EndObject();
    }
    w.EndArray();
    write_string_or_null(w, "next_cursor", next);
    w.EndObject();
  });
}

void list_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  bool csv = wants_csv(r->req());
  auto limit = int_query_param(r, "limit", 100, 1, csv ? max_csv_page : max_json_page);
  if (!limit)
    return;
  wishlist_cursor after;
  if (auto raw = r->req().query_param("cursor"); raw && !raw->empty()) {
    auto parsed = parse_wishlist_cursor(*raw);
    if (!parsed) {
      r->send(error_response(service_error::invalid_input, "cursor is not one this server gave.", r->req().id,
                             "cursor"));
      return;
    }
    after = std::move(*parsed);
  }
  ctx.auth.require_admin(r, [&ctx, r, csv, limit = *limit, after](caf::event_based_actor* self, const identity&) {
    auto db = ctx.auth.bridge().find(ctx.opts.db_query);
    if (!db) {
      r->fail(make_error(service_error::unavailable, "The database is restarting; retry shortly."));
      return;
    }
    self->request(*db, ctx.timeout(), wishlist_list_atom::value, after, limit)
      .then(
        [r, csv, limit](std::vector<wishlist_entry>& entries) {
          std::string next;
          if (static_cast<int32_t>(entries.size()) == limit && !entries.empty())
            next = wishlist_cursor_text({entries.back().created_at_us, entries.back().id});
          response res = csv ? response{200, csv_page(entries), "text/csv; charset=utf-8", {}}
                             : json_response(200, json_page(entries, next));
          if (!next.empty())
            res.header("Link", "</api/wishlist?limit=" + std::to_string(limit) + "&cursor=" + next + ">; rel=\"next\"");
          res.header("Vary", "Accept");
          r->send(std::move(res.header("Cache-Control", "no-store")));
        },
        [r](caf::error& err) { r->fail(err); });
  });
}

} // namespace

std::string csv_cell(const std::string& text) {
  std::string cell;
  if (!text.empty() && (text[0] == '=' || text[0] == '+' || text[0] == '-' || text[0] == '@' || text[0] == '\t'
                        || text[0] == '\r'))
    cell = "'";
  cell += text;
  if (cell.find_first_of(",\"\r\n") == std::string::npos)
    return cell;
  std::string quoted = "\"";
  for (char c : cell) {
    if (c == '"')
      quoted += '"';
    quoted += c;
  }
  quoted += '"';
  return quoted;
}

std::string wishlist_cursor_text(const wishlist_cursor& cursor) {
  return std::to_string(cursor.created_at_us) + "_" + cursor.id;
}

std::optional<wishlist_cursor> parse_wishlist_cursor(const std::string& text) {
  auto sep = text.find('_');
  if (sep == std::string::npos || sep == 0)
    return std::nullopt;
  wishlist_cursor out;
  auto [end, ec] = std::from_chars(text.data(), text.data() + sep, out.created_at_us);
  if (ec != std::errc{} || end != text.data() + sep || out.created_at_us < 0)
    return std::nullopt;
  out.id = text.substr(sep + 1);
  if (!is_uuid(out.id))
    return std::nullopt;
  return out;
}

void add_wishlist_routes(router& routes, authenticator& auth, const wishlist_route_options& options) {
  auto ctx = std::make_shared<route_context>(auth, options);
  routes.add("POST", "/api/wishlist", [ctx](const std::shared_ptr<responder>& r) { post_route(*ctx, r); });
  routes.add("GET", "/api/wishlist", [ctx](const std::shared_ptr<responder>& r) { list_route(*ctx, r); });
  routes.add("OPTIONS", "/api/wishlist", [ctx](const std::shared_ptr<responder>& r) { answer_preflight(ctx->opts.cors.get(), r); });
}

} // namespace troupe::http
