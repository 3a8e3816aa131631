// Which librdkafka properties a source or sink may pass through its "kafka" option.
//
// librdkafka can run shell commands (sasl.kerberos.kinit.cmd), load shared libraries
// (plugin.library.paths, ssl.engine.location, ssl.providers) and send the contents of files
// (OAUTHBEARER assertion files) as the database server's operating-system user. So the option is
// an allow-list: properties a streamrec_admin may set, properties only a superuser may set, and
// properties the product sets itself, refused for everyone. Anything else is unknown and
// refused. The same check runs when an option is stored (create_source, create_sink,
// enable_pipeline) and when a worker starts, so a catalog row written by hand passes it too.
//
// PostgreSQL-free: the SQL function and the workers map a problem to an ERROR themselves.
#pragma once

#include "core/postgres_free.h"

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace streamrec {

enum class kafka_property_access {
  admin,      // any role that may create sources and sinks
  superuser,  // runs programs, loads code, sends or writes server files, or floods the server log
  reserved,   // set by pg_streamrec itself: refused for everyone
  unknown,    // not on the list: refused for everyone
};

// The class of one property name (exact, case-sensitive, as librdkafka matches names).
kafka_property_access kafka_property_class(std::string_view name);

// Why a superuser-only or reserved property is refused (empty for the others).
std::string_view kafka_property_reason(std::string_view name);

// A refused property set: the first problem, in property-name order. Never carries a value.
struct kafka_property_problem {
  kafka_property_access access;  // superuser: SQLSTATE 42501; reserved, unknown: 22023
  std::string property;
  std::string message;
  std::string detail;
  std::string hint;
};

// Checks a property set for a role that is (or is not) a superuser. Besides the names, one
// value matters: SASL mechanism GSSAPI (also librdkafka's default mechanism under a SASL
// security.protocol) makes librdkafka run kinit as the server's OS user, so it is superuser-only.
std::optional<kafka_property_problem> check_kafka_properties(const std::map<std::string, std::string>& properties,
                                                             bool superuser);

// The properties a streamrec_admin may set, comma-separated in name order (for hints).
const std::string& kafka_admin_properties();

// True for a name that holds a credential: passwords, secrets, passphrases, private keys
// (PEM), and the free-form OAUTHBEARER configuration. Also true for unknown names that look
// like one, so masking never depends on the allow-list being complete.
bool kafka_property_is_secret(std::string_view name);

// Why librdkafka refused a property (its rd_kafka_conf_set message), without the value: that
// message quotes the value (or a number reformatted from it), so only its kind is kept.
std::string describe_refused_property(std::string_view librdkafka_message);

// text with every occurrence of a property value replaced by "***" (whole tokens only for short
// values, so "1" does not eat every digit). For messages of librdkafka that may quote a value.
std::string redact_property_values(std::string text, const std::map<std::string, std::string>& properties);

}  // namespace streamrec
