#pragma once
// Administrative operations for the command line (`troupe admin grant|revoke EMAIL`) and start-up
// (TROUPE_ADMIN_EMAILS). They open their own short-lived connection; no libpqxx in this header.

#include <cstdint>
#include <string>
#include <variant>

namespace troupe {

/// What setting a role found.
struct role_change {
  bool found = false;        // an account with this email exists
  std::string previous_role; // its role before ("" when not found); equal to the new one: nothing changed
  std::string user_id;
  int64_t created_at = 0; // unix seconds: when the account was registered (who registered it first matters)
};

/// Sets the role ("user" or "admin") of the account with this (normalised) email, atomically with reading the role
/// it had. A role_change (found = false when there is no such account), or a one-line error (never containing the
/// URL or a password).
std::variant<role_change, std::string> set_user_role(const std::string& url, const std::string& email,
                                                     const std::string& role);

} // namespace troupe
