#pragma once
// The non-blocking HTTP client Troupe uses to call upstreams (AI providers), on libcurl's multi interface.
//
// One client actor owns one CURLM handle. It is a detached actor (it has its own thread) that alternates between
// its mailbox and curl_multi_poll: a (upstream_call_atom, upstream_request) message adds a transfer, and the
// actor answers that request with an upstream_response when the transfer ends — never before, and exactly once.
// Callers ring the client's doorbell (curl_multi_wakeup) after sending, so a client blocked in curl_multi_poll
// picks the new transfer up at once. Connections are kept alive and reused per upstream host by the multi
// handle's connection cache.
//
// Its interface is upstream_client_actor (below its message types).
//
// Limits every transfer gets: connect timeout, first-byte timeout (until the status line and headers have
// arrived), total timeout, the longest silence between body bytes (streams), and a cap on the response body; each
// ends the transfer with its transfer_error.
// Streaming: with upstream_request::on_data set, body bytes are handed over on the client's thread as they
// arrive (not accumulated); returning false from on_data aborts the transfer (transfer_error::aborted).
//
// Secrets: request headers (Authorization) are never logged, and error texts never contain them.
//
// The "upstreams" supervisor (one_for_one) starts a circuit breaker per configured upstream (actors/breaker.hpp,
// named breaker_name(upstream), in configuration order), then upstream.clients client actors named
// upstream_clients::client_name(i).

#include "actors/breaker.hpp"
#include "actors/directory.hpp"
#include "actors/supervisor.hpp"
#include "introspect/messages.hpp"
#include "config/options.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace troupe::client {

struct upstream_request {
  std::string url;                  // absolute URL; built from configuration only (no client-supplied URLs)
  std::vector<std::string> headers; // "Name: value" lines, e.g. "Authorization: Bearer ..." (never logged)
  std::string body;                 // POSTed when not empty; GET otherwise
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds first_byte_timeout{60000}; // until the status line and headers have arrived
  std::chrono::milliseconds total_timeout{60000};     // 0: none (a stream bounded by idle_timeout instead)
  std::chrono::milliseconds idle_timeout{0}; // once the headers are in, the longest gap between body bytes; 0: none
  size_t max_response_bytes = 8 * 1024 * 1024; // also caps a streamed body (the sum of on_data pieces)
  /// Streaming: called on the client's thread with the status and each piece of the body as it arrives (after all
  /// headers; `headers` are those of the response). Return false to abort. When set, the body is not accumulated.
  std::function<bool(int status, const std::vector<std::pair<std::string, std::string>>& headers,
                     std::string_view data)>
    on_data;
};

enum class transfer_error {
  none,               // a complete HTTP response arrived (any status)
  connect,            // could not connect (refused, DNS, TLS handshake)
  connect_timeout,    // connect_timeout passed
  first_byte_timeout, // first_byte_timeout passed before the headers were complete
  total_timeout,      // total_timeout passed
  idle_timeout,       // idle_timeout passed without a body byte (a stream that went silent)
  too_large,          // the body exceeded max_response_bytes
  aborted,            // on_data returned false, or the client shut down
  protocol,           // the upstream broke HTTP (truncated body, bad framing, connection reset mid-answer)
};

const char* to_string(transfer_error e);

struct upstream_response {
  transfer_error error = transfer_error::none;
  std::string error_text; // a human sentence for logs and error bodies; never contains request headers
  int status = 0;         // HTTP status; 0 if none arrived
  std::vector<std::pair<std::string, std::string>> headers; // names lower-cased, in arrival order
  std::string body;                                         // the whole body, unless on_data was set
  size_t body_bytes = 0;                                    // body bytes received (also when streamed)
  std::chrono::microseconds elapsed{0};
  std::chrono::microseconds connect_time{0};    // connected (and TLS done) after this; 0 on a reused connection
  std::chrono::microseconds first_byte_time{0}; // the first byte of the answer after this
  bool reused_connection = false; // libcurl reused a kept-alive connection (CURLINFO_NUM_CONNECTS == 0)

  /// The first header with this (lower-case) name.
  std::optional<std::string> header(std::string_view lower_name) const;
};

} // namespace troupe::client

// Never sent to another process (a request carries its on_data callback): not serializable, and need not be.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::client::upstream_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::client::upstream_response)

namespace troupe::client {

using upstream_call_atom = caf::atom_constant<caf::atom("upcall")>;

/// A client actor's interface: one transfer per request, answered when it ends (never before, exactly once).
using upstream_client_actor =
  caf::typed_actor<caf::replies_to<upstream_call_atom, upstream_request>::with<upstream_response>, mailbox_size_request>;

/// Wakes a client blocked in curl_multi_poll. Shared by the callers and every incarnation of the client actor.
/// Thread-safe; ringing while no incarnation is attached does nothing (the next incarnation starts by polling).
class doorbell {
public:
  void ring();
  /// Called by a starting client actor: the multi handle to wake from now on.
  void attach(void* multi);
  /// Called by an ending client actor before it frees `multi`; a newer incarnation's handle is left alone.
  void detach(void* multi);

private:
  std::mutex mutex_;
  void* multi_ = nullptr;
};

struct upstream_client_options {
  std::shared_ptr<doorbell> bell = std::make_shared<doorbell>();
  long max_total_connections = 256;         // CURLMOPT_MAX_TOTAL_CONNECTIONS
  long max_host_connections = 128;          // CURLMOPT_MAX_HOST_CONNECTIONS
  std::chrono::milliseconds idle_poll{100}; // longest curl_multi_poll wait: an exit message is noticed within
                                            // it (ring the doorbell after sending the exit to make it immediate)
};

/// Spawns a client actor (detached). Supervise it like any other child.
upstream_client_actor spawn_upstream_client(caf::actor_system& sys, upstream_client_options options);

/// How callers reach the clients: by name in the directory, round robin, ringing the doorbell after each send.
class upstream_clients {
public:
  /// Client i is named client_name(i) in `names`; `bells[i]` is its doorbell (the options given to its spawn).
  upstream_clients(std::shared_ptr<directory> names, std::vector<std::shared_ptr<doorbell>> bells);

  static actor_name<upstream_client_actor> client_name(size_t i); // "upstream.client.<i>"

  /// Starts the transfer from inside `self`; `then` runs in `self` with the response (a client that is not running
  /// or dies yields transfer_error::aborted with an explanation). When no client is running at all, `then` runs
  /// before call() returns. The request carries no CAF timeout: the client enforces the transfer's own timeouts.
  void call(caf::event_based_actor* self, upstream_request req, std::function<void(upstream_response&)> then);

private:
  std::shared_ptr<directory> names_;
  std::vector<std::shared_ptr<doorbell>> bells_;
  std::atomic<size_t> next_{0};
};

/// What the upstreams subsystem shares with its callers (the gateway): the gauges each breaker publishes, one per
/// configured upstream in configuration order, and the doorbell of each client actor. They outlive restarts.
struct upstream_handles {
  std::vector<std::shared_ptr<breaker_gauges>> breakers;
  std::vector<std::shared_ptr<doorbell>> doorbells;
};

/// Gauges for every upstream of settings.upstreams and a doorbell for each of the upstream.clients client actors.
upstream_handles make_upstream_handles(const config::settings& settings);

/// The "upstreams" supervisor above, from the upstreams, breaker.* and upstream.* settings, each child publishing
/// into `handles` (made by make_upstream_handles from the same settings).
supervisor_config make_upstreams_supervisor(const config::settings& settings, const supervision_context& context,
                                            const upstream_handles& handles);

} // namespace troupe::client
