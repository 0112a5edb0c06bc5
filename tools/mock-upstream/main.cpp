// mock-upstream: a fast mock of the OpenAI chat-completions API for Troupe's tests and benchmarks.
// The usage text below is the reference for its flags, endpoints and knobs; `mock-upstream --help` prints it.

#include "tools/mock-upstream/control.hpp"
#include "tools/mock-upstream/knobs.hpp"
#include "tools/mock-upstream/routes.hpp"
#include "tools/mock-upstream/server.hpp"

#include <signal.h>
#include <sys/resource.h>

#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

const char* usage = R"(Usage: mock-upstream [FLAGS]

A mock of the OpenAI chat-completions API (HTTP/1.1, keep-alive, JSON and SSE) with knobs for latency, errors,
Retry-After, slow drip, malformed and huge output. On start it prints exactly one line to stdout,
"mock-upstream listening on HOST:PORT", and flushes it. SIGTERM or SIGINT: exits 0. Bad flags: exit status 2.

Server flags (--flag VALUE or --flag=VALUE):
  --host ADDR              IPv4 address to listen on (default 127.0.0.1)
  --port N                 port, 0 for an ephemeral one (default 0)
  --port-file FILE         also write the port (and a newline) to FILE once listening
  --threads N              event-loop threads, 1..64 (default 2)
  --max-connections N      open connections at most; more are closed on accept (default 1024)
  --max-body-bytes N       larger request bodies get 413 (default 1048576); heads over 64 KiB get 431
  --idle-timeout-ms N      close a connection without a request in progress, or whose client stopped reading,
                           after this long (default 60000)
  --models A,B,...         the models GET /v1/models lists (default mock-1,mock-2); any model is answered
  --seed N                 seed of the PRNG behind error_rate (default 1); POST /mock/reset reseeds it
  --help                   this text

Knob flags set the default knobs: --latency-ms, --status, --retry-after, --error-rate, --error-status, --drip-ms,
--chunks, --malformed, --huge-bytes (the knob names below, with dashes).

Endpoints:
  POST /v1/chat/completions (also /chat/completions)
      An OpenAI chat request: model (string, required), messages (required, non-empty; content a string, null or
      an array of {"type":"text","text":...} parts), stream, stream_options.include_usage, max_tokens or
      max_completion_tokens; other fields are accepted and ignored. Invalid JSON or UTF-8, arrays and objects
      nested deeper than 64 levels, an object with the same key twice (code duplicate_key, param its path), a
      missing model or messages, a wrongly typed field or an invalid knob: 400 {"error":{"message",
      "type":"invalid_request_error","param","code"}}.
      Answer: chat.completion {id "chatcmpl-mock-N" (N counts chat requests since start or reset), object,
      created, model (the request's), system_fingerprint "fp_mock", choices[0] {index 0, message {role
      "assistant", content, refusal null}, logprobs null, finish_reason}, usage {prompt_tokens, completion_tokens,
      total_tokens}}, header X-Request-Id: req_mock_N.
      content: "mock reply: " + the last user message's text (at most 200 bytes, cut at a UTF-8 boundary);
      with huge_bytes that many bytes of the pattern "abc...xyzABC...XYZ0123456789-_" repeated.
      max_tokens: content cut to 4 * max_tokens bytes, finish_reason "length" (else "stop").
      usage: prompt_tokens = ceil(bytes of all messages' text / 4), completion_tokens = ceil(content bytes / 4),
      each at least 1.
      stream: true: 200 text/event-stream, Transfer-Encoding: chunked (HTTP/1.0: ends by closing), one HTTP chunk
      per event, events "data: <chat.completion.chunk>\n\n": delta {"role":"assistant"}, then the content in at
      most `chunks` events (more when huge: at most 64 KiB of content per event), then delta {} with
      finish_reason, then (stream_options.include_usage) a chunk with "choices":[] and usage (the others carry
      "usage":null), then "data: [DONE]\n\n".
  POST /v1/messages (also /messages)
      Anthropic's Messages API (model, max_tokens, messages, system, stream): the same reply text as chat, as an
      Anthropic message or its stream events (message_start ... message_stop, `chunks` text deltas); errors in
      Anthropic's shape. Counted as a chat request.
  POST /v1/embeddings (also /embeddings)
      An OpenAI embeddings request: model, input (a string, strings, token ids or arrays of token ids),
      encoding_format ("float", default, or "base64"), dimensions (default 8). Answer: {"object":"list","data":
      [{"object":"embedding","index":i,"embedding":...}],"model","usage":{"prompt_tokens","total_tokens"}}; each
      input's vector is fixed by its JSON text (components in [-1, 1) from an FNV-1a hash). Counted as a chat
      request (knobs apply the same way) and in "embedding_inputs".
  GET  /v1/models (also /models)
      {"object":"list","data":[{"id":M,"object":"model","created":0,"owned_by":"mock"},...]}
  GET  /mock/stats
      {"requests":chat and embeddings requests (400s included),"streams":n,"embedding_inputs":n,"by_status":{"200":n,"500":n,"hangup":n,...},
       "by_model":{"m":n},"in_flight":answers in progress,"aborted":answers cut short by the client,
       "connections_open":n,"connections_accepted":n since start or reset,
       "authorization":[distinct Authorization values of chat requests, at most 16]}
  GET  /mock/last_request
      The body of the latest chat or embeddings request, byte for byte as it arrived (404 before the first one).
  POST /mock/reset
      Counters to zero, the latest request forgotten, scripted knobs dropped, default knobs back to the flags, PRNG reseeded. Answers the config.
  GET  /mock/config, POST /mock/config
      POST a JSON object of knobs (numbers or strings). Without "count" it changes the default knobs until reset;
      with "count": N the knobs apply to the next N admitted chat requests only (400s use none), then behaviour
      returns to the defaults. Several counted configs queue up: {"status":500,"count":2} then
      {"malformed":"hangup","count":1} answers 500, 500, hang-up, then normally. Answers (GET too)
      {"defaults":{every knob},"scripted":[{"knobs":{...},"remaining":n}]}; a bad knob: 400, nothing changes.
  GET  /health    200 {"status":"ok"}
  Unknown paths: 404; another method on a known path: 405 with Allow. Control endpoints are not chat requests.

Knobs (name=value), per request in an X-Mock header ("X-Mock: status=429,retry_after=3") or in a directive
anywhere in any message's text ("[[mock status=429 retry_after=3]]"; pairs separated by spaces, commas or
semicolons). Precedence, later wins: flags < POST /mock/config defaults < the head of the scripted queue <
X-Mock < directives (in message order). Unknown knobs or bad values: 400.
  latency_ms=0..600000     wait before the response headers
  status=N                 400..599: answer N with an OpenAI error body (0 or 200: answer normally)
  retry_after=S|none       seconds: a Retry-After header on error answers (status or error_rate)
  error_rate=0..1          answer error_status with this probability (seeded PRNG: deterministic in request order)
  error_status=400..599    default 500
  drip_ms=0..60000         pause between SSE events; for a non-streaming answer the body goes out in `chunks`
                           pieces with this pause between them
  chunks=1..100000         content events of a stream; pieces of a dripped body (default 8)
  malformed=MODE           none; json: 200 whose body is a JSON object cut in half (correct Content-Length),
                           even for stream requests; sse: an event stream (even for non-stream requests) with a
                           "data:" line that is not JSON after the first content event; utf8: content holds the
                           invalid UTF-8 bytes C3 28 FF FE; truncated: non-streaming: Content-Length of the whole
                           body, half of it sent, then close; streaming: half of the content events, then close
                           without the final events, [DONE] or the last chunk; no_choices: valid JSON (or events)
                           without "choices"; hangup: close the connection without answering (after latency_ms)
  huge_bytes=0..1073741824 > 0: the content is this many bytes (generated while sent, not held in memory)
  count=1..1000000         POST /mock/config only, see above
Order: a status of 400..599 wins, then error_rate, then malformed, huge_bytes and the normal answer.
)";

struct settings {
  troupe::mock::server_options server;
  std::string port_file;
  std::vector<std::string> models{"mock-1", "mock-2"};
  uint64_t seed = 1;
  troupe::mock::knob_overrides knob_flags;
};

[[noreturn]] void fail(const std::string& message) {
  std::cerr << "mock-upstream: " << message << " (see --help)\n";
  std::exit(2);
}

template <typename T>
T parse_number(std::string_view flag, std::string_view text, T min, T max) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || end != text.data() + text.size() || value < min || value > max)
    fail("invalid " + std::string{flag} + " '" + std::string{text} + "': expected an integer in " + std::to_string(min)
         + ".." + std::to_string(max));
  return value;
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> items;
  while (!text.empty()) {
    auto comma = text.find(',');
    auto item = text.substr(0, comma);
    if (!item.empty())
      items.emplace_back(item);
    if (comma == std::string_view::npos)
      break;
    text.remove_prefix(comma + 1);
  }
  return items;
}

/// Applies one flag; knob flags go through the knob table.
void apply_flag(settings& s, std::string_view flag, std::string_view value) {
  if (flag == "--host")
    s.server.host = value;
  else if (flag == "--port")
    s.server.port = parse_number<uint16_t>(flag, value, 0, 65535);
  else if (flag == "--port-file")
    s.port_file = value;
  else if (flag == "--threads")
    s.server.threads = parse_number<int>(flag, value, 1, 64);
  else if (flag == "--max-connections")
    s.server.max_connections = parse_number<int64_t>(flag, value, 1, 1'000'000);
  else if (flag == "--max-body-bytes")
    s.server.max_body_bytes = parse_number<uint64_t>(flag, value, 1, uint64_t{1} << 32);
  else if (flag == "--idle-timeout-ms")
    s.server.idle_timeout_ms = parse_number<int64_t>(flag, value, 1, 86'400'000);
  else if (flag == "--seed")
    s.seed = parse_number<uint64_t>(flag, value, 0, UINT64_MAX);
  else if (flag == "--models") {
    s.models = split_list(value);
    if (s.models.empty())
      fail("--models needs at least one name");
  } else {
    std::string knob{flag.substr(2)};
    for (auto& c : knob)
      c = c == '-' ? '_' : c;
    if (knob == "count")
      fail("count is only accepted by POST /mock/config");
    if (auto error = troupe::mock::set_knob(s.knob_flags, knob, value); !error.empty())
      fail(error.rfind("unknown", 0) == 0 ? "unknown flag " + std::string{flag} : error);
  }
}

settings parse_command_line(int argc, char** argv) {
  settings s;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << usage;
      std::exit(0);
    }
    if (arg.substr(0, 2) != "--")
      fail("unexpected argument '" + std::string{arg} + "'");
    auto eq = arg.find('=');
    if (eq != std::string_view::npos) {
      apply_flag(s, arg.substr(0, eq), arg.substr(eq + 1));
    } else {
      if (i + 1 >= argc)
        fail(std::string{arg} + " needs a value");
      apply_flag(s, arg, argv[++i]);
    }
  }
  return s;
}

/// Makes room for max_connections descriptors (plus a margin for the listener, epoll and stdio).
void raise_descriptor_limit(int64_t max_connections) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0)
    return;
  auto needed = static_cast<rlim_t>(max_connections) + 64;
  if (limit.rlim_cur < needed && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = std::min(limit.rlim_max, needed);
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  if (limit.rlim_cur < needed)
    fail("--max-connections " + std::to_string(max_connections) + " needs " + std::to_string(needed)
         + " file descriptors; the limit is " + std::to_string(limit.rlim_cur));
}

void write_port_file(const std::string& path, uint16_t port) {
  auto temporary = path + ".tmp";
  {
    std::ofstream out{temporary, std::ios::trunc};
    out << port << "\n";
    if (!out)
      fail("cannot write --port-file " + temporary);
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0)
    fail("cannot write --port-file " + path);
}

} // namespace

int main(int argc, char** argv) {
  auto s = parse_command_line(argc, argv);
  raise_descriptor_limit(s.server.max_connections);

  // Signals are taken by sigwait below; every thread started after this inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  troupe::mock::knobs defaults;
  s.knob_flags.apply_to(defaults);
  troupe::mock::connection_counters counters;
  troupe::mock::mock_state state{defaults, s.seed, s.models, counters};
  troupe::mock::server server{s.server,
                              [&state](const troupe::mock::request_head& head, std::string_view body) {
                                return troupe::mock::route_request(head, body, state);
                              },
                              counters};
  if (auto error = server.listen(); !error.empty()) {
    std::cerr << "mock-upstream: " << error << "\n";
    return 1;
  }
  if (!s.port_file.empty())
    write_port_file(s.port_file, server.port());
  server.start();
  std::cout << "mock-upstream listening on " << s.server.host << ":" << server.port() << std::endl;

  int signal_number = 0;
  ::sigwait(&stop_signals, &signal_number);
  server.stop();
  server.join();
  return 0;
}
