#include "core/kafka/property_policy.h"

#include "worker/kafka_guard.h"

#include "pg/error_boundary.h"

extern "C" {
#include "miscadmin.h"
}

namespace streamrec {

void refuse_forbidden_kafka_properties(const std::map<std::string, std::string>& properties, const std::string& what) {
  // A worker runs as its owner: GetUserId() is the role whose rights the option needs.
  const bool superuser = pg_call([] { return superuser_arg(GetUserId()); });
  const auto problem = check_kafka_properties(properties, superuser);
  if (!problem) return;
  const bool privilege = problem->access == kafka_property_access::superuser;
  throw Error(privilege ? ERRCODE_INSUFFICIENT_PRIVILEGE : ERRCODE_INVALID_PARAMETER_VALUE,
              what + " not started: " + problem->message, problem->detail,
              privilege ? "Its owner is not a superuser: remove the property from the kafka option, or have a "
                          "superuser recreate it."
                        : "Remove the property from the kafka option; the README lists the allowed ones.");
}

}  // namespace streamrec
