#include "http/router.hpp"

#include <algorithm>

namespace troupe::http {

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> result;
  size_t pos = 0;
  while (pos < path.size()) {
    auto next = path.find('/', pos);
    if (next == std::string_view::npos)
      next = path.size();
    if (next > pos)
      result.push_back(path.substr(pos, next - pos));
    pos = next + 1;
  }
  return result;
}

void router::add(const std::string& method, const std::string& pattern, route_handler handler,
                 route_options options) {
  if (options.admission_control && !options.admission)
    options.admission = std::make_shared<admission_limit>();
  if (!options.admission_control)
    options.admission.reset();
  for (auto& r : routes_)
    if (r.pattern == pattern) {
      r.by_method[method] = {std::move(handler), options};
      return;
    }
  route r;
  r.pattern = pattern;
  for (auto segment : split_path(pattern))
    r.segments.emplace_back(segment);
  r.by_method[method] = {std::move(handler), options};
  routes_.push_back(std::move(r));
}

void router::for_each_admission(
  const std::function<void(const std::string&, const std::string&, const admission_limit&)>& fn) const {
  for (const auto& r : routes_)
    for (const auto& [method, entry] : r.by_method)
      if (entry.options.admission)
        fn(r.pattern, method, *entry.options.admission);
}

router::match router::find(std::string_view method, std::string_view path) const {
  match result;
  result.route = "unmatched";
  auto segments = split_path(path);
  for (const auto& r : routes_) {
    if (r.segments.size() != segments.size())
      continue;
    path_params params;
    bool same = true;
    for (size_t i = 0; i < segments.size() && same; ++i) {
      const auto& expected = r.segments[i];
      if (expected.size() > 2 && expected.front() == '{' && expected.back() == '}')
        params.emplace_back(expected.substr(1, expected.size() - 2), std::string{segments[i]});
      else
        same = expected == segments[i];
    }
    if (!same)
      continue;
    auto handler = r.by_method.find(std::string{method});
    if (handler != r.by_method.end()) {
      result.kind = match::found;
      result.handler = &handler->second.handler;
      result.options = handler->second.options;
      result.route = r.pattern;
      result.params = std::move(params);
      return result;
    }
    result.kind = match::method_not_allowed;
    result.route = r.pattern;
    for (const auto& [m, h] : r.by_method)
      result.allowed.push_back(m);
  }
  std::sort(result.allowed.begin(), result.allowed.end());
  result.allowed.erase(std::unique(result.allowed.begin(), result.allowed.end()), result.allowed.end());
  return result;
}

} // namespace troupe::http
