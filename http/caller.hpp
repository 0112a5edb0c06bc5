#pragma once
// Requests to actors from threads that are not actors (the reactors), answered without a worker in between.
//
//   caller.request<Reply...>(dest, timeout, on_reply, on_error, message...)
//
// The message goes straight into `dest`'s mailbox with a CAF request id whose sender is the caller's companion
// actor (caf::actor_companion: an actor without a mailbox or a thread of its own, whose enqueue calls a function).
// The answer is therefore delivered by the thread that answers: `on_reply(Reply&...)` or `on_error(caf::error&)`
// runs there, once, and typically completes a responder (http/server.hpp), whose bytes go to the connection's
// reactor. A request thus costs one hand-off each way, where a bridge worker (http/bridge.hpp) costs two: the post
// to the worker and the worker's own request.
//
// Rules for the handlers, which run on another actor's thread (an actor that answered, or the caller's sweeper):
// never block, never throw, and do little more than build a response or send the next request.
//
// Every request ends exactly once: with its answer, with an error the receiver or CAF sends (the receiver is down:
// caf::sec::request_receiver_down), or with caf::sec::request_timeout once `timeout` passed without an answer (the
// sweeper checks every `sweep_interval`, so a timeout fires up to that much late; an answer after it is dropped).
// Typed handles (caf::typed_actor) are checked at compile time: the message must be in the receiver's interface
// and the handler must take what it answers.
//
// Local or remote receivers alike: the companion has an address like any actor, so a reply can cross nodes.

#include "config/service_error.hpp"

#include <caf/actor_companion.hpp>
#include <caf/actor_system.hpp>
#include <caf/all.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>

namespace troupe::http {

class caller {
public:
  using clock = std::chrono::steady_clock;

  /// Starts the companion (hidden: the actor system does not wait for it) and the timeout sweeper thread.
  explicit caller(caf::actor_system& sys, std::chrono::milliseconds sweep_interval = std::chrono::milliseconds{50});
  /// Stops the sweeper and disconnects the companion; requests still pending get neither handler (whatever they
  /// captured is released: a responder left unanswered answers 500 itself).
  ~caller();
  caller(const caller&) = delete;
  caller& operator=(const caller&) = delete;

  /// Sends `xs...` to `dest` as a request. `Replies...` are the types of the answer; for a typed handle they are
  /// deduced from its interface and checked. `timeout` = clock::duration::max() waits without a deadline.
  template <class... Replies, class Handle, class OnReply, class OnError, class... Ts>
  void request(const Handle& dest, clock::duration timeout, OnReply on_reply, OnError on_error, Ts&&... xs) {
    static_assert(sizeof...(Ts) > 0, "no message to send");
    using deduced = reply_types<Handle, std::tuple<Replies...>, Ts...>;
    auto handler = make_handler(std::move(on_reply), std::move(on_error), static_cast<deduced*>(nullptr));
    send(caf::actor_cast<caf::strong_actor_ptr>(dest), timeout, std::move(handler),
         caf::make_message(std::forward<Ts>(xs)...));
  }

  /// Requests sent and not yet ended.
  size_t pending() const;
  /// Answers that came after their request had ended (timed out), dropped.
  uint64_t late_answers() const { return late_.load(std::memory_order_relaxed); }
  /// Ends every request whose deadline is before `now` with caf::sec::request_timeout (the sweeper calls it; tests
  /// may too). Returns how many it ended.
  size_t sweep(clock::time_point now);

private:
  using handler_fn = std::function<void(caf::message&)>;

  // The reply types: Replies... when given, else the typed handle's answer to Ts... (untyped handles must name them).
  template <class Handle, class Given, class... Ts>
  struct reply_types_impl {
    using type = Given;
  };
  template <class Handle, class... Ts>
  struct reply_types_impl<Handle, std::tuple<>, Ts...> {
    static_assert(!std::is_same<typename Handle::signatures, caf::none_t>::value,
                  "an untyped receiver: name the reply types, request<Reply...>(...)");
    using answer = caf::response_type<typename Handle::signatures,
                                      typename caf::detail::implicit_conversions<std::decay_t<Ts>>::type...>;
    static_assert(answer::valid, "the receiver's interface has no such message");
    using type = typename answer::tuple_type;
  };
  template <class Handle, class Given, class... Ts>
  using reply_types = typename reply_types_impl<Handle, Given, Ts...>::type;

  template <class OnReply, class OnError, class... Rs>
  static handler_fn make_handler(OnReply on_reply, OnError on_error, std::tuple<Rs...>*) {
    static_assert(std::is_invocable_v<OnReply&, Rs&...>, "the reply handler does not take what the receiver answers");
    return [on_reply = std::move(on_reply), on_error = std::move(on_error)](caf::message& msg) mutable {
      if (msg.match_elements<Rs...>()) {
        apply_reply(on_reply, msg, std::index_sequence_for<Rs...>{}, static_cast<std::tuple<Rs...>*>(nullptr));
        return;
      }
      if (msg.match_elements<caf::error>()) {
        on_error(msg.get_mutable_as<caf::error>(0));
        return;
      }
      caf::error unexpected = make_error(service_error::internal, "An actor answered with an unexpected message.");
      on_error(unexpected);
    };
  }
  template <class F, size_t... Is, class... Rs>
  static void apply_reply(F& f, caf::message& msg, std::index_sequence<Is...>, std::tuple<Rs...>*) {
    f(msg.get_mutable_as<Rs>(Is)...);
  }

  void send(caf::strong_actor_ptr dest, clock::duration timeout, handler_fn handler, caf::message content);
  void deliver(caf::mailbox_element_ptr answer);
  void end(uint64_t id, caf::message& answer);
  void sweeper_loop();

  struct entry {
    handler_fn handler;
    clock::time_point deadline;
  };
  struct shard {
    mutable std::mutex mutex;
    std::unordered_map<uint64_t, entry> pending;
    clock::time_point earliest = clock::time_point::max(); // no entry's deadline is earlier (may be stale-early)
  };
  static constexpr size_t shard_count = 16;

  shard& shard_of(uint64_t id) { return shards_[id % shard_count]; }

  caf::strong_actor_ptr companion_;
  std::array<shard, shard_count> shards_;
  std::atomic<uint64_t> next_id_{0};
  std::atomic<uint64_t> late_{0};
  std::chrono::milliseconds sweep_interval_;
  std::mutex sweeper_mutex_;
  std::condition_variable sweeper_wake_;
  bool stopping_ = false;
  std::thread sweeper_;
};

} // namespace troupe::http
