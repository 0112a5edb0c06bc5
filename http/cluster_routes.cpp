#include "http/cluster_routes.hpp"

#include "http/error_mapping.hpp"
#include "http/json_out.hpp"

#include "config/service_error.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace troupe::http {

namespace {

void write_member(json_writer& w, const cluster_member& m) {
  w.StartObject();
  write_string(w, "node_id", m.node_id);
  write_string(w, "state", m.state);
  write_string(w, "address", m.address);
  w.Key("port");
  w.Uint(m.port);
  write_string(w, "http_url", m.http_url);
  w.Key("epoch");
  w.Int64(m.epoch);
  w.Key("sessions");
  w.Int64(m.sessions);
  w.Key("silent_ms");
  w.Int64(m.silent_ms);
  w.Key("last_seen_unix");
  w.Int64(m.last_seen_unix);
  w.Key("connected");
  w.Bool(m.connected);
  w.Key("placed");
  w.Bool(m.placed);
  w.EndObject();
}

response no_store(response res) {
  res.header("Cache-Control", "no-store");
  return res;
}

} // namespace

void add_cluster_routes(router& routes, authenticator& auth, std::shared_ptr<cluster_state> cluster) {
  routes.add("GET", "/api/cluster", [&auth, cluster](const std::shared_ptr<responder>& r) {
    auth.require_admin(r, [r, cluster](caf::event_based_actor*, const identity&) {
      auto view = cluster->view();
      rapidjson::StringBuffer buffer;
      json_writer w{buffer};
      w.StartObject();
      write_string(w, "node_id", view ? view->self : cluster->node_id());
      w.Key("enabled");
      w.Bool(cluster->enabled());
      w.Key("epoch");
      w.Int64(view ? view->epoch : 0);
      w.Key("members");
      w.StartArray();
      if (view) {
        for (const auto& m : view->members)
          write_member(w, m);
      } else if (!cluster->enabled()) {
        cluster_member self;
        self.node_id = cluster->node_id();
        self.state = "up";
        self.connected = self.placed = true;
        write_member(w, self);
      }
      w.EndArray();
      w.EndObject();
      r->send(no_store(json_response(200, {buffer.GetString(), buffer.GetSize()})));
    });
  });
  routes.add("GET", "/api/cluster/owner/{user_id}", [&auth, cluster](const std::shared_ptr<responder>& r) {
    auto user_id = r->req().param("user_id").value_or("");
    auth.require_admin(r, [r, cluster, user_id](caf::event_based_actor*, const identity&) {
      auto route = route_user(cluster.get(), user_id);
      if (route.kind == session_route::unavailable) {
        r->fail(make_error(service_error::unavailable, "This node has no view of the cluster yet; retry shortly."));
        return;
      }
      auto owner = route.owner.empty() ? cluster->node_id() : route.owner;
      rapidjson::StringBuffer buffer;
      json_writer w{buffer};
      w.StartObject();
      write_string(w, "user_id", user_id);
      write_string(w, "owner", owner);
      w.Key("self");
      w.Bool(route.kind == session_route::local);
      w.EndObject();
      r->send(no_store(json_response(200, {buffer.GetString(), buffer.GetSize()})));
    });
  });
}

} // namespace troupe::http
