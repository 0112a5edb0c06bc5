#include "actors/health_checks.hpp"

#include "actors/breaker.hpp"
#include "actors/messages.hpp"
#include "introspect/observed_actor.hpp"

#include <caf/all.hpp>

namespace troupe::client {

namespace {

using health_tick_atom = caf::atom_constant<caf::atom("hchecktick")>;

struct health_state {
  std::vector<config::upstream_settings> upstreams; // those with a health_check_path
  std::shared_ptr<directory> names;
  std::unique_ptr<upstream_clients> clients;

  static inline const char* name = "upstream.health";
};

using health_actor = observed_stateful_actor<health_state>;

/// Checks upstream `i` once, reports to its breaker, and schedules the next check.
void check(health_actor* self, size_t i) {
  const auto& u = self->state.upstreams[i];
  upstream_request req;
  req.url = u.base_url + u.health_check_path;
  if (u.type == "anthropic") {
    if (!u.api_key.empty())
      req.headers.push_back("x-api-key: " + u.api_key);
    req.headers.push_back("anthropic-version: 2023-06-01");
  } else if (!u.api_key.empty()) {
    req.headers.push_back("Authorization: Bearer " + u.api_key);
  }
  auto timeout = std::chrono::milliseconds{u.health_check_timeout_ms};
  req.connect_timeout = std::min(timeout, std::chrono::milliseconds{u.connect_timeout_ms});
  req.first_byte_timeout = timeout;
  req.total_timeout = timeout;
  req.max_response_bytes = 64 * 1024;
  auto interval = std::chrono::milliseconds{u.health_check_interval_ms};
  self->state.clients->call(self, std::move(req), [self, i, interval](upstream_response& res) {
    const auto& u = self->state.upstreams[i];
    bool ok = res.error == transfer_error::none && res.status >= 200 && res.status < 300;
    if (auto breaker = self->state.names->get(breaker_name(u.name))) {
      std::string detail;
      if (!ok)
        detail = res.error != transfer_error::none ? res.error_text
                                                   : "GET " + u.health_check_path + " answered " + std::to_string(res.status);
      caf::anon_send(*breaker, breaker_health_atom::value, ok, std::move(detail));
    }
    self->delayed_send(self, interval, health_tick_atom::value, static_cast<uint64_t>(i));
  });
}

caf::behavior health_checks(health_actor* self, std::vector<config::upstream_settings> upstreams,
                            std::shared_ptr<directory> names, std::vector<std::shared_ptr<doorbell>> bells) {
  auto& st = self->state;
  st.upstreams = std::move(upstreams);
  st.names = names;
  st.clients = std::make_unique<upstream_clients>(std::move(names), std::move(bells));
  for (size_t i = 0; i < st.upstreams.size(); ++i)
    self->send(self, health_tick_atom::value, static_cast<uint64_t>(i));
  return {
    [self](health_tick_atom, uint64_t i) {
      if (i < self->state.upstreams.size())
        check(self, static_cast<size_t>(i));
    },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

std::optional<child_spec> make_health_checks(const std::vector<config::upstream_settings>& upstreams,
                                             std::shared_ptr<directory> names,
                                             std::vector<std::shared_ptr<doorbell>> bells) {
  std::vector<config::upstream_settings> checked;
  for (const auto& u : upstreams)
    if (!u.health_check_path.empty())
      checked.push_back(u);
  if (checked.empty())
    return std::nullopt;
  return worker_child(
    "upstream.health",
    [checked, names, bells](caf::actor_system& sys) { return sys.spawn(health_checks, checked, names, bells); },
    std::chrono::milliseconds{5000});
}

} // namespace troupe::client
