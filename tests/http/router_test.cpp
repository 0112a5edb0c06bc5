// Tests of http/router.cpp: literal and {param} patterns, extracted parameters, 404 and 405 with the allowed
// methods, and path normalisation (trailing and repeated slashes).

#include "http/router.hpp"

#include <gtest/gtest.h>

#include <string>

using troupe::http::path_params;
using troupe::http::router;
using troupe::http::split_path;

namespace {

/// A router whose handlers record which one ran.
class Router : public ::testing::Test {
protected:
  void add(const std::string& method, const std::string& pattern, const std::string& tag) {
    routes.add(method, pattern, [this, tag](const auto&) { ran = tag; });
  }

  /// Runs the matched handler and returns its tag ("" if nothing matched).
  std::string run(const router::match& m) {
    ran.clear();
    if (m.handler)
      (*m.handler)(nullptr);
    return ran;
  }

  router routes;
  std::string ran;
};

// A literal pattern matches exactly its path and method.
TEST_F(Router, MatchesLiteralRoute) {
  add("GET", "/api/health", "health");
  add("GET", "/api/metrics", "metrics");
  auto m = routes.find("GET", "/api/health");
  EXPECT_EQ(m.kind, router::match::found);
  EXPECT_EQ(m.route, "/api/health");
  EXPECT_TRUE(m.params.empty());
  EXPECT_EQ(run(m), "health");
  EXPECT_EQ(run(routes.find("GET", "/api/metrics")), "metrics");
}

// {name} segments match any one segment and are returned in pattern order.
TEST_F(Router, ExtractsParameters) {
  add("GET", "/api/repos/{owner}/{name}/files/{id}", "file");
  auto m = routes.find("GET", "/api/repos/ada/engine/files/42");
  ASSERT_EQ(m.kind, router::match::found);
  EXPECT_EQ(m.route, "/api/repos/{owner}/{name}/files/{id}");
  EXPECT_EQ(m.params, (path_params{{"owner", "ada"}, {"name", "engine"}, {"id", "42"}}));
  EXPECT_EQ(run(m), "file");
  EXPECT_EQ(routes.find("GET", "/api/repos/ada/engine/blobs/42").kind, router::match::not_found);
}

// A path no pattern matches (by literal or segment count) is not_found under the bounded name "unmatched".
TEST_F(Router, UnmatchedPathIsNotFound) {
  add("GET", "/api/items/{id}", "item");
  for (const char* path : {"/api/other/1", "/api/items", "/api/items/1/extra", "/", "", "/api/items/"}) {
    auto m = routes.find("GET", path);
    EXPECT_EQ(m.kind, router::match::not_found) << path;
    EXPECT_EQ(m.route, "unmatched") << path;
    EXPECT_EQ(m.handler, nullptr) << path;
    EXPECT_TRUE(m.allowed.empty()) << path;
  }
}

// A path that matches under other methods is method_not_allowed, with those methods sorted for Allow.
TEST_F(Router, WrongMethodListsAllowedMethodsSorted) {
  add("POST", "/api/items/{id}", "post");
  add("GET", "/api/items/{id}", "get");
  add("DELETE", "/api/items/{id}", "delete");
  auto m = routes.find("PUT", "/api/items/7");
  EXPECT_EQ(m.kind, router::match::method_not_allowed);
  EXPECT_EQ(m.route, "/api/items/{id}");
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_EQ(m.allowed, (std::vector<std::string>{"DELETE", "GET", "POST"}));
}

// When a literal and a parameter pattern both match, the method picks the route, and a 405 lists the methods
// of both without duplicates.
TEST_F(Router, AllowedMethodsMergeAcrossMatchingPatterns) {
  add("POST", "/api/items/new", "create");
  add("GET", "/api/items/{id}", "item");
  add("POST", "/api/items/{id}", "update");
  EXPECT_EQ(run(routes.find("POST", "/api/items/new")), "create");
  auto get = routes.find("GET", "/api/items/new");
  EXPECT_EQ(run(get), "item");
  EXPECT_EQ(get.params, (path_params{{"id", "new"}}));
  auto m = routes.find("DELETE", "/api/items/new");
  EXPECT_EQ(m.kind, router::match::method_not_allowed);
  EXPECT_EQ(m.allowed, (std::vector<std::string>{"GET", "POST"}));
}

// Trailing and repeated slashes do not change which route matches, in paths or in patterns.
TEST_F(Router, TrailingAndRepeatedSlashesAreIgnored) {
  add("GET", "/api/health/", "health");
  add("GET", "/api/items/{id}", "item");
  for (const char* path : {"/api/health", "/api/health/", "//api//health//"})
    EXPECT_EQ(run(routes.find("GET", path)), "health") << path;
  auto m = routes.find("GET", "/api/items/9/");
  EXPECT_EQ(run(m), "item");
  EXPECT_EQ(m.params, (path_params{{"id", "9"}}));
  EXPECT_EQ(split_path("/a//b/"), (std::vector<std::string_view>{"a", "b"}));
  EXPECT_TRUE(split_path("///").empty());
}

// Adding the same method and pattern again replaces the handler rather than adding a second route.
TEST_F(Router, SameMethodAndPatternReplacesHandler) {
  add("GET", "/api/items", "first");
  add("GET", "/api/items", "second");
  EXPECT_EQ(run(routes.find("GET", "/api/items")), "second");
  auto m = routes.find("PUT", "/api/items");
  EXPECT_EQ(m.allowed, (std::vector<std::string>{"GET"}));
}

} // namespace
