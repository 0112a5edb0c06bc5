#include "actors/message_text.hpp"

#include "actors/messages.hpp"
#include "persistence/accounts.hpp"

#include <caf/atom.hpp>
#include <caf/deep_to_string.hpp>
#include <caf/detail/type_traits.hpp>
#include <caf/meta/annotation.hpp>
#include <caf/meta/type_name.hpp>

#include <algorithm>
#include <functional>
#include <type_traits>
#include <vector>

namespace troupe {

namespace {

constexpr const char* redacted = "<redacted>";
constexpr size_t max_value_chars = 200;

/// Secret positions of an atom-led message: element 0 is the atom, 1 the first argument.
struct message_rule {
  caf::atom_value atom;
  std::vector<size_t> secret_positions;
};

/// Secret fields of a struct type, by position in its inspect() list; applies wherever the type appears.
struct type_rule {
  std::string type_name; // as its inspect() names it
  std::vector<size_t> secret_fields;
  std::function<bool(const caf::message&, size_t)> matches;
  std::function<std::string(const caf::message&, size_t)> render;
};

template <class T>
type_rule fields_of(std::string type_name, std::vector<size_t> secret_fields);

// ---- THE table: every message and type that carries a password, token, key or a hash of one ---------------------

const std::vector<message_rule>& message_rules() {
  static const std::vector<message_rule> rules{
    {hash_password_atom::value, {1}},      // (pwhash, password)
    {verify_password_atom::value, {1, 2}}, // (pwverify, password_hash, password)
    {key_lookup_atom::value, {1}},         // (keycache, api_key_hash)
    {user_create_atom::value, {2}},        // (usercreate, email, password_hash, role)
    {refresh_issue_atom::value, {3}},      // (rtissue, user_id, family_id, refresh_token_hash, expires_at)
    {refresh_rotate_atom::value, {1, 2}},  // (rtrotate, old_token_hash, new_token_hash, expires_at)
    {refresh_revoke_atom::value, {1}},     // (rtrevoke, refresh_token_hash)
    {api_key_create_atom::value, {3}},     // (keycreate, user_id, name, api_key_hash, last4)
    {api_key_lookup_atom::value, {1}},     // (keylookup, api_key_hash)
  };
  return rules;
}

const std::vector<type_rule>& type_rules() {
  static const std::vector<type_rule> rules{
    fields_of<user_record>("user_record", {2}),          // password_hash
    fields_of<session_snapshot>("session_snapshot", {}), // holds a user_record
  };
  return rules;
}

// -------------------------------------------------------------------------------------------------------------------

const std::vector<size_t>* secret_fields_of(std::string_view type_name) {
  for (const auto& rule : type_rules())
    if (rule.type_name == type_name)
      return &rule.secret_fields;
  return nullptr;
}

bool contains(const std::vector<size_t>* positions, size_t i) {
  return positions != nullptr && std::find(positions->begin(), positions->end(), i) != positions->end();
}

void append_quoted(std::string& out, std::string_view value) {
  auto text = scrub_credentials(value);
  bool cut = text.size() > max_value_chars;
  if (cut)
    text.resize(max_value_chars);
  out += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  out += '"';
  if (cut)
    out += "...(" + std::to_string(value.size() - max_value_chars) + " more characters)";
}

template <class T>
struct is_vector : std::false_type {};
template <class T>
struct is_vector<std::vector<T>> : std::true_type {};

/// A CAF 0.17 inspector that writes "type(field, field, ...)" and redacts the fields type_rules() names.
class text_inspector {
public:
  using result_type = void;
  static constexpr bool reads_state = true;
  static constexpr bool writes_state = false;

  template <class... Ts>
  void operator()(Ts&&... xs) {
    frames_.push_back(frame{out_.size()});
    (visit(xs), ...);
    if (!frames_.back().opened)
      out_.insert(frames_.back().start, "(");
    out_ += ')';
    frames_.pop_back();
  }

  template <class T>
  void value(const T& x) {
    if constexpr (std::is_same<T, std::string>::value) {
      append_quoted(out_, x);
    } else if constexpr (is_vector<T>::value) {
      out_ += '[';
      for (size_t i = 0; i < x.size(); ++i) {
        if (i > 0)
          out_ += ", ";
        value(x[i]);
      }
      out_ += ']';
    } else if constexpr (caf::detail::is_inspectable<text_inspector, T>::value) {
      auto copy = x;
      inspect(*this, copy);
    } else {
      out_ += scrub_credentials(caf::deep_to_string(x));
    }
  }

  std::string take() { return std::move(out_); }

private:
  struct frame {
    size_t start = 0; // where its text begins, for the "(" of a type without a name
    bool opened = false;
    const std::vector<size_t>* secret = nullptr;
    size_t index = 0;
  };

  /// One field (or annotation) of the innermost open struct. The frame is looked up by position, never held by
  /// reference across value(): a nested struct pushes its own frame, and that push_back may reallocate frames_.
  template <class T>
  void visit(T& x) {
    const size_t current = frames_.size() - 1;
    using plain = std::decay_t<T>;
    if constexpr (std::is_same<plain, caf::meta::type_name_t>::value) {
      out_ += x.value;
      out_ += '(';
      frames_[current].opened = true;
      frames_[current].secret = secret_fields_of(x.value);
    } else if constexpr (caf::meta::is_annotation<plain>::value) {
      // other annotations (load/save callbacks, omittable) carry no value
    } else {
      const size_t index = frames_[current].index++;
      if (index > 0)
        out_ += ", ";
      if (contains(frames_[current].secret, index))
        out_ += redacted;
      else
        value(static_cast<const plain&>(x));
    }
  }

  std::string out_;
  std::vector<frame> frames_;
};

template <class T>
type_rule fields_of(std::string type_name, std::vector<size_t> secret_fields) {
  return {std::move(type_name), std::move(secret_fields),
          [](const caf::message& msg, size_t i) { return msg.match_element<T>(i); },
          [](const caf::message& msg, size_t i) {
            text_inspector f;
            f.value(msg.get_as<T>(i));
            return f.take();
          }};
}

bool is_base64url(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '=';
}

/// Length of a credential starting at text[i], or 0 if none starts there.
size_t credential_at(std::string_view text, size_t i) {
  auto rest = text.substr(i);
  auto run = [&](size_t from, auto allowed) {
    size_t j = from;
    while (j < rest.size() && allowed(rest[j]))
      ++j;
    return j;
  };
  if (rest.rfind("$argon2", 0) == 0)
    return run(7, [](char c) { return is_base64url(c) || c == '$' || c == ',' || c == '+' || c == '/' || c == '.'; });
  if (rest.rfind("trp_", 0) == 0) {
    auto end = run(4, is_base64url);
    return end >= 12 ? end : 0;
  }
  if (rest.rfind("eyJ", 0) == 0) {
    // header.payload.signature, each base64url
    auto header = run(0, is_base64url);
    if (header >= rest.size() || rest[header] != '.')
      return 0;
    auto payload = run(header + 1, is_base64url);
    if (payload == header + 1 || payload >= rest.size() || rest[payload] != '.')
      return 0;
    return run(payload + 1, is_base64url);
  }
  return 0;
}

} // namespace

std::string scrub_credentials(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (auto n = credential_at(text, i); n > 0) {
      out += redacted;
      i += n;
    } else {
      out += text[i++];
    }
  }
  return out;
}

std::string render_message(const caf::actor_system&, const caf::message& msg, size_t max_chars) {
  const std::vector<size_t>* secret = nullptr;
  if (!msg.empty() && msg.match_element<caf::atom_value>(0)) {
    auto atom = msg.get_as<caf::atom_value>(0);
    for (const auto& rule : message_rules())
      if (rule.atom == atom)
        secret = &rule.secret_positions;
  }
  std::string out = "(";
  for (size_t i = 0; i < msg.size() && out.size() < max_chars; ++i) {
    if (i > 0)
      out += ", ";
    if (contains(secret, i)) {
      out += redacted;
    } else if (msg.match_element<caf::atom_value>(i)) {
      out += caf::to_string(msg.get_as<caf::atom_value>(i));
    } else if (msg.match_element<std::string>(i)) {
      append_quoted(out, msg.get_as<std::string>(i));
    } else {
      auto rule =
        std::find_if(type_rules().begin(), type_rules().end(), [&](const type_rule& r) { return r.matches(msg, i); });
      out += rule != type_rules().end() ? rule->render(msg, i) : scrub_credentials(msg.stringify(i));
    }
  }
  out += ')';
  if (out.size() > max_chars)
    out = out.substr(0, max_chars) + "...";
  return out;
}

} // namespace troupe
