#include "actors/introspection.hpp"

#include "actors/message_text.hpp"

#include <caf/all.hpp>

#include <algorithm>

namespace troupe {

namespace {

struct tree_node {
  actor_view view;
  std::vector<size_t> children;
};

/// The state of one walk, shared by its response handlers (all run inside the same actor).
struct tree_walk {
  std::vector<tree_node> nodes;
  size_t pending = 0;
  std::shared_ptr<probe_registry> probes;
  caf::duration timeout;
  actor_tree_handler done;
};

void fill_from_probe(actor_view& view, const probe_registry* probes) {
  if (probes == nullptr || !view.handle)
    return;
  auto probe = probes->find(view.handle.id());
  if (!probe)
    return;
  view.mailbox_size = probe->queued();
  view.processed = static_cast<int64_t>(probe->processed.load(std::memory_order_relaxed));
  view.busy_ms = busy_ms(*probe);
  if (view.started_unix_ms == 0)
    view.started_unix_ms = probe->started_unix_ms.load(std::memory_order_relaxed);
  // Stateful actors are named by their state; a plain event-based actor only says "scheduled_actor".
  if (const char* type = probe->type.load(std::memory_order_relaxed);
      type && std::string_view{type} != "scheduled_actor")
    view.type = type;
}

void flatten(std::vector<tree_node>& nodes, size_t i, std::vector<actor_view>& out) {
  out.push_back(std::move(nodes[i].view));
  for (auto child : nodes[i].children)
    flatten(nodes, child, out);
}

void finish_one(const std::shared_ptr<tree_walk>& walk) {
  if (--walk->pending > 0)
    return;
  std::vector<actor_view> result;
  if (!walk->nodes.empty())
    flatten(walk->nodes, 0, result);
  for (auto& view : result)
    fill_from_probe(view, walk->probes.get());
  walk->done(std::move(result));
}

/// Asks node `index` for its children; every supervisor among them is asked in turn.
void ask_children(caf::event_based_actor* self, const std::shared_ptr<tree_walk>& walk, size_t index) {
  ++walk->pending;
  auto target = walk->nodes[index].view.handle;
  self->request(target, walk->timeout, children_atom::value)
    .then(
      [self, walk, index](std::vector<child_info>& children) {
        auto parent = walk->nodes[index].view.name;
        for (auto& child : children) {
          actor_view view;
          view.id = child.handle ? child.handle.id() : 0;
          view.name = std::move(child.name);
          view.kind = std::move(child.kind);
          view.supervisor = parent;
          view.restart = std::move(child.restart);
          view.state = std::move(child.state);
          view.restarts = child.restarts;
          view.last_error = std::move(child.last_error);
          view.last_error_unix_ms = child.last_error_unix_ms;
          view.started_unix_ms = child.started_unix_ms;
          view.handle = std::move(child.handle);
          walk->nodes.push_back(tree_node{std::move(view), {}});
          auto child_index = walk->nodes.size() - 1;
          walk->nodes[index].children.push_back(child_index);
          const auto& added = walk->nodes[child_index].view;
          if (added.kind == "supervisor" && added.handle)
            ask_children(self, walk, child_index);
        }
        finish_one(walk);
      },
      [walk](caf::error&) { finish_one(walk); });
}

} // namespace

int64_t busy_ms(const actor_probe& probe) {
  auto since = probe.busy_since_ns.load(std::memory_order_relaxed);
  if (since == 0)
    return 0;
  return std::max<int64_t>(0, (coarse_now_ns() - since) / 1000000);
}

void collect_actor_tree(caf::event_based_actor* self, caf::actor root, std::string root_name,
                        std::shared_ptr<probe_registry> probes, std::chrono::milliseconds timeout,
                        actor_tree_handler done) {
  auto walk = std::make_shared<tree_walk>();
  walk->probes = std::move(probes);
  walk->timeout = caf::duration{timeout};
  walk->done = std::move(done);
  actor_view view;
  view.name = std::move(root_name);
  view.kind = "supervisor";
  view.restart = "permanent";
  view.state = root ? "running" : "stopped";
  view.id = root ? root.id() : 0;
  view.handle = root;
  walk->nodes.push_back(tree_node{std::move(view), {}});
  // One pending count for the walk itself, so it cannot finish before the root's request is sent.
  walk->pending = 1;
  if (root)
    ask_children(self, walk, 0);
  finish_one(walk);
}

void peek_mailbox(caf::event_based_actor* self, const caf::actor& target, size_t limit,
                  std::chrono::milliseconds timeout, std::function<void(caf::expected<mailbox_view>)> done) {
  self
    ->request<caf::message_priority::high>(target, caf::duration{timeout}, debug_peek_atom::value,
                                           static_cast<uint64_t>(limit))
    .then(
      [self, done](mailbox_snapshot& snapshot) {
        mailbox_view view;
        view.size = snapshot.size;
        view.by_type = std::move(snapshot.by_type);
        for (auto& queued : snapshot.first) {
          message_view m;
          m.type = message_type_name(self->system(), queued.content, queued.response);
          m.text = render_message(self->system(), queued.content);
          m.sender_id = queued.sender_id;
          m.urgent = queued.urgent;
          m.response = queued.response;
          m.waited_us = queued.waited_us;
          view.first.push_back(std::move(m));
        }
        done(std::move(view));
      },
      [done](caf::error& err) { done(std::move(err)); });
}

} // namespace troupe
