#pragma once
// One blocking HTTP POST of a JSON body with libcurl easy, for the detached actors that notify the outside (the alert
// webhook, actors/ops_history.hpp; the span exporter, actors/span_export.hpp). Call it only from a detached actor.

#include <chrono>
#include <string>

namespace troupe {

/// POSTs `body` as application/json to `url` (http or https, no redirects, no 100-continue), `timeout` in all.
/// "" when the answer was a 2xx; else what went wrong ("HTTP 500", libcurl's error text).
std::string post_json(const std::string& url, const std::string& body, std::chrono::milliseconds timeout);

} // namespace troupe
