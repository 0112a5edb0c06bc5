#include "tools/mock-upstream/routes.hpp"

#include "tools/mock-upstream/chat.hpp"
#include "tools/mock-upstream/embeddings.hpp"
#include "tools/mock-upstream/messages.hpp"
#include "tools/mock-upstream/json_text.hpp"

#include <ctime>

namespace troupe::mock {

namespace {

void respond_json(plan& p, int status, std::string_view json, bool keep_alive, std::string_view extra = {}) {
  respond(p, status, "application/json", json, keep_alive, extra);
}

void respond_error(plan& p, int status, std::string_view message, std::string_view code, bool keep_alive,
                   std::string_view extra = {}) {
  respond_json(p, status, openai_error_body(message, error_type_for(status), code), keep_alive, extra);
}

/// What every admitted route does first: keeps the body (GET /mock/last_request) and reads the X-Mock knobs. False
/// when they are invalid (answered 400 already).
bool read_knobs(const request_head& head, std::string_view body_text, mock_state& state, plan& p,
                knob_overrides& per_request) {
  state.remember_request(body_text);
  if (auto problem = parse_knob_list(head.x_mock, per_request); !problem.empty()) {
    state.count_rejected_chat(400, head.authorization);
    respond_json(p, 400, openai_error_body(problem, "invalid_request_error", "invalid_mock_header", "X-Mock"),
                 head.keep_alive);
    return false;
  }
  return true;
}

void reject_body(const request_head& head, const request_error& error, mock_state& state, plan& p) {
  state.count_rejected_chat(400, head.authorization);
  respond_json(p, 400, openai_error_body(error.message, "invalid_request_error", error.code, error.param),
               head.keep_alive);
}

answer_context context_of(const request_head& head) {
  answer_context context;
  context.created = static_cast<int64_t>(std::time(nullptr));
  context.keep_alive = head.keep_alive;
  context.chunked_ok = head.minor_version >= 1;
  return context;
}

void chat_completions(const request_head& head, std::string_view body_text, mock_state& state, plan& p) {
  chat_request request;
  request_error error;
  knob_overrides per_request;
  if (!read_knobs(head, body_text, state, p, per_request))
    return;
  if (!parse_chat_request(body_text, request, error)) {
    reject_body(head, error, state, p);
    return;
  }
  per_request.merge(request.directives);
  auto admitted = state.admit_chat(per_request, request.model, request.stream, head.authorization);
  p.in_flight = state.track_in_flight();
  plan_chat_answer(request, admitted, context_of(head), p);
}

void embeddings(const request_head& head, std::string_view body_text, mock_state& state, plan& p) {
  embeddings_request request;
  request_error error;
  knob_overrides per_request;
  if (!read_knobs(head, body_text, state, p, per_request))
    return;
  if (!parse_embeddings_request(body_text, request, error)) {
    reject_body(head, error, state, p);
    return;
  }
  auto admitted = state.admit_chat(per_request, request.model, false, head.authorization);
  state.count_embedding_inputs(request.inputs.size());
  p.in_flight = state.track_in_flight();
  plan_embeddings_answer(request, admitted, context_of(head), p);
}

void messages(const request_head& head, std::string_view body_text, mock_state& state, plan& p) {
  chat_request request;
  request_error error;
  knob_overrides per_request;
  if (!read_knobs(head, body_text, state, p, per_request))
    return;
  if (!parse_messages_request(body_text, request, error)) {
    state.count_rejected_chat(400, head.authorization);
    respond_json(p, 400, anthropic_error_body(400, error.message), head.keep_alive);
    return;
  }
  per_request.merge(request.directives);
  auto admitted = state.admit_chat(per_request, request.model, request.stream, head.authorization);
  p.in_flight = state.track_in_flight();
  plan_messages_answer(request, admitted, context_of(head), p);
}

std::string models_json(const mock_state& state) {
  std::string out = "{\"object\":\"list\",\"data\":[";
  for (size_t i = 0; i < state.models().size(); ++i) {
    if (i > 0)
      out += ',';
    out += "{\"id\":";
    append_json_string(out, state.models()[i]);
    out += ",\"object\":\"model\",\"created\":0,\"owned_by\":\"mock\"}";
  }
  return out + "]}";
}

/// One route: a path, the methods it allows ("GET", "POST" or "GET, POST") and its handler.
struct route {
  std::string_view path;
  std::string_view methods;
  void (*handle)(const request_head&, std::string_view body, mock_state&, plan&);
};

const route routes[] = {
  {"/v1/chat/completions", "POST", chat_completions},
  {"/chat/completions", "POST", chat_completions},
  {"/v1/embeddings", "POST", embeddings},
  {"/v1/messages", "POST", messages},
  {"/messages", "POST", messages},
  {"/embeddings", "POST", embeddings},
  {"/v1/models", "GET",
   [](const request_head& head, std::string_view, mock_state& state, plan& p) {
     respond_json(p, 200, models_json(state), head.keep_alive);
   }},
  {"/models", "GET",
   [](const request_head& head, std::string_view, mock_state& state, plan& p) {
     respond_json(p, 200, models_json(state), head.keep_alive);
   }},
  {"/mock/stats", "GET",
   [](const request_head& head, std::string_view, mock_state& state, plan& p) {
     respond_json(p, 200, state.stats_json(), head.keep_alive);
   }},
  {"/mock/last_request", "GET",
   [](const request_head& head, std::string_view, mock_state& state, plan& p) {
     if (auto body = state.last_request())
       respond_json(p, 200, *body, head.keep_alive);
     else
       respond_error(p, 404, "No chat request has arrived yet.", "no_request", head.keep_alive);
   }},
  {"/mock/reset", "POST",
   [](const request_head& head, std::string_view, mock_state& state, plan& p) {
     state.reset();
     respond_json(p, 200, state.config_json(), head.keep_alive);
   }},
  {"/mock/config", "GET, POST",
   [](const request_head& head, std::string_view body_text, mock_state& state, plan& p) {
     if (head.method == "POST") {
       if (auto error = state.configure(body_text); !error.empty()) {
         respond_error(p, 400, error, "invalid_mock_config", head.keep_alive);
         return;
       }
     }
     respond_json(p, 200, state.config_json(), head.keep_alive);
   }},
  {"/health", "GET",
   [](const request_head& head, std::string_view, mock_state&, plan& p) {
     respond_json(p, 200, "{\"status\":\"ok\"}", head.keep_alive);
   }},
};

bool method_allowed(std::string_view methods, std::string_view method) {
  while (!methods.empty()) {
    auto comma = methods.find(", ");
    if (methods.substr(0, comma) == method)
      return true;
    if (comma == std::string_view::npos)
      break;
    methods.remove_prefix(comma + 2);
  }
  return false;
}

} // namespace

plan route_request(const request_head& head, std::string_view body_text, mock_state& state) {
  plan p;
  for (const auto& r : routes) {
    if (r.path != head.path)
      continue;
    if (!method_allowed(r.methods, head.method)) {
      respond_error(p, 405, "Method " + std::string{head.method} + " is not allowed on " + std::string{r.path},
                    "method_not_allowed", head.keep_alive, "Allow: " + std::string{r.methods} + "\r\n");
      return p;
    }
    r.handle(head, body_text, state, p);
    return p;
  }
  respond_error(p, 404, "Unknown path " + std::string{head.path}, "unknown_url", head.keep_alive);
  return p;
}

plan reject_request(int status, std::string_view message) {
  plan p;
  respond_error(p, status, message, status == 413 ? "request_too_large" : "invalid_request", false);
  return p;
}

} // namespace troupe::mock
