# Convenience targets. `make demo` builds the key-value server and the demo orchestrator,
# then runs the failover demo (see docs/DEMO.md).

CARGO ?= cargo
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)

.PHONY: demo build-demo test-demo

build-demo:
	$(CARGO) build --bin raft-kv --bin raft-kv-demo

demo: build-demo
	$(TARGET_DIR)/debug/raft-kv-demo --bin $(TARGET_DIR)/debug/raft-kv

test-demo:
	$(CARGO) test --test kv_cluster
