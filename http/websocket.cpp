#include "http/websocket.hpp"

#include "http/auth.hpp"
#include "http/error_mapping.hpp"
#include "http/header_text.hpp"
#include "http/server.hpp"

#include "actors/metrics.hpp"
#include "config/log.hpp"
#include "config/service_error.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <unordered_map>
#include <mutex>
#include <unordered_set>

namespace troupe::http {

namespace {

using clock = std::chrono::steady_clock;

/// What the route sends the hub to open a session. Local only: it holds the connection's link.
struct ws_open {
  std::shared_ptr<const ws_runtime> runtime;
  std::shared_ptr<ws_link> link;
  std::string token;   // the handshake's credential; "" = an auth message must follow
  std::string user_id; // whom it identified
  std::string address; // the TCP peer (the client's address is resolved from it and the forwarded headers)
  std::vector<std::pair<std::string, std::string>> forwarded; // X-Forwarded-For, Forwarded and User-Agent lines
  std::string request_id; // the handshake's; the chats' request ids extend it
  tracing::context trace;  // the handshake's: each chat is a child of its span, in its trace
  caf::actor hub;         // set by the hub: where the session claims its user (ws_claim_atom)
};

} // namespace
} // namespace troupe::http

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::http::ws_open)

namespace troupe::http {

namespace {

using ws_open_atom = caf::atom_constant<caf::atom("wsopen")>;
using ws_start_atom = caf::atom_constant<caf::atom("wsstart")>;
using ws_frame_atom = caf::atom_constant<caf::atom("wsframe")>;
using ws_answer_atom = caf::atom_constant<caf::atom("wsanswer")>;
using ws_authed_atom = caf::atom_constant<caf::atom("wsauthed")>;
using ws_ended_atom = caf::atom_constant<caf::atom("wsended")>;
using ws_auth_late_atom = caf::atom_constant<caf::atom("wsauthto")>;
using ws_closed_atom = caf::atom_constant<caf::atom("wsclosed")>;
using ws_claim_atom = caf::atom_constant<caf::atom("wsclaim")>;
using ws_claimed_atom = caf::atom_constant<caf::atom("wsclaimed")>;

} // namespace

// --- ws_link ---

bool ws_link::send(std::string payload, bool binary) {
  auto c = conn_.lock();
  if (!c || c->gone())
    return false;
  outbound item;
  item.bytes = std::move(payload);
  item.protocol_tag = binary ? ws::binary : ws::text;
  c->send(std::move(item));
  return true;
}

void ws_link::close(uint16_t code, std::string reason) {
  auto c = conn_.lock();
  if (!c || c->gone())
    return;
  outbound item;
  item.bytes.push_back(static_cast<char>(code >> 8));
  item.bytes.push_back(static_cast<char>(code & 0xff));
  item.bytes += reason;
  item.protocol_tag = ws::close;
  c->send(std::move(item));
}

bool ws_link::gone() const {
  auto c = conn_.lock();
  return !c || c->gone();
}

int64_t ws_link::backlog() const {
  auto c = conn_.lock();
  return c ? c->queued_bytes() : 0;
}

// --- ws_channel ---

ws_channel::ws_channel(ws_channel_settings settings, std::shared_ptr<ws_link> link,
                       std::function<void(std::string, bool)> message, std::function<void()> closed)
  : settings_(std::move(settings)), link_(std::move(link)), message_(std::move(message)), closed_(std::move(closed)),
    codec_(link_->authenticated.load() ? settings_.max_message_bytes
                                        : std::min(settings_.max_message_bytes, settings_.max_anonymous_message_bytes),
           [this](uint8_t op, std::string_view payload) {
             if (op != ws::text && op != ws::binary)
               return; // pings are answered by wslay, pongs only show the client lives, close is handled by wslay
             if (close_sent_)
               return; // closing: nothing new is started
             auto bytes = static_cast<int64_t>(payload.size());
             if (over_waiting_ || link_->waiting.load(std::memory_order_acquire) >= settings_.max_waiting
                 || link_->waiting_bytes.load(std::memory_order_acquire) + bytes
                      > std::max<int64_t>(settings_.max_waiting_bytes,
                                          static_cast<int64_t>(settings_.max_message_bytes))) {
               over_waiting_ = true; // the client ignores its 429s: nothing more is taken from it
               return;
             }
             link_->waiting.fetch_add(1, std::memory_order_acq_rel);
             link_->waiting_bytes.fetch_add(bytes, std::memory_order_acq_rel);
             message_(std::string{payload}, op == ws::binary);
           }) {}

ws_channel::~ws_channel() {
  on_closed();
}

void ws_channel::on_start(connection& c, steady_time now) {
  heard_ = now;
  pinged_ = now;
  if (link_->abandoned.load(std::memory_order_acquire)) // its session died before the 101 went out
    start_close(c, ws::internal_error, "the connection's actor failed");
  after(c);
}

void ws_channel::on_input(connection& c, const char* data, size_t size) {
  heard_ = clock::now();
  if (!authenticated_ && link_->authenticated.load(std::memory_order_acquire)) {
    authenticated_ = true; // messages may now be as large as ws.max_message_bytes
    codec_.set_max_message_bytes(settings_.max_message_bytes);
  }
  codec_.feed(data, size);
  if (over_waiting_ && !codec_.close_sent())
    start_close(c, ws::policy_violation, "too many messages waiting: the client ignores its 429 errors");
  after(c);
}

void ws_channel::on_outbound(connection& c, outbound item) {
  if (item.protocol_tag == ws::close) {
    uint16_t code = ws::normal;
    std::string_view reason;
    if (item.bytes.size() >= 2) {
      code = static_cast<uint16_t>((static_cast<unsigned char>(item.bytes[0]) << 8)
                                   | static_cast<unsigned char>(item.bytes[1]));
      reason = std::string_view{item.bytes}.substr(2);
    }
    if (!codec_.close_sent() && codec_.close(code, reason))
      close_sent_ = clock::now();
  } else {
    codec_.send(static_cast<uint8_t>(item.protocol_tag), item.bytes); // refused once closing: dropped
  }
  after(c);
}

void ws_channel::on_tick(connection& c, steady_time now) {
  if (close_sent_) {
    if (now - *close_sent_ > settings_.close_wait)
      c.close_now(); // the client does not answer our close frame
    return;
  }
  if (settings_.draining && settings_.draining()) {
    start_close(c, ws::going_away, "the server is shutting down");
  } else if (now - heard_ > settings_.idle_timeout) {
    start_close(c, ws::going_away, "nothing heard within the idle timeout (no pong)");
  } else if (now - pinged_ >= settings_.ping_interval) {
    pinged_ = now;
    codec_.send(ws::ping, {});
  }
  after(c);
}

void ws_channel::on_closed() {
  if (auto closed = std::exchange(closed_, nullptr))
    closed();
}

void ws_channel::start_close(connection&, uint16_t code, const char* reason) {
  if (codec_.close(code, reason))
    close_sent_ = clock::now();
}

void ws_channel::after(connection& c) {
  auto out = codec_.take_output();
  if (codec_.close_sent() && !close_sent_)
    close_sent_ = clock::now(); // wslay answered a close, or refused a frame, by itself
  if (codec_.broken()) {
    c.close_now();
    return;
  }
  if (!out.empty())
    c.write_raw(out);
  if (codec_.finished())
    c.end_upgraded();
}

// --- the session actor ---

namespace {

/// A chat of a session being answered.
/// What a chat's answer and its cancel share: whoever sends a frame of the chat holds `mutex`, so nothing of it
/// follows the chat.done of a cancel (the gateway's thread writes a stream, the session answers a cancel).
struct ws_call_state {
  std::mutex mutex;
  std::atomic<bool> cancelled{false};
  ws::stream_events events;  // a stream's bytes, cut into events (under mutex)
  bool failed = false;       // an event too large to relay: the chat ended with an error (under mutex)
};

struct ws_call {
  uint64_t serial = 0; // tells a cancelled call's late end from a new call that reuses its id
  bool binary = false;
  std::shared_ptr<ws_call_state> shared = std::make_shared<ws_call_state>();
};

struct ws_session_state {
  ws_open open;
  bool authed = false;
  bool authing = false;
  double tokens = 0;
  clock::time_point refilled{};
  uint64_t sequence = 0;
  std::unordered_map<std::string, ws_call> calls;
  std::unordered_set<uint64_t> cancelling; // cancelled chats still running (they count against ws.max_inflight)
  bool started = false;                    // ws_start arrived (the connection was upgraded)
  int64_t refused_in_row = 0;              // messages refused for the rate, one after another
  static inline const char* name = "ws.session";
};

using ws_session_actor = caf::stateful_actor<ws_session_state>;

void send_error(ws_session_actor* self, const std::string& id, service_error code, const std::string& message,
                bool binary, const std::string& param = {}) {
  auto res = error_response(code, message, self->state.open.request_id, param);
  self->state.open.link->send(ws::error_frame_from_body(id, res.status, res.body), binary);
}

/// One token of the connection's message allowance; false when it is spent.
bool take_token(ws_session_state& st) {
  const auto& s = st.open.runtime->settings;
  auto now = clock::now();
  auto elapsed = std::chrono::duration<double>(now - st.refilled).count();
  st.tokens = std::min(static_cast<double>(s.burst), st.tokens + elapsed * s.messages_per_second);
  st.refilled = now;
  if (st.tokens < 1)
    return false;
  st.tokens -= 1;
  return true;
}

/// An internal request of the connection's user, as if it came over HTTP from the client.
request internal_request(ws_session_state& st, const char* method, const char* path, std::string body,
                         const std::string& token) {
  request req;
  req.id = st.open.request_id.substr(0, 100) + "." + std::to_string(++st.sequence);
  req.method = method;
  req.path = path;
  req.route = path;
  req.headers = st.open.forwarded;
  req.headers.emplace_back("Authorization", "Bearer " + token);
  req.headers.emplace_back("Content-Type", "application/json");
  req.body = std::move(body);
  req.remote_address = st.open.address;
  req.started = clock::now();
  req.started_unix_ns = tracing::unix_now_ns();
  // In the handshake's trace, under its span (a chat's spans are recorded when the handshake's were).
  req.trace = st.open.trace;
  req.trace.parent = st.open.trace.span;
  req.trace.span = tracing::new_span_id();
  return req;
}

void authenticate(ws_session_actor* self, std::string token) {
  auto& st = self->state;
  st.authing = true;
  auto req = internal_request(st, "GET", "/ws", {}, token);
  auto me = caf::actor_cast<caf::actor>(self);
  auto r = std::make_shared<responder>(std::move(req), [me, token](response res) {
    caf::anon_send(me, ws_authed_atom::value, static_cast<int32_t>(res.status), std::move(res.body), token);
  });
  st.open.runtime->auth->identify(r, "default", [r](const identity& who) { r->send(json_response(200, who.user_id)); });
}

void start_chat(ws_session_actor* self, ws::envelope env, bool binary) {
  auto& st = self->state;
  ws_call call;
  call.serial = st.sequence + 1;
  call.binary = binary;
  st.calls.emplace(env.id, call);
  auto req = internal_request(st, "POST", "/v1/chat/completions", std::move(env.request), st.open.token);
  auto me = caf::actor_cast<caf::actor>(self);
  auto link = st.open.link;
  auto id = env.id;
  auto shared = call.shared;
  auto serial = call.serial;
  // A streamed answer goes from the gateway's thread straight to the connection, event by event.
  auto consumer = std::make_shared<stream_consumer>();
  consumer->start = [](const response&) {};
  consumer->write = [link, id, binary, shared](std::string_view bytes) {
    std::lock_guard<std::mutex> guard{shared->mutex};
    if (shared->cancelled.load() || shared->failed || link->gone())
      return false;
    std::vector<ws::stream_events::event> out;
    shared->events.feed(bytes, out);
    for (auto& e : out) {
      if (e.name == "error")
        link->send(ws::error_frame_from_body(id, 502, e.data), binary);
      else if (e.data != "[DONE]")
        link->send(ws::chunk_frame(id, e.data), binary);
    }
    if (shared->events.failed()) {
      shared->failed = true;
      auto res = error_response(service_error::upstream_failed, "An event of the stream was too large to relay.", id);
      link->send(ws::error_frame_from_body(id, res.status, res.body), binary);
      return false;
    }
    return !link->gone();
  };
  consumer->end = [me, link, id, binary, shared, serial](bool cut_off) {
    {
      std::lock_guard<std::mutex> guard{shared->mutex};
      if (shared->cancelled.load() || shared->failed) {
        // Answered already: by the cancel, or by the error that stopped the relay.
      } else if (cut_off) {
        auto res = error_response(service_error::upstream_failed, "The streamed answer was cut off.", id);
        link->send(ws::error_frame_from_body(id, res.status, res.body), binary);
      } else {
        link->send(ws::done_frame(id, false), binary);
      }
    }
    caf::anon_send(me, ws_ended_atom::value, id, serial);
  };
  consumer->gone = [link, shared] { return shared->cancelled.load() || link->gone(); };
  consumer->backlog = [link] { return link->backlog(); };
  auto r = std::make_shared<responder>(
    std::move(req),
    [me, id, serial](response res) {
      std::string cache;
      for (const auto& [name, value] : res.headers)
        if (name == "X-Cache")
          cache = value;
      caf::anon_send(me, ws_answer_atom::value, id, serial, static_cast<int32_t>(res.status), std::move(res.body),
                     std::move(cache));
    },
    std::move(consumer));
  r->export_spans(st.open.runtime->spans);
  try {
    st.open.runtime->chat(std::move(r));
  } catch (const std::exception& e) {
    // A route handler that throws is a bug: the responder, destroyed unanswered, answers 500 to this chat.
    log::error("websocket chat handler threw", log::fields{}.add("error", e.what()));
  }
}

void on_message(ws_session_actor* self, const std::string& payload, bool binary) {
  auto& st = self->state;
  st.open.link->waiting.fetch_sub(1, std::memory_order_acq_rel);
  st.open.link->waiting_bytes.fetch_sub(static_cast<int64_t>(payload.size()), std::memory_order_acq_rel);
  // Every message spends the allowance, a malformed one too, before it is parsed: a client over its rate costs
  // no parse of a large message (the id of a small one is read, so that the client can match the refusal).
  if (!take_token(st)) {
    std::string id;
    if (payload.size() <= 4096)
      if (auto small = ws::parse_envelope(payload, st.open.runtime->max_json_depth); auto* env = std::get_if<ws::envelope>(&small))
        id = env->id;
    send_error(self, id, service_error::rate_limited,
               "This connection sends more than ws.messages_per_second messages; slow down.", binary);
    if (++st.refused_in_row >= 100) // it does not slow down
      st.open.link->close(ws::policy_violation, "100 messages in a row over ws.messages_per_second");
    return;
  }
  st.refused_in_row = 0;
  auto parsed = ws::parse_envelope(payload, st.open.runtime->max_json_depth);
  if (auto* refused = std::get_if<ws::envelope_error>(&parsed)) {
    send_error(self, refused->id, refused->code, refused->message, binary, refused->param);
    return;
  }
  auto& env = std::get<ws::envelope>(parsed);
  switch (env.kind) {
  case ws::envelope_kind::ping:
    st.open.link->send(ws::pong_frame(env.id), binary);
    return;
  case ws::envelope_kind::auth:
    if (st.authing) {
      send_error(self, env.id, service_error::conflict, "An authentication is already being checked.", binary);
      return;
    }
    authenticate(self, env.token);
    return;
  case ws::envelope_kind::cancel: {
    auto it = st.calls.find(env.id);
    if (it == st.calls.end()) {
      send_error(self, env.id, service_error::not_found, "No chat with this id is being answered.", binary, "id");
      return;
    }
    // Answered now: the gateway may read on a little for the usage the upstream reports (a plain answer runs to its
    // end), but nothing more of it is sent; the id is free again, the chat still counts against ws.max_inflight
    // until it ends.
    auto call = it->second;
    st.calls.erase(it);
    st.cancelling.insert(call.serial);
    std::lock_guard<std::mutex> guard{call.shared->mutex};
    call.shared->cancelled.store(true);
    st.open.link->send(ws::done_frame(env.id, true), binary);
    return;
  }
  case ws::envelope_kind::chat:
    if (!st.authed) {
      send_error(self, env.id, service_error::unauthenticated, "Authenticate first: send an auth message.", binary);
      return;
    }
    if (st.calls.count(env.id) != 0) {
      send_error(self, env.id, service_error::conflict, "A chat with this id is already being answered.", binary,
                 "id");
      return;
    }
    if (static_cast<int64_t>(st.calls.size() + st.cancelling.size()) >= st.open.runtime->settings.max_inflight) {
      send_error(self, env.id, service_error::rate_limited,
                 "This connection has ws.max_inflight chats being answered; wait for one to end.", binary);
      return;
    }
    start_chat(self, std::move(env), binary);
    return;
  }
}

caf::behavior ws_session(ws_session_actor* self, ws_open open) {
  auto& st = self->state;
  st.open = std::move(open);
  st.authed = !st.open.token.empty();
  st.tokens = static_cast<double>(st.open.runtime->settings.burst);
  st.refilled = clock::now();
  // One timer: by then the connection was upgraded (else its handshake failed after the hub opened this session,
  // and nobody will ever tell it: it ends) and, if it came without a credential, authenticated.
  self->delayed_send(self, std::chrono::milliseconds{st.open.runtime->settings.auth_timeout_ms},
                     ws_auth_late_atom::value);
  return {
    [self](ws_start_atom) {
      auto& st = self->state;
      st.started = true;
      if (st.authed) {
        st.open.link->authenticated.store(true, std::memory_order_release);
        st.open.link->send(ws::ready_frame(st.open.user_id));
      }
    },
    [self](ws_auth_late_atom) {
      auto& st = self->state;
      if (!st.started)
        self->quit(); // never upgraded
      else if (!st.authed)
        st.open.link->close(ws::policy_violation, "no authentication within ws.auth_timeout_ms");
    },
    [self](ws_frame_atom, const std::string& payload, bool binary) { on_message(self, payload, binary); },
    [self](ws_authed_atom, int32_t status, const std::string& body, const std::string& token) {
      auto& st = self->state;
      st.authing = false;
      if (status == 200) {
        // The user's place among its connections (ws.max_connections_per_user), then the channel is open to it.
        self->request(st.open.hub, std::chrono::seconds{5}, ws_claim_atom::value, body)
          .then(
            [self, token, user = body](bool granted) {
              self->send(self, ws_claimed_atom::value, granted, token, user);
            },
            [self, token, user = body](caf::error&) { self->send(self, ws_claimed_atom::value, false, token, user); });
        return;
      }
      st.open.link->send(ws::error_frame_from_body({}, status, body));
      if (!st.authed) // a refused first credential ends the connection; a refused refresh keeps the old one
        st.open.link->close(ws::policy_violation, "authentication failed");
    },
    [self](ws_claimed_atom, bool granted, const std::string& token, const std::string& user) {
      auto& st = self->state;
      if (!granted) {
        send_error(self, {}, service_error::rate_limited,
                   "This user holds ws.max_connections_per_user WebSocket connections on this node.", false);
        if (!st.authed) // a refused first credential ends the connection; a refused switch keeps the old one
          st.open.link->close(ws::policy_violation, "too many connections for this user");
        return;
      }
      st.authed = true;
      st.open.token = token;
      st.open.user_id = user;
      st.open.link->authenticated.store(true, std::memory_order_release);
      st.open.link->send(ws::ready_frame(user));
    },
    [self](ws_answer_atom, const std::string& id, uint64_t serial, int32_t status, const std::string& body,
           const std::string& cache) {
      auto& st = self->state;
      auto it = st.calls.find(id);
      if (it == st.calls.end() || it->second.serial != serial) {
        st.cancelling.erase(serial); // cancelled: answered then
        return;
      }

      auto call = it->second;
      st.calls.erase(it);
      if (status == 200)
        st.open.link->send(ws::completion_frame(id, status, cache, body), call.binary);
      else
        st.open.link->send(ws::error_frame_from_body(id, status, body), call.binary);
    },
    [self](ws_ended_atom, const std::string& id, uint64_t serial) {
      auto it = self->state.calls.find(id);
      if (it != self->state.calls.end() && it->second.serial == serial)
        self->state.calls.erase(it);
      else
        self->state.cancelling.erase(serial);
    },
    [self](ws_closed_atom) {
      for (auto& [id, call] : self->state.calls)
        call.shared->cancelled.store(true); // streams stop at their next write; answers are dropped
      self->quit();
    },
  };
}

// --- the hub ---

struct ws_hub_state {
  int64_t max = 0;
  int64_t max_per_user = 0;
  std::unordered_map<std::string, int64_t> per_user;   // connections of each user (authenticated ones)
  std::unordered_map<caf::actor_addr, std::string> user_of; // the user each session holds a place of
  std::shared_ptr<std::atomic<int64_t>> live;
  std::unordered_set<caf::actor_addr> sessions;
  static inline const char* name = "ws";
};

/// Gives `session`'s place to `user` (releasing its previous user's); false when that user has no place left.
bool claim(ws_hub_state& st, const caf::actor_addr& session, const std::string& user) {
  auto held = st.user_of.find(session);
  if (held != st.user_of.end() && held->second == user)
    return true;
  if (st.per_user[user] >= st.max_per_user) {
    if (st.per_user[user] == 0)
      st.per_user.erase(user);
    return false;
  }
  if (held != st.user_of.end()) {
    if (--st.per_user[held->second] <= 0)
      st.per_user.erase(held->second);
    st.user_of.erase(held);
  }
  ++st.per_user[user];
  st.user_of.emplace(session, user);
  return true;
}

void release(ws_hub_state& st, const caf::actor_addr& session) {
  auto held = st.user_of.find(session);
  if (held == st.user_of.end())
    return;
  if (--st.per_user[held->second] <= 0)
    st.per_user.erase(held->second);
  st.user_of.erase(held);
}

caf::behavior ws_hub(caf::stateful_actor<ws_hub_state>* self, int64_t max, int64_t max_per_user,
                     std::shared_ptr<std::atomic<int64_t>> live) {
  self->state.max = max;
  self->state.max_per_user = max_per_user;
  self->state.live = std::move(live);
  self->state.live->store(0); // a restarted hub starts with no session (its predecessor's died with it)
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& st = self->state;
    if (st.sessions.erase(msg.source) == 0) {
      self->quit(msg.reason); // the supervisor: the linked sessions go with the hub
      return;
    }
    release(st, msg.source);
    st.live->store(static_cast<int64_t>(st.sessions.size()));
    if (msg.reason && msg.reason != caf::exit_reason::normal && msg.reason != caf::exit_reason::user_shutdown)
      log::warn("websocket session died", log::fields{}.add("reason", to_string(msg.reason)));
  });
  return {
    [self](ws_open_atom, ws_open& open) -> caf::result<caf::actor> {
      auto& st = self->state;
      if (static_cast<int64_t>(st.sessions.size()) >= st.max)
        return make_error(service_error::overloaded,
                          "This node holds ws.max_connections WebSocket connections; retry shortly.");
      if (!open.user_id.empty() && st.per_user.count(open.user_id) != 0
          && st.per_user[open.user_id] >= st.max_per_user)
        return make_error(service_error::rate_limited,
                          "This user holds ws.max_connections_per_user WebSocket connections on this node.");
      auto link = open.link;
      auto user = open.user_id;
      open.hub = caf::actor_cast<caf::actor>(self);
      auto session = self->spawn<caf::linked>(ws_session, std::move(open));
      if (!user.empty())
        claim(st, session.address(), user);
      // However it ends other than by its connection closing, the client learns it: 1011, or 1001 on shutdown.
      session->attach_functor([link](const caf::error& reason) {
        if (!reason || reason == caf::exit_reason::normal)
          return;
        link->abandoned.store(true, std::memory_order_release); // read by a channel that starts after this
        if (reason == caf::exit_reason::user_shutdown)
          link->close(ws::going_away, "the server is shutting down");
        else
          link->close(ws::internal_error, "the connection's actor failed");
      });
      st.sessions.insert(session.address());
      st.live->store(static_cast<int64_t>(st.sessions.size()));
      return session;
    },
    [self](ws_claim_atom, const std::string& user) {
      auto sender = self->current_sender();
      return sender && self->state.sessions.count(caf::actor_cast<caf::actor_addr>(sender)) != 0
             && claim(self->state, caf::actor_cast<caf::actor_addr>(sender), user);
    },
    // The metrics collector and the mailbox watch ask every named actor for its backlog.
    [self](mailbox_atom) -> size_t { return self->mailbox().size(); },
  };
}

} // namespace

child_spec ws_hub_child(int64_t max_connections, int64_t max_per_user, std::shared_ptr<metrics_registry> metrics) {
  auto live = std::make_shared<std::atomic<int64_t>>(0);
  if (metrics)
    metrics->add_collector([live](prometheus_writer& out) {
      out.family("troupe_ws_connections", "gauge", "WebSocket connections open on this node (GET /ws).");
      out.sample("troupe_ws_connections", {}, static_cast<double>(live->load()));
    });
  return worker_child(
    "ws",
    [max_connections, max_per_user, live](caf::actor_system& sys) {
      return sys.spawn(ws_hub, max_connections, max_per_user, live);
    },
    std::chrono::milliseconds{2000});
}

// --- the route ---

namespace {

void open_session(authenticator& auth, const std::shared_ptr<responder>& r,
                  const std::shared_ptr<const ws_runtime>& runtime, std::string accept, std::string token,
                  std::string user_id) {
  auto hub = auth.bridge().find("ws");
  if (!hub) {
    r->fail(make_error(service_error::unavailable, "The WebSocket hub is restarting; retry shortly."));
    return;
  }
  auto link = std::make_shared<ws_link>(r->conn());
  ws_open open;
  open.runtime = runtime;
  open.link = link;
  open.token = std::move(token);
  open.user_id = std::move(user_id);
  open.address = r->req().remote_address;
  for (const auto& [name, value] : r->req().headers)
    if (iequals(name, "X-Forwarded-For") || iequals(name, "Forwarded") || iequals(name, "User-Agent"))
      open.forwarded.emplace_back(name, value);
  open.request_id = r->req().id;
  open.trace = r->req().trace;
  bool header_auth = !open.token.empty(); // (open is moved into the request below)
  auth.bridge().direct().request<caf::actor>(
    *hub, std::chrono::seconds{5},
    [r, runtime, link, accept, header_auth](caf::actor& session) {
      ws_channel_settings settings;
      settings.max_message_bytes = runtime->max_message_bytes;
      settings.ping_interval = std::chrono::milliseconds{runtime->settings.ping_interval_ms};
      settings.idle_timeout = std::chrono::milliseconds{runtime->settings.idle_timeout_ms};
      settings.draining = runtime->draining;
      // Authenticated by the handshake: its first messages may be full size (they may come before ws_start).
      if (header_auth)
        link->authenticated.store(true, std::memory_order_release);
      auto channel = std::make_shared<ws_channel>(
        settings, link,
        [session](std::string payload, bool binary) {
          caf::anon_send(session, ws_frame_atom::value, std::move(payload), binary);
        },
        [session] { caf::anon_send(session, ws_closed_atom::value); });
      response head;
      head.header("Upgrade", "websocket");
      head.header("Sec-WebSocket-Accept", accept);
      if (r->upgrade(std::move(head), std::move(channel)))
        caf::anon_send(session, ws_start_atom::value); // after the 101: its first frame cannot overtake it
      else if (!r->answered())
        r->fail(make_error(service_error::shutting_down, "The server is shutting down."));
      // Otherwise (not upgraded) the channel, dropped, tells the session its connection closed.
    },
    [r](caf::error& err) { r->fail(err); }, ws_open_atom::value, std::move(open));
}

} // namespace

void add_websocket_routes(router& routes, authenticator& auth, std::shared_ptr<const ws_runtime> runtime) {
  routes.add("GET", "/ws", [&auth, runtime](const std::shared_ptr<responder>& r) {
    auto checked = ws::check_handshake(r->req().method, r->req().headers);
    if (auto* refusal = std::get_if<ws::handshake_refusal>(&checked)) {
      auto res = error_response(service_error::invalid_input, refusal->message, r->req().id);
      if (refusal->version_header)
        res.header("Sec-WebSocket-Version", "13");
      r->send(std::move(res));
      return;
    }
    auto accept = std::get<std::string>(std::move(checked));
    auto authorization = r->req().header("Authorization");
    if (!authorization) {
      open_session(auth, r, runtime, std::move(accept), {}, {});
      return;
    }
    std::string token = *authorization;
    if (token.size() > 7 && iequals(std::string_view{token}.substr(0, 7), "Bearer "))
      token.erase(0, 7); // else identify refuses it (401) before anything is opened
    // Checked like any request's credential: a refusal is an HTTP 401/429 the client sees before any upgrade.
    auth.identify(r, "default", [&auth, r, runtime, accept, token](const identity& who) {
      open_session(auth, r, runtime, accept, token, who.user_id);
    });
  });
}

} // namespace troupe::http
