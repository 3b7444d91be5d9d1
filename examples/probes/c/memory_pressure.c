// memory-pressure: how close the host is to running out of memory, in C.
//
// A database node that starts swapping or meets the OOM killer loses its
// server first. This probe reports memory and swap use through the `host`
// capability and alerts on memory use.
//
// Config (all optional):
//   warning   percent of memory in use at which the status is warning (90)
//   critical  percent of memory in use at which the status is critical (95)
//
// The bindings (probe.h, probe.c) are generated from the WIT by
// `wit-bindgen c`; see build.sh. Strings and lists handed back to the agent
// are malloc'ed: the generated code frees them after the call.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"

// A percentage from the probe's config, or `fallback`. Sets `*error` to a
// message (and returns 0) when the value is not a number.
static double percent(const char *key, double fallback, char *error, size_t error_len) {
  probe_string_t name;
  probe_string_t text;
  probe_string_set(&name, key);
  if (!watchpost_probe_config_get(&name, &text)) {
    return fallback;
  }
  char buffer[64] = {0};
  size_t len = text.len < sizeof buffer - 1 ? text.len : sizeof buffer - 1;
  memcpy(buffer, text.ptr, len);
  probe_string_free(&text);
  char *end = NULL;
  double value = strtod(buffer, &end);
  if (end == buffer || *end != '\0') {
    snprintf(error, error_len, "config `%s` = \"%s\" is not a number (a percentage)", key, buffer);
    return 0;
  }
  return value;
}

static void measurement(watchpost_probe_types_measurement_t *m, const char *name, double value,
                        const char *unit) {
  probe_string_dup(&m->name, name);
  m->value = value;
  probe_string_dup(&m->unit, unit);
  m->attributes.ptr = NULL;
  m->attributes.len = 0;
}

static void measurement_info(watchpost_probe_types_measurement_info_t *m, const char *name,
                             const char *unit, const char *description) {
  probe_string_dup(&m->name, name);
  probe_string_dup(&m->unit, unit);
  probe_string_dup(&m->description, description);
}

void exports_probe_describe(probe_info_t *ret) {
  probe_string_dup(&ret->name, "memory-pressure");
  probe_string_dup(&ret->version, "0.1.0");
  ret->kind = WATCHPOST_PROBE_TYPES_KIND_HOST;
  probe_string_dup(&ret->description, "memory and swap use of the host");
  ret->measurements.len = 2;
  ret->measurements.ptr = calloc(2, sizeof *ret->measurements.ptr);
  measurement_info(&ret->measurements.ptr[0], "system.memory.utilization", "1",
                   "fraction of memory in use");
  measurement_info(&ret->measurements.ptr[1], "system.paging.utilization", "1",
                   "fraction of swap in use (0 without swap)");
}

bool exports_probe_check(probe_report_t *ret, probe_string_t *err) {
  char error[128] = {0};
  double warning = percent("warning", 90, error, sizeof error);
  double critical = percent("critical", 95, error, sizeof error);
  if (error[0] != '\0') {
    probe_string_dup(err, error);
    return false;
  }

  watchpost_probe_host_memory_usage_t memory;
  watchpost_probe_host_memory(&memory);
  double used = memory.total_bytes > 0 ? (double)memory.used_bytes / (double)memory.total_bytes : 0;
  double swap = memory.swap_total_bytes > 0
                    ? (double)memory.swap_used_bytes / (double)memory.swap_total_bytes
                    : 0;

  if (used * 100 >= critical) {
    ret->status = WATCHPOST_PROBE_TYPES_STATUS_CRITICAL;
  } else if (used * 100 >= warning) {
    ret->status = WATCHPOST_PROBE_TYPES_STATUS_WARNING;
  } else {
    ret->status = WATCHPOST_PROBE_TYPES_STATUS_OK;
  }
  char message[128];
  snprintf(message, sizeof message, "%.1f%% of memory and %.1f%% of swap in use", used * 100,
           swap * 100);
  probe_string_dup(&ret->message, message);

  ret->measurements.len = 2;
  ret->measurements.ptr = calloc(2, sizeof *ret->measurements.ptr);
  measurement(&ret->measurements.ptr[0], "system.memory.utilization", used, "1");
  measurement(&ret->measurements.ptr[1], "system.paging.utilization", swap, "1");
  return true;
}
