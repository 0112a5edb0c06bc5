#pragma once
// Administrative operations for the command line (`troupe admin grant EMAIL`) and start-up (TROUPE_ADMIN_EMAILS).
// They open their own short-lived connection; no libpqxx in this header.

#include <string>
#include <variant>

namespace troupe {

/// Sets the role of the account with this (normalised) email. True if it exists and now has the role, false if
/// there is no such account, or a one-line error (never containing the URL or a password).
std::variant<bool, std::string> set_user_role(const std::string& url, const std::string& email,
                                              const std::string& role);

} // namespace troupe
