#pragma once
// `troupe inspect`: debug mode from a terminal. A client of the /debug routes of a running Troupe (libcurl easy:
// blocking is fine in a command-line tool).
//
//   troupe inspect [--url URL] [--token TOKEN] [--json] actors        the supervision tree
//   troupe inspect [...] mailbox ID [--limit N]                       one actor and its first N queued messages
//   troupe inspect [...] top [--interval-ms MS] [--iterations N]      a refreshing view sorted by mailbox size
//
// --url defaults to http://127.0.0.1:8080; --token (or TROUPE_TOKEN) is an admin bearer token for a Troupe that
// does not listen on loopback only. --json prints the routes' JSON (top: one JSON line per refresh). Exit status 0,
// 1 when the server cannot be reached or refuses, 2 on bad usage.

namespace troupe::app {

/// Runs `troupe inspect` with the arguments after "inspect"; returns the exit status.
int run_inspect(int argc, char** argv);

} // namespace troupe::app
