// Misuses of the typed actor interfaces that must not compile (tests/actors/typed_protocols_check.cmake compiles this
// file once per case). Case 0 is the correct use of every interface named here and must compile: it proves that the
// other cases fail for the reason named, not for a missing include.
//
// Each case is `#elif MISUSE == n` with the text of the error reported (CAF's static assertion, or, for a request
// the receiver does not accept, no request overload), in a comment the check reads:
//   expect: <text>

#include "actors/breaker.hpp"
#include "actors/cache.hpp"
#include "actors/jobs.hpp"
#include "actors/rate_limit.hpp"
#include "actors/sessions.hpp"
#include "actors/uploads.hpp"
#include "actors/upstream_client.hpp"
#include "persistence/queries.hpp"
#include "persistence/writer.hpp"

#include <caf/all.hpp>

#include <string>

namespace troupe {

void misuse(caf::event_based_actor* self, breaker_actor breaker, limiter_shard_actor limiter, db_writer_actor writer,
            job_queue_actor jobs, session_actor session, session_manager_actor sessions, cache_shard_actor shard,
            cache_key_actor key_holder, client::upstream_client_actor upstream, upload_router_actor uploads,
            upload_io_actor upload_io, db_query_actor db, db_connection_actor connection) {
#if MISUSE == 0
  self->request(breaker, caf::infinite, breaker_admit_atom::value).then([](breaker_admission&) {});
  self->request(breaker, caf::infinite, breaker_state_atom::value).then([](breaker_snapshot&) {});
  self->send(breaker, breaker_result_atom::value, uint64_t{1}, true, int64_t{0}, std::string{});
  self->send(breaker, breaker_health_atom::value, false, std::string{"down"});
  self->request(limiter, caf::infinite, limit_atom::value, std::string{"ip:1"}, rate_policy{})
    .then([](limit_decision&) {});
  self->request(writer, caf::infinite, write_atom::value, write_request{}).then([](write_result&) {});
  self->send(jobs, jobs_kick_atom::value);
  self->request(jobs, caf::infinite, jobs_running_atom::value).then([](std::vector<std::string>&) {});
  job_handler runs = [](caf::local_actor* queue, const job_record&) -> job_runner_actor {
    return queue->spawn<caf::linked>([]() -> job_runner_actor::behavior_type {
      return {[](job_run_atom, const job_record&) { return std::string{"{}"}; }};
    });
  };
  self->request(session, caf::infinite, authorize_atom::value, credential{}).then([](identity&) {});
  self->request(session, caf::infinite, quota_atom::value, int64_t{-1}).then([](quota_status&) {});
  self->request(sessions, caf::infinite, authorize_atom::value, std::string{"u1"}, credential{}).then([](identity&) {});
  self->send(sessions, cluster_view_atom::value);
  self->request(shard, caf::infinite, cache_get_atom::value, std::string{"k"}).then([](cache_reply&) {});
  self->request(key_holder, caf::infinite, cache_claim_atom::value, std::string{"k"}, int64_t{100})
    .then([](cache_reply&) {});
  self->request(shard, caf::infinite, cache_clear_atom::value).then([](uint64_t) {});
  cache_key_actor from_shard = shard; // a shard answers every message about one key
  self->request(upstream, caf::infinite, client::upstream_call_atom::value, client::upstream_request{})
    .then([](client::upstream_response&) {});
  self->request(uploads, caf::infinite, upload_new_atom::value, std::string{"u1"}, upload_spec{})
    .then([](upload_status&) {});
  self->request(upload_io, caf::infinite, upload_write_atom::value, std::string{"/p"}, upload_chunk{})
    .then([](int64_t) {});
  upload_session_actor as_session = uploads; // the router takes every request a session takes
  self->request(db, caf::infinite, user_by_email_atom::value, std::string{"a@example.com"}).then([](user_record&) {});
  self->request(db, caf::infinite, job_claim_atom::value, std::string{"node"}, int64_t{30000}, int32_t{2})
    .then([](std::vector<job_record>&) {});
  self->request(connection, caf::infinite, commit_atom::value, std::vector<write_request>{})
    .then([](std::vector<write_outcome>&) {});
  db_query_actor through_router = connection; // a connection answers every query
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
#elif MISUSE == 7
  // expect: Cannot assign incompatible handle
  // A runner must answer a job with its result JSON: one that answers true is not a job runner.
  job_handler runs = [](caf::local_actor* queue, const job_record&) -> job_runner_actor {
    using yes_runner = caf::typed_actor<caf::replies_to<job_run_atom, job_record>::with<bool>>;
    return queue->spawn<caf::linked>(
      []() -> yes_runner::behavior_type { return {[](job_run_atom, const job_record&) { return true; }}; });
  };
#elif MISUSE == 8
  // expect: receiver does not accept given message
  // The queue's poll timer is its own.
  self->send(jobs, caf::atom_constant<caf::atom("jobstick")>::value);
#elif MISUSE == 9
  // expect: no matching
  // A session is its user's: the manager needs the user id, the session does not take one.
  self->request(session, caf::infinite, authorize_atom::value, std::string{"u1"}, credential{}).then([](identity&) {});
#elif MISUSE == 10
  // expect: wrong functor signature
  // A quota reservation answers the quota's state, not a bool.
  self->request(sessions, caf::infinite, quota_atom::value, std::string{"u1"}, int64_t{1}).then([](bool) {});
#elif MISUSE == 11
  // expect: receiver does not accept given message
  // The hand-off timer is the manager's own.
  self->send(sessions, handoff_timeout_atom::value, std::string{"u1"});
#elif MISUSE == 12
  // expect: wrong functor signature
  // A get answers a cache_reply (hit or miss, and the value), never the bare value.
  self->request(shard, caf::infinite, cache_get_atom::value, std::string{"k"}).then([](std::string&) {});
#elif MISUSE == 13
  // expect: no matching
  // Clearing is for the shards (and the endpoints that reach all of theirs), not for whoever holds one key.
  self->request(key_holder, caf::infinite, cache_clear_atom::value).then([](uint64_t) {});
#elif MISUSE == 14
  // expect: Cannot assign incompatible handle
  // Whoever holds one key (another node's endpoint) is not a shard: it does not sweep this node's entries.
  cache_shard_actor not_a_shard = key_holder;
#elif MISUSE == 15
  // expect: wrong functor signature
  // A transfer ends with the whole response (status, headers, body, or why it failed), not just its status.
  self->request(upstream, caf::infinite, client::upstream_call_atom::value, client::upstream_request{})
    .then([](int) {});
#elif MISUSE == 16
  // expect: no matching
  // A PATCH names the user: the session refuses a chunk for an upload that is not the caller's.
  self->request(uploads, caf::infinite, upload_patch_atom::value, std::string{"id"}, upload_chunk{})
    .then([](upload_status&) {});
#elif MISUSE == 17
  // expect: wrong functor signature
  // A write answers the file's new size, not a bool.
  self->request(upload_io, caf::infinite, upload_write_atom::value, std::string{"/p"}, upload_chunk{}).then([](bool) {
  });
#elif MISUSE == 18
  // expect: wrong functor signature
  // A claim answers the claimed jobs, not how many.
  self->request(db, caf::infinite, job_claim_atom::value, std::string{"node"}, int64_t{30000}, int32_t{2})
    .then([](int64_t) {});
#elif MISUSE == 19
  // expect: no matching
  // The lease is in milliseconds as an int64_t; a 32-bit count of jobs is not a lease.
  self->request(db, caf::infinite, job_claim_atom::value, std::string{"node"}, int32_t{2})
    .then([](std::vector<job_record>&) {});
#elif MISUSE == 20
  // expect: no matching
  // Batches of the DB writer go to a connection, never through the router.
  self->request(db, caf::infinite, commit_atom::value, std::vector<write_request>{})
    .then([](std::vector<write_outcome>&) {});
#endif
}

} // namespace troupe
