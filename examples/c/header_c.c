/* raft.h must compile standalone as C11 with -Wall -Wextra -Wpedantic -Werror. */
#include "raft.h"

int main(void) {
  raft_buf b = {NULL, 0};
  raft_buf_free(&b);
  return raft_version() != NULL && RAFT_VERSION_MAJOR >= 0 ? 0 : 1;
}
