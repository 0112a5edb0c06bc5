#include "persistence/query_router.hpp"
#include "introspect/messages.hpp"
#include "introspect/observed_actor.hpp"

#include "persistence/messages.hpp"
#include "persistence/repositories.hpp"

#include "config/service_error.hpp"

#include <caf/all.hpp>

#include <vector>

namespace troupe {

namespace {

// Searches a search connection takes at once: the one it runs and one waiting in its mailbox.
constexpr size_t searches_per_connection = 2;

struct query_router_state {
  size_t connections = 0;
  std::function<std::optional<db_connection_actor>(size_t)> connection;
  size_t next = 0; // the connection to try first for the next query
  search_lane searches;
  std::vector<size_t> searching; // per search connection: searches handed to it and not answered yet
  size_t next_search = 0;

  static inline const char* name = "db.query";
};

using query_router_actor = observed_stateful_actor<query_router_state>;

/// The next running connection after the last one used, or nullopt when none is running. Untyped: the router
/// forwards messages it does not look into (their senders' handles checked them).
std::optional<caf::actor> next_connection(query_router_state& st) {
  for (size_t tried = 0; tried < st.connections; ++tried) {
    auto i = st.next++ % st.connections;
    if (auto handle = st.connection(i); handle && *handle)
      return caf::actor_cast<caf::actor>(std::move(*handle));
  }
  return std::nullopt;
}

/// The running search connection with the fewest searches (round-robin among equals) that can take one more, or
/// nullopt: every one is full (or restarting).
std::optional<size_t> next_search_connection(query_router_state& st) {
  std::optional<size_t> best;
  for (size_t tried = 0; tried < st.searches.connections; ++tried) {
    auto i = (st.next_search + tried) % st.searches.connections;
    if (st.searching[i] >= searches_per_connection || (best && st.searching[i] >= st.searching[*best]))
      continue;
    if (auto handle = st.searches.connection(i); handle && *handle)
      best = i;
  }
  if (best)
    st.next_search = *best + 1;
  return best;
}

caf::result<std::vector<search_hit>> search(query_router_actor* self, const std::string& user_id,
                                            const std::string& repository_id, const std::string& query, int32_t limit) {
  auto& st = self->state;
  if (st.searches.connections == 0) { // no lane of their own: like any query
    auto target = next_connection(st);
    if (!target)
      return make_error(service_error::unavailable, "No database connection is available; retry shortly.");
    auto promise = self->make_response_promise<std::vector<search_hit>>();
    promise.delegate(*target, repo_search_atom::value, user_id, repository_id, query, limit);
    return promise;
  }
  auto lane = next_search_connection(st);
  if (!lane)
    return make_error(service_error::overloaded, "Too many searches are running; retry shortly.");
  auto target = st.searches.connection(*lane);
  if (!target || !*target)
    return make_error(service_error::unavailable, "The search connections are restarting; retry shortly.");
  auto i = *lane;
  st.searching[i]++;
  auto promise = self->make_response_promise<std::vector<search_hit>>();
  // A request rather than a delegation: the router must see the answer to free the slot.
  self
    ->request(*target, caf::duration{st.searches.answer_timeout}, repo_search_atom::value, user_id, repository_id,
              query, limit)
    .then(
      [self, i, promise](std::vector<search_hit>& hits) mutable {
        self->state.searching[i]--;
        promise.deliver(std::move(hits));
      },
      [self, i, promise](caf::error& err) mutable {
        self->state.searching[i]--;
        promise.deliver(std::move(err));
      });
  return promise;
}

caf::behavior query_router(query_router_actor* self, size_t connections,
                           std::function<std::optional<db_connection_actor>(size_t)> connection, search_lane searches) {
  self->state.connections = connection ? connections : 0;
  self->state.connection = std::move(connection);
  if (!searches.connection)
    searches.connections = 0;
  self->state.searches = std::move(searches);
  self->state.searching.assign(self->state.searches.connections, 0);
  // Every message without a handler below is a query: hand it on unchanged, keeping the sender and request id.
  self->set_default_handler([](caf::scheduled_actor* ptr, caf::message_view& query) -> caf::result<caf::message> {
    auto self = static_cast<query_router_actor*>(ptr);
    if (auto target = next_connection(self->state))
      return self->delegate(*target, query.move_content_to_message());
    return make_error(service_error::unavailable, "No database connection is available; retry shortly.");
  });
  return {
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
    [self](repo_search_atom, const std::string& user_id, const std::string& repository_id, const std::string& query,
           int32_t limit) { return search(self, user_id, repository_id, query, limit); },
  };
}

} // namespace

db_query_actor spawn_query_router(caf::actor_system& sys, size_t connections,
                                  std::function<std::optional<db_connection_actor>(size_t)> connection,
                                  search_lane searches) {
  // Typed from the outside (what its senders may ask), untyped inside (it forwards): see query_router.hpp.
  return caf::actor_cast<db_query_actor>(
    sys.spawn(query_router, connections, std::move(connection), std::move(searches)));
}

} // namespace troupe
