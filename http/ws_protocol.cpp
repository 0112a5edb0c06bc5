#include "http/ws_protocol.hpp"

#include "config/hashing.hpp"
#include "http/header_text.hpp"
#include "http/json_out.hpp"

#include "config/digest.hpp"
#include "config/json.hpp"
#include "config/utf8.hpp"

#include <wslay/wslay.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace troupe::http::ws {

namespace {

constexpr char rfc6455_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Whether a comma-separated header value holds `token` (case-insensitive), as Connection: keep-alive, Upgrade.
bool has_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    auto comma = value.find(',');
    if (iequals(trim(value.substr(0, comma)), token))
      return true;
    if (comma == std::string_view::npos)
      break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

/// The only value of header `name`; nullopt when absent, "\n" (never a valid value) when it appears twice.
std::optional<std::string_view> single(const std::vector<std::pair<std::string, std::string>>& headers,
                                       std::string_view name) {
  std::optional<std::string_view> found;
  for (const auto& [key, value] : headers)
    if (iequals(key, name)) {
      if (found)
        return std::string_view{"\n"};
      found = value;
    }
  return found;
}

} // namespace

// --- handshake ---

std::string accept_key(std::string_view key) {
  std::string input{key};
  input += rfc6455_guid;
  return base64_encode(digest_of(digest_algorithm::sha1, input));
}

std::variant<std::string, handshake_refusal>
check_handshake(std::string_view method, const std::vector<std::pair<std::string, std::string>>& headers) {
  if (method != "GET")
    return handshake_refusal{400, "A WebSocket handshake is a GET request."};
  bool upgrade = false, connection = false;
  for (const auto& [name, value] : headers) {
    if (iequals(name, "Upgrade") && has_token(value, "websocket"))
      upgrade = true;
    if (iequals(name, "Connection") && has_token(value, "upgrade"))
      connection = true;
  }
  if (!upgrade || !connection)
    return handshake_refusal{400, "This route speaks WebSocket only: send Upgrade: websocket and Connection: Upgrade."};
  auto version = single(headers, "Sec-WebSocket-Version");
  if (!version || trim(*version) != "13")
    return handshake_refusal{400, "Only WebSocket version 13 is spoken here.", true};
  auto key = single(headers, "Sec-WebSocket-Key");
  std::string raw;
  if (!key || !base64_decode(trim(*key), raw) || raw.size() != 16)
    return handshake_refusal{400, "Sec-WebSocket-Key must be the base64 of 16 bytes."};
  return accept_key(trim(*key));
}

// --- codec ---

struct ws_codec::callbacks {
  static ssize_t recv(wslay_event_context_ptr ctx, uint8_t* buf, size_t len, int, void* user) {
    auto* self = static_cast<ws_codec*>(user);
    if (self->input_left_ == 0) {
      wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
      return -1;
    }
    auto n = std::min(len, self->input_left_);
    std::memcpy(buf, self->input_, n);
    self->input_ += n;
    self->input_left_ -= n;
    return static_cast<ssize_t>(n);
  }

  static ssize_t send(wslay_event_context_ptr, const uint8_t* data, size_t len, int, void* user) {
    static_cast<ws_codec*>(user)->output_.append(reinterpret_cast<const char*>(data), len);
    return static_cast<ssize_t>(len);
  }

  static void message(wslay_event_context_ptr, const wslay_event_on_msg_recv_arg* arg, void* user) {
    auto* self = static_cast<ws_codec*>(user);
    // Nothing after the peer's close frame counts, however the bytes arrived: wslay may parse frames already read
    // into its buffer in the same call (found by the ws_protocol fuzz target).
    if (self->close_handed_)
      return;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
      self->close_handed_ = true;
      // A reason that is not UTF-8 makes the close frame a protocol error (RFC 6455 5.5.1); wslay checks that only
      // when the whole payload arrived in one read, so it is checked here too and such a frame is not handed over.
      std::string_view reason{reinterpret_cast<const char*>(arg->msg), arg->msg_length};
      reason.remove_prefix(std::min<size_t>(2, reason.size()));
      for (size_t i = 0; i < reason.size();) {
        auto n = config::utf8_sequence(reason, i);
        if (n == 0)
          return;
        i += n;
      }
    }
    if (self->message_)
      self->message_(arg->opcode,
                     std::string_view{reinterpret_cast<const char*>(arg->msg), arg->msg_length});
  }
};

ws_codec::ws_codec(uint64_t max_message_bytes, on_message message) : message_(std::move(message)) {
  wslay_event_callbacks cbs{};
  cbs.recv_callback = &callbacks::recv;
  cbs.send_callback = &callbacks::send;
  cbs.on_msg_recv_callback = &callbacks::message;
  wslay_event_context_ptr ctx = nullptr;
  if (wslay_event_context_server_init(&ctx, &cbs, this) != 0)
    throw std::bad_alloc();
  wslay_event_config_set_max_recv_msg_length(ctx, max_message_bytes);
  ctx_ = ctx;
}

ws_codec::~ws_codec() {
  wslay_event_context_free(static_cast<wslay_event_context_ptr>(ctx_));
}

void ws_codec::set_max_message_bytes(uint64_t max) {
  wslay_event_config_set_max_recv_msg_length(static_cast<wslay_event_context_ptr>(ctx_), max);
}

void ws_codec::flush() {
  auto ctx = static_cast<wslay_event_context_ptr>(ctx_);
  if (wslay_event_want_write(ctx) && wslay_event_send(ctx) != 0)
    broken_ = true;
}

void ws_codec::feed(const char* data, size_t size) {
  auto ctx = static_cast<wslay_event_context_ptr>(ctx_);
  input_ = data;
  input_left_ = size;
  // wslay stops reading after a close frame or an error (the rest is not read: wslay_event_want_read says so).
  while (input_left_ > 0 && !broken_ && wslay_event_want_read(ctx)) {
    if (wslay_event_recv(ctx) != 0) {
      broken_ = true;
      break;
    }
  }
  input_ = nullptr;
  input_left_ = 0;
  flush();
}

bool ws_codec::send(uint8_t op, std::string_view payload) {
  auto ctx = static_cast<wslay_event_context_ptr>(ctx_);
  wslay_event_msg msg{op, reinterpret_cast<const uint8_t*>(payload.data()), payload.size()};
  if (wslay_event_queue_msg(ctx, &msg) != 0)
    return false;
  flush();
  return true;
}

bool ws_codec::close(uint16_t code, std::string_view reason) {
  auto ctx = static_cast<wslay_event_context_ptr>(ctx_);
  reason = reason.substr(0, 120); // a control frame's payload is at most 125 bytes
  if (wslay_event_queue_close(ctx, code, reinterpret_cast<const uint8_t*>(reason.data()), reason.size()) != 0)
    return false;
  flush();
  return true;
}

std::string ws_codec::take_output() {
  return std::exchange(output_, std::string{});
}

bool ws_codec::close_sent() const {
  return wslay_event_get_close_sent(static_cast<wslay_event_context_ptr>(ctx_)) != 0;
}

bool ws_codec::close_received() const {
  return wslay_event_get_close_received(static_cast<wslay_event_context_ptr>(ctx_)) != 0;
}

bool ws_codec::finished() const {
  auto ctx = static_cast<wslay_event_context_ptr>(ctx_);
  return close_sent() && (close_received() || !wslay_event_want_read(ctx)) && !wslay_event_want_write(ctx);
}

// --- envelopes ---

namespace {

std::variant<envelope, envelope_error> refuse(std::string message, std::string param = {}, std::string id = {},
                                              service_error code = service_error::invalid_input) {
  return envelope_error{code, std::move(message), std::move(param), std::move(id)};
}

} // namespace

std::variant<envelope, envelope_error> parse_envelope(std::string_view text, size_t max_depth) {
  auto parsed = json::parse(text, max_depth);
  if (!parsed) {
    const auto& err = parsed.error();
    auto code = err.code == json::parse_errc::too_deep        ? service_error::json_too_deep
                : err.code == json::parse_errc::duplicate_key ? service_error::duplicate_key
                                                              : service_error::invalid_json;
    return refuse("The message is not valid JSON: " + err.reason + ".", err.param, {}, code);
  }
  const auto& doc = parsed.document();
  if (!doc.IsObject())
    return refuse("A message is a JSON object.");
  envelope out;
  // The id first, so that every later refusal can name it.
  if (auto it = doc.FindMember("id"); it != doc.MemberEnd()) {
    if (!it->value.IsString() || it->value.GetStringLength() == 0 || it->value.GetStringLength() > max_id_bytes)
      return refuse("id must be a string of 1 to " + std::to_string(max_id_bytes) + " bytes.", "id");
    out.id.assign(it->value.GetString(), it->value.GetStringLength());
  }
  auto type_it = doc.FindMember("type");
  if (type_it == doc.MemberEnd() || !type_it->value.IsString())
    return refuse("type must be one of auth, chat, cancel, ping.", "type", out.id);
  std::string_view type{type_it->value.GetString(), type_it->value.GetStringLength()};
  const char* allowed_extra = nullptr; // the one member beside type and id each kind takes
  if (type == "auth") {
    out.kind = envelope_kind::auth;
    allowed_extra = "token";
  } else if (type == "chat") {
    out.kind = envelope_kind::chat;
    allowed_extra = "request";
  } else if (type == "cancel") {
    out.kind = envelope_kind::cancel;
  } else if (type == "ping") {
    out.kind = envelope_kind::ping;
  } else {
    return refuse("type must be one of auth, chat, cancel, ping.", "type", out.id);
  }
  for (auto m = doc.MemberBegin(); m != doc.MemberEnd(); ++m) {
    std::string_view name{m->name.GetString(), m->name.GetStringLength()};
    if (name != "type" && name != "id" && !(allowed_extra && name == allowed_extra))
      return refuse("Unknown member in a " + std::string{type} + " message.", std::string{name}, out.id);
  }
  switch (out.kind) {
  case envelope_kind::auth: {
    auto it = doc.FindMember("token");
    if (it == doc.MemberEnd() || !it->value.IsString() || it->value.GetStringLength() == 0
        || it->value.GetStringLength() > max_token_bytes)
      return refuse("token must be a credential of 1 to " + std::to_string(max_token_bytes) + " bytes.", "token",
                    out.id);
    out.token.assign(it->value.GetString(), it->value.GetStringLength());
    break;
  }
  case envelope_kind::chat: {
    if (out.id.empty())
      return refuse("A chat message needs an id: its answer carries it.", "id");
    auto it = doc.FindMember("request");
    if (it == doc.MemberEnd() || !it->value.IsObject())
      return refuse("request must be a chat completion request (a JSON object).", "request", out.id);
    // Re-serialised from the parsed document (bounded depth, no duplicate keys): the gateway reads exactly what was
    // checked here, whatever bytes the client sent.
    out.request = json_of([&](json_writer& w) { it->value.Accept(w); });
    auto stream = it->value.FindMember("stream");
    out.stream = stream != it->value.MemberEnd() && stream->value.IsBool() && stream->value.GetBool();
    break;
  }
  case envelope_kind::cancel:
    if (out.id.empty())
      return refuse("A cancel message names the chat's id.", "id");
    break;
  case envelope_kind::ping:
    break;
  }
  return out;
}

// --- frames ---

namespace {

void write_head(json_writer& w, const char* type, std::string_view id) {
  write_string(w, "type", type);
  if (!id.empty())
    write_string(w, "id", id);
}

/// {"type":...,"id":...  (open: the caller adds members and the closing brace)
std::string open_frame(const char* type, std::string_view id) {
  auto text = json_of([&](json_writer& w) {
    w.StartObject();
    write_head(w, type, id);
    w.EndObject();
  });
  text.pop_back(); // the closing brace
  return text;
}

} // namespace

std::string ready_frame(std::string_view user_id) {
  return json_of([&](json_writer& w) {
    w.StartObject();
    write_string(w, "type", "ready");
    write_string(w, "user_id", user_id);
    w.EndObject();
  });
}

std::string completion_frame(std::string_view id, int status, std::string_view cache, std::string_view response) {
  auto text = json_of([&](json_writer& w) {
    w.StartObject();
    write_head(w, "chat.completion", id);
    w.Key("status");
    w.Int(status);
    write_string(w, "cache", cache);
    w.EndObject();
  });
  text.pop_back();
  text += ",\"response\":";
  text += response;
  text += '}';
  return text;
}

std::string chunk_frame(std::string_view id, std::string_view chunk) {
  auto text = open_frame("chat.chunk", id);
  text.reserve(text.size() + chunk.size() + 12);
  text += ",\"chunk\":";
  text += chunk;
  text += '}';
  return text;
}

std::string done_frame(std::string_view id, bool cancelled) {
  return open_frame("chat.done", id) + (cancelled ? ",\"cancelled\":true}" : "}");
}

std::string pong_frame(std::string_view id) {
  return open_frame("pong", id) + "}";
}

std::string error_frame_from_body(std::string_view id, int status, std::string_view body) {
  auto parsed = json::parse(body);
  auto text = json_of([&](json_writer& w) {
    w.StartObject();
    write_head(w, "error", id);
    w.Key("status");
    w.Int(status);
    w.Key("error");
    if (parsed && parsed->IsObject() && parsed->HasMember("error") && (*parsed)["error"].IsObject()) {
      (*parsed)["error"].Accept(w); // depth-bounded by json::parse
    } else {
      w.StartObject();
      write_string(w, "type", "api_error");
      write_string(w, "code", "upstream_failed");
      auto message = "The answer (status " + std::to_string(status) + ") carried no error object.";
      write_string(w, "message", message);
      w.EndObject();
    }
    w.EndObject();
  });
  return text;
}

// --- stream events ---

void stream_events::feed(std::string_view bytes, std::vector<event>& out) {
  if (failed_)
    return;
  buffer_.append(bytes.data(), bytes.size());
  size_t start = 0;
  for (;;) {
    auto end = buffer_.find("\n\n", std::max(start, scanned_));
    if (end == std::string::npos)
      break;
    event e;
    std::string_view block{buffer_.data() + start, end - start};
    bool any_data = false;
    while (!block.empty()) {
      auto nl = block.find('\n');
      auto line = block.substr(0, nl);
      block = nl == std::string_view::npos ? std::string_view{} : block.substr(nl + 1);
      if (line.empty() || line.front() == ':')
        continue; // a comment (keep-alive)
      auto colon = line.find(':');
      auto field = line.substr(0, colon);
      auto value = colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ')
        value.remove_prefix(1);
      if (field == "data") {
        if (any_data)
          e.data += '\n';
        e.data.append(value.data(), value.size());
        any_data = true;
      } else if (field == "event") {
        e.name.assign(value.data(), value.size());
      }
    }
    if (any_data)
      out.push_back(std::move(e));
    start = end + 2;
  }
  buffer_.erase(0, start);
  scanned_ = buffer_.size() > 0 ? buffer_.size() - 1 : 0;
  if (buffer_.size() > max_event_bytes_) {
    failed_ = true;
    buffer_.clear();
    scanned_ = 0;
  }
}

} // namespace troupe::http::ws
