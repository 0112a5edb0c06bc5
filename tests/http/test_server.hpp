#pragma once
// An in-process HTTP server (http/server.hpp) with routes a test adds (and the raw client of raw_client.hpp).

#include "http/server.hpp"

#include "config/loader.hpp"
#include "tests/http/raw_client.hpp"

#include <gtest/gtest.h>


#include <chrono>
#include <memory>
#include <string>

namespace troupe::http::testing {

inline config::settings test_settings() {
  auto loaded = config::load({}, [](const std::string&) { return std::optional<std::string>{}; });
  auto s = std::get<config::settings>(loaded);
  s.http.address = "127.0.0.1";
  s.http.port = 0;
  s.http.threads = 1;
  s.log.request_sample = 0;
  return s;
}

/// Routes added by the test, then start(): a server on a free loopback port.
struct server_fixture : ::testing::Test {
  std::shared_ptr<router> routes = std::make_shared<router>();
  config::settings settings = test_settings();
  std::shared_ptr<server_state> state;
  std::unique_ptr<server> srv;
  uint16_t port = 0;

  void start() {
    state = std::make_shared<server_state>(settings, routes, std::make_shared<metrics_registry>());
    srv = std::make_unique<server>(settings, state);
    port = srv->start();
  }
  void TearDown() override {
    if (srv)
      srv->stop();
  }
};

} // namespace troupe::http::testing
