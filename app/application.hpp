#pragma once
// The running server: the actor system, the supervision tree, the HTTP endpoint, and the lifecycle
// (start in dependency order; on SIGTERM/SIGINT drain in-flight requests, stop the tree in reverse order).

#include "config/options.hpp"

namespace troupe::app {

/// Runs until SIGTERM or SIGINT; returns the process exit status (0 after a clean shutdown, 1 if the server
/// could not start or the supervision tree gave up). A second signal during shutdown exits at once.
/// Must be called from the main thread before any other thread exists (it blocks the signals process-wide).
int run_server(const config::settings& settings);

} // namespace troupe::app
