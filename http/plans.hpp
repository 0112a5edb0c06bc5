#pragma once
// AI plans for repositories, the protocol part (pure: no actors, no I/O; fuzzed by tests/fuzz/plan_answer_fuzz.cpp):
// what a plan job asks the model, and how its answer becomes a plan or the reason it does not fit.
//
// A plan is a JSON object {title, overview, sections:[{title, files:[paths], steps:[...]}]} (plan_schema below).
// The job (http/plan_job.hpp) retrieves the repository's segments most relevant to the prompt with the full-text
// search, asks the model once through the gateway's own path, checks the answer here, and, if it does not fit,
// asks once more with what was wrong (retry_request).

#include "persistence/repositories.hpp"

#include <optional>
#include <string>
#include <vector>

namespace troupe::http {

/// The JSON Schema a model's plan must fit (draft 4, additional fields refused, so that what is stored is exactly
/// what was checked).
extern const char* const plan_schema;

/// What the plan's request to the model is made of.
struct plan_prompt {
  std::string model;
  std::string prompt;               // the user's request
  std::string title;                // the title the user wants ("" = the model chooses)
  std::vector<search_hit> context;  // the retrieved segments, best first
};

/// The full-text query that retrieves segments for `prompt`: its distinctive words (letters, digits, _ . - /; at
/// least 3 characters; not common English words), at most 16, joined with "or" (any of them may match; the
/// ranking prefers segments with more). "" when the prompt has none.
std::string plan_search_query(const std::string& prompt);

/// The chat completion request body of the first attempt.
std::string plan_request(const plan_prompt& p);

/// The body of the second attempt: the first one's messages, the model's answer, and what was wrong with it.
std::string retry_request(const plan_prompt& p, const std::string& answer, const std::string& problem);

/// A plan that fits the schema, re-serialised from the checked document.
struct checked_plan {
  std::string title;
  std::string overview;
  std::string sections; // JSON array
  size_t section_count = 0;
};

/// Checks a model's answer (the assistant message's content): a JSON object fitting plan_schema, possibly inside a
/// ``` code fence. Returns the plan, or nullopt with `problem` saying what is wrong (for the retry and the job's
/// error), naming the field.
std::optional<checked_plan> check_plan_answer(const std::string& content, std::string& problem);

/// From a chat completion body: the first choice's message content, the model that answered and the usage.
struct completion_parts {
  std::string content;
  std::string model;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};
std::optional<completion_parts> completion_of(const std::string& body);

} // namespace troupe::http
