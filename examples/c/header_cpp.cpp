// raft.h must compile standalone as C++17 with -Wall -Wextra -Wpedantic -Werror.
#include "raft.h"

#include <cstring>

int main() {
  raft_buf b{nullptr, 0};
  raft_buf_free(&b);
  raft_status s = RAFT_STATUS_OK;
  return raft_version() != nullptr && std::strlen(raft_status_str(s)) > 0 ? 0 : 1;
}
