#include "actors/directory.hpp"

#include <algorithm>
#include <mutex>

namespace troupe {

void directory::put(const std::string& name, caf::actor handle) {
  std::unique_lock<std::shared_mutex> guard{mutex_};
  actors_[name] = std::move(handle);
}

void directory::erase(const std::string& name, const caf::actor& handle) {
  std::unique_lock<std::shared_mutex> guard{mutex_};
  auto i = actors_.find(name);
  if (i != actors_.end() && i->second == handle)
    actors_.erase(i);
}

std::optional<caf::actor> directory::get(const std::string& name) const {
  std::shared_lock<std::shared_mutex> guard{mutex_};
  auto i = actors_.find(name);
  if (i == actors_.end())
    return std::nullopt;
  return i->second;
}

std::vector<std::pair<std::string, caf::actor>> directory::snapshot() const {
  std::vector<std::pair<std::string, caf::actor>> result;
  {
    std::shared_lock<std::shared_mutex> guard{mutex_};
    result.assign(actors_.begin(), actors_.end());
  }
  std::sort(result.begin(), result.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return result;
}

} // namespace troupe
