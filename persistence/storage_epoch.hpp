#pragma once
// Whether a user's storage use read earlier from PostgreSQL is still exact, without asking PostgreSQL again.
//
// Every transaction that may change `storage_usage` (uploads reserving or giving back bytes, files registered or
// resized; see persistence/database.cpp) is bracketed: `begun` is incremented before it starts and `ended` after it
// committed or rolled back. A reader takes settled() before its read; if it returns an epoch, and unchanged_since()
// of that epoch still holds when the answer arrives and when it is used later, no such transaction ran or began in
// between, so the value is what PostgreSQL would answer now. Anything else (a change under way, or one since) means
// read again. Process-wide and conservative: a change of any user invalidates every user's value (changes are rare
// next to reads), and only this process's connections are seen (a cluster must route the changes through the user's
// owner, or tell it).

#include <atomic>
#include <cstdint>
#include <optional>

namespace troupe {

class storage_epoch {
public:
  /// The current epoch if no change is under way.
  std::optional<uint64_t> settled() const {
    auto b = begun_.load(std::memory_order_acquire);
    auto e = ended_.load(std::memory_order_acquire);
    if (e != b)
      return std::nullopt;
    return b;
  }
  /// True if no change began since `epoch` was settled (so none ended either).
  bool unchanged_since(uint64_t epoch) const {
    return begun_.load(std::memory_order_acquire) == epoch && ended_.load(std::memory_order_acquire) == epoch;
  }

  /// A change under way, from construction to destruction (also by an exception).
  class change {
  public:
    explicit change(storage_epoch* epoch) : epoch_(epoch) {
      if (epoch_)
        epoch_->begun_.fetch_add(1, std::memory_order_acq_rel);
    }
    ~change() {
      if (epoch_)
        epoch_->ended_.fetch_add(1, std::memory_order_acq_rel);
    }
    change(const change&) = delete;
    change& operator=(const change&) = delete;

  private:
    storage_epoch* epoch_;
  };

private:
  std::atomic<uint64_t> begun_{0};
  std::atomic<uint64_t> ended_{0};
};

} // namespace troupe
