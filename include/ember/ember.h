// ember: the whole public API in one include.
#pragma once

#include "ember/backend.h"
#include "ember/buffer.h"
#include "ember/buffer_pool.h"
#include "ember/dtype.h"
#include "ember/executor.h"
#include "ember/fusion.h"
#include "ember/graph.h"
#include "ember/model.h"
#include "ember/log.h"
#include "ember/ops.h"
#include "ember/planner.h"
#include "ember/status.h"
#include "ember/tensor.h"
#include "ember/threads.h"
#include "ember/tokenizer.h"
