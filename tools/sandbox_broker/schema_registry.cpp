#include "tools/sandbox_broker/schema_registry.h"

#include <algorithm>

#include <simdjson.h>

namespace streamrec {

std::string SchemaRegistry::identity_key(const std::string &schema_type, const std::string &text,
                                         const std::string &references) {
  // A .proto file is not JSON: its text is its identity.
  if (schema_type == "PROTOBUF") return schema_type + '\n' + references + '\n' + text;
  // Minify so that re-registering a reformatted schema finds the existing id, as Confluent does
  // by comparing parsed schemas. simdjson::minify keeps string contents byte for byte.
  std::string minified(text.size(), '\0');
  size_t length = 0;
  if (simdjson::minify(text.data(), text.size(), minified.data(), length) != simdjson::SUCCESS) {
    minified = text;
  } else {
    minified.resize(length);
  }
  return schema_type + '\n' + references + '\n' + minified;
}

SubjectVersion SchemaRegistry::make_version(const std::string &subject, int version, int id) const {
  return SubjectVersion{subject, version, schemas_[static_cast<size_t>(id - 1)]};
}

RegisterOutcome SchemaRegistry::register_schema(const std::string &subject, const std::string &schema_type,
                                                const std::string &text, const std::string &references) {
  const std::string key = identity_key(schema_type, text, references);
  std::lock_guard<std::mutex> lock(mutex_);

  int id = 0;
  if (auto found = id_by_key_.find(key); found != id_by_key_.end()) {
    id = found->second;
  } else {
    id = static_cast<int>(schemas_.size()) + 1;
    schemas_.push_back(StoredSchema{id, schema_type, text, references});
    id_by_key_.emplace(key, id);
  }

  std::vector<int> &ids = subject_ids_[subject];
  if (auto at = std::find(ids.begin(), ids.end(), id); at != ids.end()) {
    return RegisterOutcome{id, static_cast<int>(at - ids.begin()) + 1, false};
  }
  ids.push_back(id);
  return RegisterOutcome{id, static_cast<int>(ids.size()), true};
}

std::optional<StoredSchema> SchemaRegistry::schema_by_id(int id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (id < 1 || static_cast<size_t>(id) > schemas_.size()) return std::nullopt;
  return schemas_[static_cast<size_t>(id - 1)];
}

bool SchemaRegistry::has_subject(const std::string &subject) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return subject_ids_.count(subject) > 0;
}

std::vector<std::string> SchemaRegistry::subjects() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> names;
  names.reserve(subject_ids_.size());
  for (const auto &entry : subject_ids_) names.push_back(entry.first);
  return names;
}

std::vector<int> SchemaRegistry::versions(const std::string &subject) const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<int> numbers;
  if (auto found = subject_ids_.find(subject); found != subject_ids_.end()) {
    for (size_t i = 0; i < found->second.size(); ++i) numbers.push_back(static_cast<int>(i) + 1);
  }
  return numbers;
}

std::optional<SubjectVersion> SchemaRegistry::subject_version(const std::string &subject, int version) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto found = subject_ids_.find(subject);
  if (found == subject_ids_.end() || found->second.empty()) return std::nullopt;
  const std::vector<int> &ids = found->second;
  if (version == -1) version = static_cast<int>(ids.size());
  if (version < 1 || static_cast<size_t>(version) > ids.size()) return std::nullopt;
  return make_version(subject, version, ids[static_cast<size_t>(version - 1)]);
}

std::optional<SubjectVersion> SchemaRegistry::find_in_subject(const std::string &subject,
                                                              const std::string &schema_type, const std::string &text,
                                                              const std::string &references) const {
  const std::string key = identity_key(schema_type, text, references);
  std::lock_guard<std::mutex> lock(mutex_);
  auto subject_entry = subject_ids_.find(subject);
  auto id_entry = id_by_key_.find(key);
  if (subject_entry == subject_ids_.end() || id_entry == id_by_key_.end()) return std::nullopt;
  const std::vector<int> &ids = subject_entry->second;
  auto at = std::find(ids.begin(), ids.end(), id_entry->second);
  if (at == ids.end()) return std::nullopt;
  return make_version(subject, static_cast<int>(at - ids.begin()) + 1, id_entry->second);
}

}  // namespace streamrec
