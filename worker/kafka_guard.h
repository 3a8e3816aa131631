// The workers' own check of their "kafka" option against the property allow-list: a catalog
// row can be written without create_source / create_sink (an UPDATE by its owner), so a worker
// passes nothing to librdkafka that its owner could not have set through the API.
#pragma once

#include <map>
#include <string>

namespace streamrec {

// Throws Error (42501 for a superuser-only property, 22023 otherwise) naming the property,
// never its value, when the role the worker runs as may not set one of `properties`.
// `what` names the object for the message, e.g. "source \"clicks\"".
void refuse_forbidden_kafka_properties(const std::map<std::string, std::string>& properties, const std::string& what);

}  // namespace streamrec
