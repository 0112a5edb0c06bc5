// Misuses of the typed actor interfaces that must not compile (tests/actors/typed_protocols_check.cmake compiles this
// file once per case). Case 0 is the correct use of every interface named here and must compile: it proves that the
// other cases fail for the reason named, not for a missing include.
//
// Each case is `#elif MISUSE == n` with the text of the error reported (CAF's static assertion, or, for a request
// the receiver does not accept, no request overload), in a comment the check reads:
//   expect: <text>

#include "actors/breaker.hpp"
#include "actors/rate_limit.hpp"
#include "persistence/writer.hpp"

#include <caf/all.hpp>

#include <string>

namespace troupe {

void misuse(caf::event_based_actor* self, breaker_actor breaker, limiter_shard_actor limiter, db_writer_actor writer) {
#if MISUSE == 0
  self->request(breaker, caf::infinite, breaker_admit_atom::value).then([](breaker_admission&) {});
  self->request(breaker, caf::infinite, breaker_state_atom::value).then([](breaker_snapshot&) {});
  self->send(breaker, breaker_result_atom::value, uint64_t{1}, true, int64_t{0}, std::string{});
  self->send(breaker, breaker_health_atom::value, false, std::string{"down"});
  self->request(limiter, caf::infinite, limit_atom::value, std::string{"ip:1"}, rate_policy{}).then([](limit_decision&) {});
  self->request(writer, caf::infinite, write_atom::value, write_request{}).then([](write_result&) {});
#elif MISUSE == 1
  // expect: wrong functor signature
  // The breaker answers an admission with a breaker_admission, not a snapshot.
  self->request(breaker, caf::infinite, breaker_admit_atom::value).then([](breaker_snapshot&) {});
#elif MISUSE == 2
  // expect: receiver does not accept given message
  // A result without its retry-after and failure text.
  self->send(breaker, breaker_result_atom::value, uint64_t{1}, true);
#elif MISUSE == 3
  // expect: no matching
  // A limit asked without the policy: the shard would not know the bucket's size.
  self->request(limiter, caf::infinite, limit_atom::value, std::string{"ip:1"}).then([](limit_decision&) {});
#elif MISUSE == 4
  // expect: wrong functor signature
  // The shard answers a decision, not a bare yes or no.
  self->request(limiter, caf::infinite, limit_atom::value, std::string{"ip:1"}, rate_policy{}).then([](bool) {});
#elif MISUSE == 5
  // expect: wrong functor signature
  // A write is acknowledged with a write_result (the stored answer, replayed or not), not a bool.
  self->request(writer, caf::infinite, write_atom::value, write_request{}).then([](bool) {});
#elif MISUSE == 6
  // expect: receiver does not accept given message
  // The writer's flush timer is its own: nobody else can send it.
  self->send(writer, caf::atom_constant<caf::atom("flush")>::value);
#endif
}

} // namespace troupe
