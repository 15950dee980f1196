// SPDX-License-Identifier: Apache-2.0
#include "log.h"

int sw_log_level = SW_LOG_INFO;
const char *sw_log_prog = "stallwatch";
