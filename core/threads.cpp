#include "ember/threads.h"

#include "cpu/threads.h"

namespace ember {

void set_num_threads(int count) { cpu::set_threads(count); }
int num_threads() { return cpu::threads(); }

}  // namespace ember
