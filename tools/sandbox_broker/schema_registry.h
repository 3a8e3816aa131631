// The sandbox's in-memory schema store, with Confluent Schema Registry's id and version rules.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace streamrec {

struct StoredSchema {
  int id = 0;
  std::string schema_type;  // "AVRO", "JSON" or "PROTOBUF"
  std::string text;         // as first registered
  std::string references;   // a JSON array of {"name","subject","version"}; empty when none
};

struct SubjectVersion {
  std::string subject;
  int version = 0;
  StoredSchema schema;
};

struct RegisterOutcome {
  int id = 0;
  int version = 0;
  bool created_version = false;  // false: the subject already had this schema
};

// Thread-safe. Ids are global and shared across subjects, as in Confluent: the same schema under
// a second subject gets the id it already has. Two texts are the same schema when they are equal
// after JSON minification (whitespace outside strings does not matter); lookups return the text
// as it was first registered. Nothing is ever deleted.
class SchemaRegistry {
 public:
  // `text` must already be valid JSON for AVRO and JSON (the router checks); PROTOBUF text is
  // stored as it is. `references` (a JSON array, or empty) is part of the schema's identity.
  RegisterOutcome register_schema(const std::string &subject, const std::string &schema_type, const std::string &text,
                                  const std::string &references = {});

  std::optional<StoredSchema> schema_by_id(int id) const;
  bool has_subject(const std::string &subject) const;
  // Sorted, like Confluent's GET /subjects.
  std::vector<std::string> subjects() const;
  // Ascending; empty for an unknown subject.
  std::vector<int> versions(const std::string &subject) const;
  // `version` -1 means the latest.
  std::optional<SubjectVersion> subject_version(const std::string &subject, int version) const;
  // The version under `subject` that holds this schema, if any (POST /subjects/{subject}).
  std::optional<SubjectVersion> find_in_subject(const std::string &subject, const std::string &schema_type,
                                                const std::string &text, const std::string &references = {}) const;

 private:
  static std::string identity_key(const std::string &schema_type, const std::string &text,
                                  const std::string &references);
  SubjectVersion make_version(const std::string &subject, int version, int id) const;

  mutable std::mutex mutex_;
  std::vector<StoredSchema> schemas_;                    // index = id - 1
  std::map<std::string, int> id_by_key_;                 // identity_key -> id
  std::map<std::string, std::vector<int>> subject_ids_;  // subject -> id of version i+1
};

}  // namespace streamrec
