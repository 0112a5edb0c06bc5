#include "persistence/query_router.hpp"
#include "introspect/observed_actor.hpp"

#include "persistence/messages.hpp"

#include "config/service_error.hpp"

#include <caf/all.hpp>

namespace troupe {

namespace {

struct query_router_state {
  size_t connections = 0;
  std::function<std::optional<caf::actor>(size_t)> connection;
  size_t next = 0; // the connection to try first for the next query

  static inline const char* name = "db.query";
};

using query_router_actor = observed_stateful_actor<query_router_state>;

/// The next running connection after the last one used, or nullopt when none is running.
std::optional<caf::actor> next_connection(query_router_state& st) {
  for (size_t tried = 0; tried < st.connections; ++tried) {
    auto i = st.next++ % st.connections;
    if (auto handle = st.connection(i); handle && *handle)
      return handle;
  }
  return std::nullopt;
}

caf::behavior query_router(query_router_actor* self, size_t connections,
                           std::function<std::optional<caf::actor>(size_t)> connection) {
  self->state.connections = connection ? connections : 0;
  self->state.connection = std::move(connection);
  // Every message without a handler below is a query: hand it on unchanged, keeping the sender and request id.
  self->set_default_handler([](caf::scheduled_actor* ptr, caf::message_view& query) -> caf::result<caf::message> {
    auto self = static_cast<query_router_actor*>(ptr);
    if (auto target = next_connection(self->state))
      return self->delegate(*target, query.move_content_to_message());
    return make_error(service_error::unavailable, "No database connection is available; retry shortly.");
  });
  return {
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

caf::actor spawn_query_router(caf::actor_system& sys, size_t connections,
                              std::function<std::optional<caf::actor>(size_t)> connection) {
  return sys.spawn(query_router, connections, std::move(connection));
}

} // namespace troupe
