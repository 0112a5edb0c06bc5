#include "http/bridge.hpp"
#include "introspect/observed_actor.hpp"

#include "config/log.hpp"

namespace troupe::http {

namespace {

std::string worker_name(size_t i) {
  return "http.bridge." + std::to_string(i);
}

caf::behavior bridge_worker(observed_actor* self) {
  return {
    [self](bridge_job& job) { job.run(self); },
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

std::vector<child_spec> bridge_children(size_t count) {
  std::vector<child_spec> result;
  for (size_t i = 0; i < count; ++i)
    result.push_back(child_spec{worker_name(i), [](caf::actor_system& sys) { return sys.spawn(bridge_worker); },
                                restart_type::permanent, std::chrono::milliseconds{5000}, child_kind::worker});
  return result;
}

actor_bridge::actor_bridge(std::shared_ptr<directory> names, size_t workers, std::chrono::milliseconds timeout,
                           caller& direct)
  : names_(std::move(names)), timeout_(timeout), caller_(direct) {
  for (size_t i = 0; i < workers; ++i)
    worker_names_.push_back(worker_name(i));
}

void actor_bridge::post(const std::shared_ptr<responder>& r, bridge_job job) {
  auto i = next_.fetch_add(1, std::memory_order_relaxed) % worker_names_.size();
  auto worker = names_->get(worker_names_[i]);
  if (!worker) {
    r->fail(make_error(service_error::unavailable, "The request bridge is restarting; retry shortly."));
    return;
  }
  job.run = [r, run = std::move(job.run)](caf::event_based_actor* self) {
    r->arrived();
    log::trace_scope trace{r->req().trace.trace_hex()}; // what the request's code logs here names its trace
    run(self);
  };
  caf::anon_send(*worker, std::move(job));
}

} // namespace troupe::http
