#pragma once
// Guards for counts that must be given back exactly once, in the spirit of Seastar's gate::holder: a count is taken
// by making a guard and given back by destroying it (or releasing it early), so a dying actor, a dropped callback or
// an exception cannot leak it.
//
//   count_holder        one unit of a shared atomic count (live actors, running jobs, calls in flight): counted in
//                       when made, counted out once when released or destroyed
//   hold_while_alive    ties a count_holder to an actor's life (live session actors, upload sessions)
//
// The same idea elsewhere: quota_reservation (actors/sessions.hpp) for a user's daily generation quota,
// inflight_gate's slot (http/traffic.hpp) for a gated request, and the HTTP server's admission_ticket and
// body_reservation (http/server.hpp) for a request's admission and its buffered body.
//
// Holders are move-only. One holder is used by one owner at a time; the counts themselves are atomic, so holders of
// one count may live on any threads.

#include <caf/actor.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <utility>

namespace troupe {

/// One unit of `count`, counted in on construction and counted out exactly once: by release() or by the destructor,
/// whichever comes first. A default-constructed or moved-from holder holds nothing.
class count_holder {
public:
  count_holder() noexcept = default;

  /// Counts in; `count` stays alive as long as the holder (it may be an aliasing pointer into a counters struct: see
  /// hold_count).
  explicit count_holder(std::shared_ptr<std::atomic<int64_t>> count) noexcept
    : count_(count.get()), keep_(std::move(count)) {
    if (count_)
      count_->fetch_add(1, std::memory_order_acq_rel);
  }

  /// Counts in; the caller guarantees that `count` outlives the holder (a count owned with the holders' owner).
  explicit count_holder(std::atomic<int64_t>& count) noexcept : count_(&count) {
    count_->fetch_add(1, std::memory_order_acq_rel);
  }

  count_holder(count_holder&& other) noexcept
    : count_(std::exchange(other.count_, nullptr)), keep_(std::move(other.keep_)) {}

  count_holder& operator=(count_holder&& other) noexcept {
    if (this != &other) {
      release();
      count_ = std::exchange(other.count_, nullptr);
      keep_ = std::move(other.keep_);
    }
    return *this;
  }

  count_holder(const count_holder&) = delete;
  count_holder& operator=(const count_holder&) = delete;

  ~count_holder() { release(); }

  /// Counts out now; later calls (and the destructor) do nothing.
  void release() noexcept {
    if (auto* count = std::exchange(count_, nullptr))
      count->fetch_sub(1, std::memory_order_acq_rel);
    keep_.reset();
  }

  bool held() const noexcept { return count_ != nullptr; }

private:
  std::atomic<int64_t>* count_ = nullptr;
  std::shared_ptr<void> keep_; // owner of *count_ when the holder keeps it alive
};

/// A holder of `(*owner).*member`, keeping `owner` (a counters struct shared with /metrics) alive as long as it.
template <class Owner>
count_holder hold_count(const std::shared_ptr<Owner>& owner, std::atomic<int64_t> Owner::*member) {
  if (!owner)
    return {};
  return count_holder{std::shared_ptr<std::atomic<int64_t>>(owner, &((*owner).*member))};
}

/// Keeps `holder` until `actor` terminates, however it ends (a normal exit, a crash, a kill, its manager's end): the
/// count of live actors cannot drift when no one is left to handle a down message. An actor already dead releases it
/// at once; an invalid handle releases it at once too.
void hold_while_alive(const caf::actor& actor, count_holder holder);

} // namespace troupe
