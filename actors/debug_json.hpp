#pragma once
// Debug mode's answers as JSON (the bodies of GET /debug/actors and GET /debug/actors/{id}, http/debug_routes.hpp),
// made next to the actors they describe, so a node renders its own tree and mailboxes both for its HTTP routes and
// for another node's (the cluster endpoint, actors/cluster_endpoint.hpp).

#include "actors/directory.hpp"
#include "actors/introspection.hpp"
#include "introspect/probe.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/expected.hpp>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace troupe {

/// What debug mode reads on this node: the tree's root (by name), the probes, and how long it waits for answers.
struct debug_sources {
  std::shared_ptr<directory> names;       // where the root supervisor is found
  std::shared_ptr<probe_registry> probes; // null when debug mode is off
  std::string root = "root";
  std::chrono::milliseconds tree_timeout{1000}; // per supervisor asked for its children
  std::chrono::milliseconds peek_timeout{2000}; // for an actor to answer a mailbox peek
  std::string node;                             // this node's id in a cluster ("" on a single node)
};

/// Collects the tree inside `self` (nothing when the root is not running: service_error::unavailable).
void debug_tree(caf::event_based_actor* self, const debug_sources& sources,
                std::function<void(caf::expected<std::vector<actor_view>>)> then);

/// {"node":..., "collected_at":..., "actors":[...]}, parents before children.
std::string actors_json(const std::vector<actor_view>& actors, const std::string& node);

/// One actor (by CAF id or by name, service_error::not_found when the tree has none) with its first `limit` queued
/// messages, as JSON, inside `self`.
void debug_actor_json(caf::event_based_actor* self, const debug_sources& sources, const std::string& key,
                      size_t limit, std::function<void(caf::expected<std::string>)> then);

/// The tree's whole JSON (actors_json) inside `self`.
void debug_tree_json(caf::event_based_actor* self, const debug_sources& sources,
                     std::function<void(caf::expected<std::string>)> then);

// Pieces the trace route shares.
/// The names of the actors in the tree by id, to name a message's sender.
std::unordered_map<uint64_t, std::string> names_by_id(const std::vector<actor_view>& actors);
std::string sender_name(const std::unordered_map<uint64_t, std::string>& names, uint64_t id);
/// The actor with CAF id or name `key`, or nullptr.
const actor_view* find_actor(const std::vector<actor_view>& actors, const std::string& key);
/// "2026-01-02T03:04:05.678Z"
std::string rfc3339_ms(int64_t unix_ms);
/// Microseconds as milliseconds with three decimals, or null when unknown (< 0).
void write_ms_or_null(rapidjson::Writer<rapidjson::StringBuffer>& w, int64_t micros);

} // namespace troupe
