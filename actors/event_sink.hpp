#pragma once
// Where a stream's bytes go: a client's event stream, written from whichever thread produces them (the gateway's
// calls write Server-Sent Events from the upstream client's thread). http::response_stream implements it.

#include <chrono>
#include <string_view>

namespace troupe {

class event_sink {
public:
  virtual ~event_sink() = default;
  /// False once the client is gone (or stopped reading for longer than the stall limit).
  virtual bool write(std::string_view data) = 0;
  /// Ends the stream (idempotent).
  virtual void end() = 0;
  /// The longest time the client may leave the stream's bytes unread before it is dropped.
  virtual void set_stall_limit(std::chrono::milliseconds limit) = 0;
};

} // namespace troupe
