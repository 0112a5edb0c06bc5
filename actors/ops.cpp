#include "actors/ops.hpp"
#include "introspect/observed_actor.hpp"

#include <caf/all.hpp>

#include <map>
#include <unordered_map>

namespace troupe {

namespace {

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

} // namespace

health_probe ping_probe(std::string check_name, std::shared_ptr<directory> names, std::string actor_name,
                        std::chrono::milliseconds timeout) {
  return {check_name, [=](caf::event_based_actor* self, std::function<void(health_check)> done) {
            auto start = std::chrono::steady_clock::now();
            auto target = names->get(actor_name);
            if (!target) {
              done({check_name, "unhealthy", 0, actor_name + " is not running"});
              return;
            }
            self->request(*target, caf::duration{timeout}, ping_atom::value)
              .then([done](health_check& result) { done(result); },
                    [=](caf::error& err) {
                      done({check_name, "unhealthy", ms_since(start),
                            err == caf::sec::request_timeout ? "timed out" : self->system().render(err)});
                    });
          }};
}

health_probe supervision_probe(std::shared_ptr<directory> names, std::string supervisor_name,
                               std::chrono::milliseconds timeout) {
  return {"actors", [=](caf::event_based_actor* self, std::function<void(health_check)> done) {
            auto start = std::chrono::steady_clock::now();
            auto target = names->get(supervisor_name);
            if (!target) {
              done({"actors", "unhealthy", 0, "the root supervisor is not running"});
              return;
            }
            self->request(*target, caf::duration{timeout}, children_atom::value)
              .then(
                [=](std::vector<child_info>& children) {
                  std::string down;
                  for (const auto& child : children)
                    if (child.restart == "permanent" && child.state != "running")
                      down += (down.empty() ? "" : ", ") + child.name;
                  if (down.empty())
                    done({"actors", "healthy", ms_since(start),
                          std::to_string(children.size()) + " supervised subsystems running"});
                  else
                    done({"actors", "degraded", ms_since(start), "not running: " + down});
                },
                [=](caf::error& err) {
                  done({"actors", "unhealthy", ms_since(start),
                        err == caf::sec::request_timeout ? "timed out" : self->system().render(err)});
                });
          }};
}

caf::actor spawn_health_actor(caf::actor_system& sys, std::vector<health_probe> probes) {
  return sys.spawn([probes = std::move(probes)](observed_actor* self) -> caf::behavior {
    return {
      [self, probes](check_atom) {
        auto promise = self->make_response_promise<std::vector<health_check>>();
        if (probes.empty()) {
          promise.deliver(std::vector<health_check>{});
          return promise;
        }
        // Results arrive in any order; deliver once all are in, in probe order.
        auto results = std::make_shared<std::vector<health_check>>(probes.size());
        auto pending = std::make_shared<size_t>(probes.size());
        for (size_t i = 0; i < probes.size(); ++i)
          probes[i].run(self, [results, pending, promise, i](health_check check) mutable {
            (*results)[i] = std::move(check);
            if (--*pending == 0)
              promise.deliver(std::move(*results));
          });
        return promise;
      },
      [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
    };
  });
}

caf::actor spawn_metrics_actor(caf::actor_system& sys, std::shared_ptr<metrics_registry> metrics,
                               std::shared_ptr<directory> names, std::chrono::milliseconds mailbox_timeout) {
  return sys.spawn([=](observed_actor* self) -> caf::behavior {
    return {
      [=](metrics_atom) {
        auto promise = self->make_response_promise<std::string>();
        auto actors = names->snapshot();
        auto sizes = std::make_shared<std::map<std::string, size_t>>();
        auto pending = std::make_shared<size_t>(actors.size());
        auto finish = [metrics, sizes, promise]() mutable {
          promise.deliver(metrics->render([&](prometheus_writer& out) {
            out.family("troupe_actor_mailbox_size", "gauge", "Messages waiting in the mailbox of each named actor.");
            for (const auto& [name, size] : *sizes)
              out.sample("troupe_actor_mailbox_size", {{"actor", name}}, static_cast<double>(size));
          }));
        };
        if (actors.empty()) {
          finish();
          return promise;
        }
        for (const auto& [name, handle] : actors) {
          if (handle == caf::actor{self}) {
            (*sizes)[name] = self->mailbox().size();
            if (--*pending == 0)
              finish();
            continue;
          }
          // High priority so a backed-up actor still answers; caf::duration keeps the priority (LIBRARY-NOTES).
          self->request<caf::message_priority::high>(handle, caf::duration{mailbox_timeout}, mailbox_atom::value)
            .then(
              [=, name = name](size_t size) mutable {
                (*sizes)[name] = size;
                if (--*pending == 0)
                  finish();
              },
              [=](caf::error&) mutable {
                // Busy in a blocking call (a detached actor) or gone: leave it out of this scrape.
                if (--*pending == 0)
                  finish();
              });
        }
        return promise;
      },
      [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
    };
  });
}

caf::actor spawn_debug_helper(caf::actor_system& sys) {
  struct sleeper_state {
    uint64_t next_id = 0;
    std::unordered_map<uint64_t, caf::typed_response_promise<int64_t>> waiting;
  };
  return sys.spawn([](observed_stateful_actor<sleeper_state>* self) -> caf::behavior {
    return {
      [self](delay_atom, int64_t ms) {
        auto promise = self->make_response_promise<int64_t>();
        auto id = self->state.next_id++;
        self->state.waiting.emplace(id, promise);
        self->delayed_send(self, std::chrono::milliseconds{ms}, delay_done_atom::value, id, ms);
        return promise;
      },
      [](echo_atom, std::string& text) { return std::move(text); },
      [self](delay_done_atom, uint64_t id, int64_t ms) {
        auto i = self->state.waiting.find(id);
        if (i != self->state.waiting.end()) {
          i->second.deliver(ms);
          self->state.waiting.erase(i);
        }
      },
      [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
    };
  });
}

} // namespace troupe
