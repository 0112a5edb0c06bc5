#pragma once
// The non-blocking hand-offs from a reactor thread to the actors and back.
//
// A route handler with one question calls bridge.ask(responder, target, to_response, message...): the request goes
// straight into the target's mailbox through the caller (http/caller.hpp) with the configured timeout, and the
// reply (turned into a response by `to_response`), the error, or the timeout (504) completes the responder on the
// thread that answered. Nothing ever waits, and no worker stands in between.
//
// A handler that needs an actor context (several requests, state kept across replies) calls bridge.run(responder,
// job): the job is posted to one of the bridge worker actors (round robin) and runs there with `self`. Bridge
// workers are supervised like every actor: the application starts them as children (bridge_children) and the
// bridge finds the live incarnation by name on each post.

#include "http/caller.hpp"
#include "http/server.hpp"

#include "actors/directory.hpp"
#include "actors/supervisor.hpp"
#include "actors/worker_job.hpp"
#include "config/service_error.hpp"

#include <caf/all.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace troupe::http {

/// A closure run inside a bridge worker (actors/worker_job.hpp). Local only: it never crosses a node.
using bridge_job = worker_job;

/// Child specs of `count` bridge workers, named "http.bridge.0" ...
std::vector<child_spec> bridge_children(size_t count);

class actor_bridge {
public:
  /// `direct` sends the requests of ask/ask_named and must outlive the bridge.
  actor_bridge(std::shared_ptr<directory> names, size_t workers, std::chrono::milliseconds timeout, caller& direct);

  /// Sends `msg...` to `target`; completes `r` with to_response(reply) or with the error. `Reply` is the type
  /// of the target's answer.
  template <class Reply, class ToResponse, class... Ts>
  void ask(const std::shared_ptr<responder>& r, caf::actor target, ToResponse to_response, Ts... msg) {
    caller_.request<Reply>(
      target, timeout_,
      [r, to_response = std::move(to_response)](Reply& reply) {
        r->arrived();
        r->send(to_response(reply));
      },
      [r](caf::error& err) { r->fail(err); }, std::move(msg)...);
  }
  /// Same, with the target looked up by name; 503 if it is not running right now.
  template <class Reply, class ToResponse, class... Ts>
  void ask_named(const std::shared_ptr<responder>& r, const std::string& name, ToResponse to_response, Ts... msg) {
    auto target = names_->get(name);
    if (!target) {
      r->fail(make_error(service_error::unavailable, "The " + name + " actor is restarting; retry shortly."));
      return;
    }
    ask<Reply>(r, std::move(*target), std::move(to_response), std::move(msg)...);
  }

  /// Runs `job` inside a bridge worker (it may send requests with `self` and complete `r` from their handlers).
  void run(const std::shared_ptr<responder>& r, std::function<void(caf::event_based_actor*)> job) {
    post(r, bridge_job{std::move(job)});
  }

  /// The live incarnation of a named actor.
  std::optional<caf::actor> find(const std::string& name) const { return names_->get(name); }
  template <class Handle>
  std::optional<Handle> find(const actor_name<Handle>& name) const {
    return names_->get(name);
  }

  std::chrono::milliseconds timeout() const { return timeout_; }
  /// Requests from any thread, answered on the answering actor's thread (http/caller.hpp).
  caller& direct() { return caller_; }

private:
  void post(const std::shared_ptr<responder>& r, bridge_job job);

  std::shared_ptr<directory> names_;
  std::vector<std::string> worker_names_;
  std::chrono::milliseconds timeout_;
  std::atomic<size_t> next_{0};
  caller& caller_;
};

} // namespace troupe::http
