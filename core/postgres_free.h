// Every header under core/ includes this one first. Code in core/ runs without PostgreSQL (unit
// tests, benchmarks, the sandbox broker and the data generator link it alone), so it must never see
// PostgreSQL's headers: they redefine printf, snprintf and friends for C and break C++ headers that
// follow them. A file outside core/ that needs both includes the core headers first, then
// PostgreSQL's. Either mistake stops the build here.
#pragma once

#if defined(POSTGRES_H) || defined(POSTGRES_FE_H) || defined(C_H)
#error "a core/ header was included after a PostgreSQL header: include core/ headers first"
#endif
