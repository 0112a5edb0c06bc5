#pragma once
// The mock's shared state, reached from every server thread: the default knobs (flags, changed at run time by
// POST /mock/config), the queue of scripted knobs ({"count": n} configs), the seeded PRNG behind error_rate,
// and the counters GET /mock/stats reports. One mutex guards it; each chat request takes it once (admit_chat).
//
// Knob precedence for one chat request, later wins: defaults < the scripted entry at the head of the queue
// (if any; each admitted request uses up one of its count) < the X-Mock header < [[mock ...]] directives.
// Then: a status knob of 400..599 answers that status; else error_rate draws; else malformed/huge/normal.

#include "tools/mock-upstream/knobs.hpp"
#include "tools/mock-upstream/plan.hpp"

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace troupe::mock {

/// Connection counters the server keeps and /mock/stats reports.
struct connection_counters {
  std::atomic<int64_t> open{0};
  std::atomic<uint64_t> accepted{0};
};

/// What admit_chat decided for one chat request.
struct admission {
  uint64_t number = 0; // 1-based count of chat requests since start or reset; the answer id is chatcmpl-mock-<n>
  knobs resolved;
  int status = 200; // the status to answer (200 also for malformed answers and hang-ups)
};

class mock_state {
public:
  mock_state(knobs flag_defaults, uint64_t seed, std::vector<std::string> models, connection_counters& connections);

  /// Admits a valid chat request: numbers it, resolves its knobs (see the precedence above), draws error_rate,
  /// and counts it under the status it will get (or "hangup").
  admission admit_chat(const knob_overrides& per_request, std::string_view model, bool stream,
                       std::string_view authorization);
  /// Counts a chat request answered `status` before admission (invalid body or knobs). Uses no scripted knobs.
  void count_rejected_chat(int status, std::string_view authorization);
  /// Counts the inputs of an admitted embeddings request ("embedding_inputs" in the stats).
  void count_embedding_inputs(uint64_t inputs);
  /// Keeps the body of the latest chat or embeddings request (valid or not), for GET /mock/last_request.
  void remember_request(std::string_view body);
  /// The latest chat request's body as it arrived; nullopt before the first one (or after a reset).
  std::optional<std::string> last_request() const;
  /// Keeps an admitted request counted in "in_flight" until its plan ends.
  in_flight_guard track_in_flight();

  /// POST /mock/config: a JSON object of knobs, optionally with "count". Returns "" or an error sentence (and
  /// changes nothing then).
  std::string configure(std::string_view json_body);
  /// POST /mock/reset: counters to zero, scripted knobs dropped, defaults back to the flags, PRNG reseeded.
  void reset();

  std::string stats_json() const;
  std::string config_json() const; // {"defaults":{...},"scripted":[{"knobs":{...},"remaining":n}]}
  const std::vector<std::string>& models() const { return models_; }

private:
  struct scripted {
    knob_overrides knobs;
    int64_t remaining;
  };
  void count_authorization(std::string_view authorization);

  const knobs flag_defaults_;
  const uint64_t seed_;
  const std::vector<std::string> models_;
  connection_counters& connections_;

  mutable std::mutex mutex_;
  knobs defaults_;
  std::deque<scripted> script_;
  std::mt19937_64 random_;
  uint64_t requests_ = 0;
  uint64_t streams_ = 0;
  uint64_t embedding_inputs_ = 0;
  std::map<std::string, uint64_t> by_status_;
  std::map<std::string, uint64_t> by_model_;
  std::set<std::string> authorization_;
  std::optional<std::string> last_request_;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<uint64_t> aborted_{0};
};

} // namespace troupe::mock
