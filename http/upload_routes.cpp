#include "http/upload_routes.hpp"

#include "http/auth.hpp"
#include "http/error_mapping.hpp"
#include "http/json_body.hpp"
#include "http/json_out.hpp"
#include "http/traffic.hpp"
#include "http/tus.hpp"

#include "actors/paths.hpp"
#include "persistence/ids.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace troupe::http {

namespace {

constexpr const char* uploads_path = "/api/uploads/";

struct route_context {
  authenticator& auth;
  upload_route_options opts;

  caf::duration timeout() const { return caf::duration{auth.bridge().timeout()}; }
};

response no_content(int status) {
  return response{status, "", "", {}};
}

void answer_invalid(const std::shared_ptr<responder>& r, const std::string& message, const std::string& param = "") {
  r->send(error_response(service_error::invalid_input, message, r->req().id, param));
}

/// What every tus request but OPTIONS starts with: Tus-Resumable on the answer, CORS, and the version check (412
/// with Tus-Version). False when it answered.
bool tus_prologue(route_context& ctx, const std::shared_ptr<responder>& r) {
  r->add_header("Tus-Resumable", tus::version);
  if (ctx.opts.cors)
    ctx.opts.cors->apply(r, false);
  auto version = r->req().header("Tus-Resumable");
  if (!version || *version != tus::version) {
    r->add_header("Tus-Version", tus::version);
    r->fail(make_error(service_error::precondition_failed,
                       "This server speaks tus 1.0.0: send Tus-Resumable: 1.0.0 (got "
                         + (version ? "\"" + *version + "\"" : std::string{"none"}) + ")."));
    return false;
  }
  return true;
}

/// Upload-Checksum, if sent, into the chunk; false (answered 400) when it is malformed or unsupported.
bool take_checksum(const std::shared_ptr<responder>& r, upload_chunk& chunk) {
  auto header = r->req().header("Upload-Checksum");
  if (!header)
    return true;
  std::string why;
  auto parsed = tus::parse_checksum(*header, why);
  if (!parsed) {
    answer_invalid(r, why, "Upload-Checksum");
    return false;
  }
  chunk.checksum_algorithm = parsed->algorithm;
  chunk.checksum = parsed->digest;
  return true;
}

/// The offset headers of an answer about `s`.
void add_progress_headers(response& res, const upload_status& s) {
  res.header("Upload-Offset", std::to_string(s.offset));
  if (!s.completed)
    res.header("Upload-Expires", tus::http_date(s.expires_at_ms));
  if (!s.job_id.empty())
    res.header("Troupe-Job-Id", s.job_id);
}

/// Inside a bridge worker: the upload router, or 503 while it restarts.
std::optional<upload_router_actor> upload_router(route_context& ctx, const std::shared_ptr<responder>& r) {
  auto router = ctx.auth.bridge().find(ctx.opts.router);
  if (!router)
    r->fail(make_error(service_error::unavailable, "The upload router is restarting; retry shortly."));
  return router;
}

/// Inside a bridge worker: asks the upload router (xs...) and answers with to_response(reply), or the error.
template <class Reply, class ToResponse, class... Ts>
void ask_router(route_context& ctx, caf::event_based_actor* self, const std::shared_ptr<responder>& r,
                ToResponse to_response, Ts&&... xs) {
  auto router = upload_router(ctx, r);
  if (!router)
    return;
  self->request(*router, ctx.timeout(), std::forward<Ts>(xs)...)
    .then([r, to_response](Reply& reply) { r->send(to_response(reply)); }, [r](caf::error& err) { r->fail(err); });
}

// --- OPTIONS -------------------------------------------------------------------------------------------------------

void options_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  if (ctx.opts.cors)
    ctx.opts.cors->apply(r, true);
  auto res = no_content(204);
  res.header("Tus-Version", tus::version);
  res.header("Tus-Extension", tus::extensions);
  res.header("Tus-Max-Size", std::to_string(ctx.opts.max_size_bytes));
  res.header("Tus-Checksum-Algorithm", tus::checksum_algorithms);
  r->send(std::move(res));
}

// --- POST (creation, creation-with-upload) ---------------------------------------------------------------------------

/// Parses the creation headers into `spec`; false when it answered (400 or 413).
bool parse_creation(route_context& ctx, const std::shared_ptr<responder>& r, upload_spec& spec) {
  const auto& req = r->req();
  auto length = req.header("Upload-Length");
  if (!length) {
    answer_invalid(r,
                   req.header("Upload-Defer-Length")
                     ? "Deferred lengths (creation-defer-length) are not supported: send Upload-Length."
                     : "Upload-Length is required.",
                   "Upload-Length");
    return false;
  }
  auto parsed_length = tus::parse_size(*length);
  if (!parsed_length) {
    answer_invalid(r, "Upload-Length must be a non-negative integer.", "Upload-Length");
    return false;
  }
  if (*parsed_length > ctx.opts.max_size_bytes) {
    r->send(error_response(service_error::payload_too_large,
                           "Upload-Length " + *length + " is larger than Tus-Max-Size "
                             + std::to_string(ctx.opts.max_size_bytes) + ".",
                           req.id, "Upload-Length"));
    return false;
  }
  spec.length = *parsed_length;
  spec.metadata = req.header("Upload-Metadata").value_or("");
  std::string why;
  auto metadata = tus::parse_metadata(spec.metadata, why);
  if (!metadata) {
    answer_invalid(r, why, "Upload-Metadata");
    return false;
  }
  auto filename = metadata->find("filename");
  if (filename == metadata->end()) {
    answer_invalid(r, "Upload-Metadata must name the file: filename <base64 name>.", "Upload-Metadata.filename");
    return false;
  }
  auto safe = sanitise_filename(filename->second, why);
  if (!safe) {
    answer_invalid(r, why, "Upload-Metadata.filename");
    return false;
  }
  spec.filename = *safe;
  auto repository = metadata->find("repository_id");
  if (repository == metadata->end() || !is_uuid(repository->second)) {
    answer_invalid(r, "Upload-Metadata must name the repository: repository_id <base64 repository id (UUID)>.",
                   "Upload-Metadata.repository_id");
    return false;
  }
  spec.repository_id = repository->second;
  return true;
}

void post_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  if (!tus_prologue(ctx, r))
    return;
  upload_spec spec;
  if (!parse_creation(ctx, r, spec))
    return;
  upload_chunk chunk;
  chunk.bytes = r->take_body();
  if (!chunk.bytes.empty()) {
    if (!tus::is_offset_content_type(r->req().header("Content-Type").value_or(""))) {
      r->fail(make_error(service_error::unsupported_media_type,
                         "A body sent with the creation request needs Content-Type: application/offset+octet-stream."));
      return;
    }
    if (static_cast<int64_t>(chunk.bytes.size()) > spec.length) {
      r->fail(make_error(service_error::payload_too_large, "The body is longer than Upload-Length."));
      return;
    }
    if (!take_checksum(r, chunk))
      return;
  }
  if (ctx.auth.traffic() && ctx.auth.traffic()->shed(r, true))
    return;
  // The chunk travels behind a pointer: the authenticator copies its continuation, and the body may be
  // uploads.max_chunk_bytes. It is moved (never copied) into the message to the upload router.
  auto body = std::make_shared<upload_chunk>(std::move(chunk));
  ctx.auth.authenticate(
    r, ctx.opts.rate_policy, [&ctx, r, spec, body](caf::event_based_actor* self, const identity& who) {
      auto router = upload_router(ctx, r);
      if (!router)
        return;
      auto user_id = who.user_id;
      self->request(*router, ctx.timeout(), upload_new_atom::value, user_id, spec)
        .then(
          [&ctx, self, r, router, user_id, body](upload_status& created) {
            auto answer = [r](const upload_status& s) {
              auto res = no_content(201);
              res.header("Location", uploads_path + s.id);
              add_progress_headers(res, s);
              r->send(std::move(res));
            };
            if (body->bytes.empty()) {
              answer(created);
              return;
            }
            // creation-with-upload: the upload exists whatever happens to its first chunk; the client learns the
            // stored offset from Upload-Offset and resumes from there.
            self->request(*router, ctx.timeout(), upload_patch_atom::value, created.id, user_id, std::move(*body))
              .then([answer](upload_status& patched) { answer(patched); },
                    [answer, created](caf::error&) { answer(created); });
          },
          [r](caf::error& err) { r->fail(err); });
    });
}

// --- HEAD, PATCH, DELETE, GET --------------------------------------------------------------------------------------

void head_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  r->add_header("Cache-Control", "no-store");
  if (!tus_prologue(ctx, r))
    return;
  auto id = r->req().param("id").value_or("");
  ctx.auth.authenticate(r, [&ctx, r, id](caf::event_based_actor* self, const identity& who) {
    auto answer = [](const upload_status& s) {
      auto res = no_content(200);
      add_progress_headers(res, s);
      res.header("Upload-Length", std::to_string(s.length));
      if (!s.metadata.empty())
        res.header("Upload-Metadata", s.metadata);
      return res;
    };
    ask_router<upload_status>(ctx, self, r, answer, upload_head_atom::value, id, who.user_id);
  });
}

void patch_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  if (!tus_prologue(ctx, r))
    return;
  const auto& req = r->req();
  if (!tus::is_offset_content_type(req.header("Content-Type").value_or(""))) {
    r->fail(make_error(service_error::unsupported_media_type,
                       "A PATCH needs Content-Type: application/offset+octet-stream."));
    return;
  }
  auto offset = tus::parse_size(req.header("Upload-Offset").value_or(""));
  if (!offset) {
    answer_invalid(r, "Upload-Offset must be the upload's offset, a non-negative integer.", "Upload-Offset");
    return;
  }
  upload_chunk chunk;
  chunk.offset = *offset;
  if (!take_checksum(r, chunk))
    return;
  chunk.bytes = r->take_body();
  if (ctx.auth.traffic() && ctx.auth.traffic()->shed(r, true))
    return;
  auto id = req.param("id").value_or("");
  auto body = std::make_shared<upload_chunk>(std::move(chunk)); // see post_route: never copied
  ctx.auth.authenticate(
    r, ctx.opts.rate_policy, [&ctx, r, id, body](caf::event_based_actor* self, const identity& who) {
      auto answer = [](const upload_status& s) {
        auto res = no_content(204);
        add_progress_headers(res, s);
        return res;
      };
      ask_router<upload_status>(ctx, self, r, answer, upload_patch_atom::value, id, who.user_id, std::move(*body));
    });
}

void delete_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  if (!tus_prologue(ctx, r))
    return;
  auto id = r->req().param("id").value_or("");
  ctx.auth.authenticate(r, ctx.opts.rate_policy, [&ctx, r, id](caf::event_based_actor* self, const identity& who) {
    auto answer = [](bool) { return no_content(204); };
    ask_router<bool>(ctx, self, r, answer, upload_delete_atom::value, id, who.user_id);
  });
}

std::string status_json(const upload_status& s) {
  rapidjson::StringBuffer buffer;
  json_writer w{buffer};
  auto text = [&w](const char* key, const std::string& value) { write_string(w, key, value); };
  w.StartObject();
  text("id", s.id);
  text("repository_id", s.repository_id);
  text("filename", s.filename);
  w.Key("length");
  w.Int64(s.length);
  w.Key("offset");
  w.Int64(s.offset);
  w.Key("completed");
  w.Bool(s.completed);
  w.Key("expires_at");
  if (s.completed)
    w.Null();
  else
    w.String(rfc3339_from_ms(s.expires_at_ms).c_str());
  w.Key("job_id");
  if (s.job_id.empty())
    w.Null();
  else
    w.String(s.job_id.c_str());
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

void get_route(route_context& ctx, const std::shared_ptr<responder>& r) {
  if (ctx.opts.cors)
    ctx.opts.cors->apply(r, false);
  auto id = r->req().param("id").value_or("");
  ctx.auth.authenticate(r, [&ctx, r, id](caf::event_based_actor* self, const identity& who) {
    auto answer = [](const upload_status& s) {
      auto res = json_response(200, status_json(s));
      res.header("Cache-Control", "no-store");
      return res;
    };
    ask_router<upload_status>(ctx, self, r, answer, upload_head_atom::value, id, who.user_id);
  });
}

} // namespace

upload_route_options upload_route_options_from(const config::settings& s, std::shared_ptr<cors_policy> cors) {
  upload_route_options options;
  options.max_size_bytes = s.uploads.max_size_bytes;
  options.max_chunk_bytes = static_cast<size_t>(s.uploads.max_chunk_bytes);
  options.cors = std::move(cors);
  return options;
}

void add_upload_routes(router& routes, authenticator& auth, const upload_route_options& options) {
  auto ctx = std::make_shared<route_context>(route_context{auth, options});
  auto bind = [ctx](void (*handler)(route_context&, const std::shared_ptr<responder>&)) {
    return [ctx, handler](const std::shared_ptr<responder>& r) { handler(*ctx, r); };
  };
  route_options chunked;
  chunked.max_body_bytes = options.max_chunk_bytes;
  // Chunks are large: nobody without a plausible credential gets the server to hold one.
  chunked.before_body = [&auth](const request_head& head, const std::string& peer) {
    return auth.check_before_body(head, peer);
  };
  route_options overridable;
  overridable.method_override = true;
  route_options chunked_overridable = chunked;
  chunked_overridable.method_override = true;
  routes.add("OPTIONS", "/api/uploads", bind(options_route));
  routes.add("POST", "/api/uploads", bind(post_route), chunked);
  routes.add("OPTIONS", "/api/uploads/{id}", bind(options_route));
  routes.add("HEAD", "/api/uploads/{id}", bind(head_route), overridable);
  routes.add("PATCH", "/api/uploads/{id}", bind(patch_route), chunked_overridable);
  routes.add("DELETE", "/api/uploads/{id}", bind(delete_route), overridable);
  routes.add("GET", "/api/uploads/{id}", bind(get_route));
}

} // namespace troupe::http
