#pragma once
// The tus 1.0.0 server (https://tus.io/protocols/resumable-upload) at /api/uploads/, with the extensions creation,
// creation-with-upload, termination, checksum (sha1, sha256) and expiration. The protocol is spoken here; the
// upload's state lives in its session actor (actors/uploads.hpp).
//
//   OPTIONS /api/uploads/        204  Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm (no auth;
//   OPTIONS /api/uploads/{id}         also the CORS preflight)
//   POST    /api/uploads/        201  Location: /api/uploads/<id>, Upload-Expires; with a body (creation-with-upload)
//                                     also Upload-Offset. Needs Upload-Length (<= Tus-Max-Size, else 413) and
//                                     Upload-Metadata with filename and repository_id (a repository of the caller)
//   HEAD    /api/uploads/{id}    200  Upload-Offset, Upload-Length, Upload-Metadata, Upload-Expires,
//                                     Cache-Control: no-store (Troupe-Job-Id once complete)
//   PATCH   /api/uploads/{id}    204  Upload-Offset, Upload-Expires (Troupe-Job-Id when this chunk completed it).
//                                     Content-Type must be application/offset+octet-stream (415), Upload-Offset the
//                                     upload's offset (409); Upload-Checksum mismatch 460 (chunk discarded); another
//                                     PATCH in progress 423; more than uploads.max_chunk_bytes 413
//   DELETE  /api/uploads/{id}    204  then 404
//   GET     /api/uploads/{id}    200  the upload as JSON (not part of tus)
//
// Every response but OPTIONS carries Tus-Resumable: 1.0.0; a request with another Tus-Resumable gets 412 with
// Tus-Version. A POST with X-HTTP-Method-Override (PATCH, DELETE, HEAD) is handled as that method. Uploads are the
// caller's: another user's upload answers 404. Errors have the usual JSON body.

#include "http/cors.hpp"
#include "http/router.hpp"

#include "actors/uploads.hpp"
#include "config/options.hpp"

#include <memory>
#include <string>

namespace troupe::http {

class authenticator;

struct upload_route_options {
  actor_name<upload_router_actor> router = upload_router_name; // the upload router's name in the directory
  int64_t max_size_bytes = 0;            // Tus-Max-Size
  size_t max_chunk_bytes = 0;            // largest PATCH (and creation-with-upload POST) body
  std::string rate_policy = "upload";    // the per-user rate limit of POST, PATCH and DELETE
  std::shared_ptr<cors_policy> cors;
};

/// uploads.max_size_bytes and uploads.max_chunk_bytes, with `cors` for browser clients.
upload_route_options upload_route_options_from(const config::settings& settings, std::shared_ptr<cors_policy> cors);

void add_upload_routes(router& routes, authenticator& auth, const upload_route_options& options);

} // namespace troupe::http
