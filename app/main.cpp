// troupe: the command-line entry point. Parses the command line, loads the configuration (exit status 2 with one
// line on a bad value) and runs the chosen subcommand.

#include "app/application.hpp"
#include "app/inspect.hpp"
#include "config/loader.hpp"
#include "http/auth.hpp"
#include "persistence/admin.hpp"
#include "persistence/cluster_store.hpp"
#include "persistence/migrations.hpp"

#include <cstring>
#include <iostream>
#include <string>
#include <variant>
#include <cstdio>
#include <vector>

namespace {

const char* usage = R"(Usage: troupe [COMMAND] [--config FILE] [--set section.key=value]...

An actor-model backend for AI applications.

Commands:
  serve              run the server (the default); applies pending database migrations as it connects
  migrate            apply pending database migrations to TROUPE_DATABASE_URL, then exit
  admin grant EMAIL  make the account with this email an admin (registration never does)
  admin revoke EMAIL make it a plain user again
  inspect ...        look into a running Troupe in debug mode: actors | mailbox ID | top (troupe inspect --help)
  cluster status     one line per cluster member: node, state, address, epoch, last heartbeat, sessions
  cluster drain NODE make NODE hand its users to the other members and leave (its process then exits)
  print-config       print the effective configuration as JSON, secrets redacted (also: --print-config)
  options-markdown   print the option table in Markdown (the README's table is generated from it)
  help               show this help (also: --help, -h)

Flags:
  --config FILE      a JSON configuration file, nested by section
  --set KEY=VALUE    override one option; repeatable
Precedence: defaults < --config file < environment TROUPE_SECTION_KEY < --set.
Secrets are read from the environment only (TROUPE_DATABASE_URL, TROUPE_JWT_SECRET, upstream keys).

Options:
)";

/// `troupe migrate`: 0 when the schema is up to date afterwards, 1 with one line on stderr otherwise.
int migrate(const troupe::config::settings& settings) {
  if (settings.db.url.empty()) {
    std::cerr << "troupe: migrate needs a database: set TROUPE_DATABASE_URL\n";
    return 1;
  }
  auto outcome = troupe::migrate_database(settings.db.url);
  if (auto* error = std::get_if<std::string>(&outcome)) {
    std::cerr << "troupe: migration failed: " << *error << "\n";
    return 1;
  }
  const auto& applied = std::get<std::vector<int>>(outcome);
  if (applied.empty()) {
    std::cout << "schema is up to date\n";
  } else {
    std::cout << "applied migrations:";
    for (auto version : applied)
      std::cout << " " << version;
    std::cout << "\n";
  }
  return 0;
}

/// `troupe admin grant|revoke EMAIL`: 0 when the account has the role now, 1 with one line otherwise. A running
/// Troupe sees the change when the user's session next reloads its account (within a minute).
int set_role(const troupe::config::settings& settings, const std::string& action, const std::string& raw_email) {
  auto email = troupe::http::normalise_email(raw_email);
  if (email.empty()) {
    std::cerr << "troupe: \"" << raw_email << "\" is not an email address\n";
    return 1;
  }
  if (settings.db.url.empty()) {
    std::cerr << "troupe: admin " << action << " needs a database: set TROUPE_DATABASE_URL\n";
    return 1;
  }
  auto role = action == "grant" ? "admin" : "user";
  auto outcome = troupe::set_user_role(settings.db.url, email, role);
  if (auto* error = std::get_if<std::string>(&outcome)) {
    std::cerr << "troupe: admin " << action << " failed: " << *error << "\n";
    return 1;
  }
  const auto& change = std::get<troupe::role_change>(outcome);
  if (!change.found) {
    std::cerr << "troupe: no account with email " << email << "\n";
    return 1;
  }
  if (change.previous_role == role)
    std::cout << email << (action == "grant" ? " was already an admin\n" : " was not an admin\n");
  else
    std::cout << email << (action == "grant" ? " is now an admin\n" : " is no longer an admin\n");
  return 0;
}

/// `troupe cluster status|drain NODE`, straight from the membership table.
int cluster_command(const troupe::config::settings& settings, const std::string& action, const std::string& node) {
  if (settings.db.url.empty()) {
    std::cerr << "troupe: cluster " << action << " needs the cluster's database: set TROUPE_DATABASE_URL\n";
    return 1;
  }
  try {
    auto store = troupe::make_membership_store(settings.db.url);
    if (action == "drain") {
      if (!store->request_drain(node)) {
        std::cerr << "troupe: no member " << node << " is up or joining\n";
        return 1;
      }
      std::cout << node << " is draining: it hands its users over within a few heartbeats, then exits\n";
      return 0;
    }
    auto rows = store->members();
    if (rows.empty()) {
      std::cout << "no cluster members\n";
      return 0;
    }
    std::printf("%-28s %-8s %-22s %6s %16s %9s  %s\n", "NODE", "STATE", "ADDRESS", "EPOCH", "LAST HEARTBEAT",
                "SESSIONS", "HTTP");
    for (const auto& m : rows) {
      auto state = m.state != "down" && m.silent_ms > settings.cluster.failure_ms ? std::string{"silent"} : m.state;
      char ago[32];
      std::snprintf(ago, sizeof(ago), "%.1f s ago", static_cast<double>(m.silent_ms) / 1000.0);
      std::printf("%-28s %-8s %-22s %6lld %16s %9lld  %s\n", m.node_id.c_str(), state.c_str(),
                  (m.address + ":" + std::to_string(m.port)).c_str(), static_cast<long long>(m.epoch), ago,
                  static_cast<long long>(m.sessions), m.http_url.c_str());
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "troupe: cluster " << action << " failed: " << e.what() << "\n";
    return 1;
  }
}

int bad_usage(const std::string& message) {
  std::cerr << "troupe: " << message << " (see troupe --help)\n";
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  using namespace troupe;
  std::string command = "serve";
  std::string admin_email;
  std::string cluster_node;
  config::load_request request;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value_of = [&](const char* flag) -> const char* {
      if (i + 1 >= argc)
        return nullptr;
      (void)flag;
      return argv[++i];
    };
    if (arg == "inspect")
      return app::run_inspect(argc - i - 1, argv + i + 1);
    if (arg == "--help" || arg == "-h" || arg == "help") {
      command = "help";
    } else if (arg == "--print-config" || arg == "print-config") {
      command = "print-config";
    } else if (arg == "options-markdown" || arg == "serve" || arg == "migrate") {
      command = arg;
    } else if (arg == "admin") {
      std::string action = i + 1 < argc ? argv[i + 1] : "";
      if (i + 2 >= argc || (action != "grant" && action != "revoke"))
        return bad_usage("admin needs: admin grant EMAIL, or admin revoke EMAIL");
      command = "admin-" + action;
      admin_email = argv[i + 2];
      i += 2;
    } else if (arg == "cluster") {
      std::string action = i + 1 < argc ? argv[i + 1] : "";
      if (action == "status") {
        command = "cluster-status";
        i += 1;
      } else if (action == "drain" && i + 2 < argc) {
        command = "cluster-drain";
        cluster_node = argv[i + 2];
        i += 2;
      } else {
        return bad_usage("cluster needs: cluster status, or cluster drain NODE");
      }
    } else if (arg == "--config") {
      auto v = value_of("--config");
      if (!v)
        return bad_usage("--config needs a file name");
      request.file = v;
    } else if (arg.rfind("--config=", 0) == 0) {
      request.file = arg.substr(std::strlen("--config="));
    } else if (arg == "--set") {
      auto v = value_of("--set");
      if (!v)
        return bad_usage("--set needs section.key=value");
      request.sets.emplace_back(v);
    } else if (arg.rfind("--set=", 0) == 0) {
      request.sets.push_back(arg.substr(std::strlen("--set=")));
    } else {
      return bad_usage("unknown argument \"" + arg + "\"");
    }
  }

  if (command == "help") {
    std::cout << usage << config::render_options_help();
    return 0;
  }
  if (command == "options-markdown") {
    std::cout << config::render_options_markdown();
    return 0;
  }

  auto loaded = config::load(request, config::process_env());
  if (auto* err = std::get_if<config::config_error>(&loaded)) {
    std::cerr << "troupe: " << err->message() << "\n";
    return 2;
  }
  const auto& settings = std::get<config::settings>(loaded);
  if (command == "print-config") {
    std::cout << config::render_effective_json(settings) << "\n";
    return 0;
  }
  if (command == "migrate")
    return migrate(settings);
  if (command == "admin-grant" || command == "admin-revoke")
    return set_role(settings, command.substr(std::strlen("admin-")), admin_email);
  if (command == "cluster-status" || command == "cluster-drain")
    return cluster_command(settings, command.substr(std::strlen("cluster-")), cluster_node);
  // Serving needs the token key: refuse to start without a strong one.
  if (settings.auth.jwt_secret.size() < 32) {
    std::cerr << "troupe: TROUPE_JWT_SECRET must be at least 32 bytes (it has " << settings.auth.jwt_secret.size()
              << "); make run generates one under var/, or use: head -c 48 /dev/urandom | base64\n";
    return 2;
  }
  return app::run_server(settings);
}
