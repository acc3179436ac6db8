// The error type lives in the public headers (callers catch it); internal code includes this.
#pragma once
#include "llm8/error.h"
