# vigil — kernel-assisted liveness monitor.
#
#   make            build build/vigil, the agent library and the test helpers
#   make test       build and run the whole test suite (needs root)
#   make demo       run the monitor on loopback with a small demo fleet
#   make bench      benchmarks (not part of the test suite)
#   make fuzz       run the libFuzzer target for FUZZ_SECONDS
#   make vmlinux    regenerate vmlinux.h from the running kernel's BTF
#
# Sources by folder (docs/design.md, "Where things are"): bpf/ the kernel
# half; user/cli/ one file per `vigil X`; user/daemon/ the parts of `vigil
# run`; user/common/ what both use; libagent/ the agent library. Every object
# depends on the headers it really includes (-MMD).

# BPF is compiled with one pinned clang: Debian 12's default LLVM 14, which
# every supported host can apt-get. -mcpu=v3 is needed for atomics whose
# result is used (compare-and-swap, fetch-and-add). The test suite checks
# that the verifier accepts what this compiler produces.
BPF_CLANG ?= clang-14
BPFTOOL ?= bpftool
CC ?= gcc

BUILD := build
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')

WARN := -Wall -Wextra -Werror
CFLAGS ?= -O2 -g
USER_CFLAGS := $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE -Iinclude -Iuser -I$(BUILD) -MMD -MP
# A link's inputs: its prerequisites but for headers (which -MMD adds).
INPUTS = $(filter-out %.h,$^)
LIBS := -lbpf -lelf -lz -lpthread -lsqlite3 -lm -lmicrohttpd
LIBS += -lcurl # alert webhooks (user/daemon/alert.c)
LIBS += -lnats # NATS JetStream export (user/daemon/export.c)
LIBS += -lcrypto # an nkey seed's public key (user/daemon/natsauth.c)
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) -Wall -Werror \
	-Iinclude -Ibpf -I. -MMD -MP

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# One object per source file, mirrored under build/ (build/user/cli/beat.o).
obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
CLI_SRCS := $(wildcard user/cli/*.c)
DAEMON_SRCS := $(wildcard user/daemon/*.c)
COMMON_SRCS := $(wildcard user/common/*.c)
COMMON_OBJS := $(call obj,$(COMMON_SRCS))
USER_OBJS := $(call obj,$(CLI_SRCS) $(DAEMON_SRCS)) $(COMMON_OBJS) $(BUILD)/libagent/libagent.o
# The daemon's parts and what they use, for the test programs (no main()).
LIB_OBJS := $(filter-out $(BUILD)/user/cli/main.o,$(USER_OBJS))
SKEL := $(BUILD)/vigil.skel.h

.PHONY: all clean test demo bench fuzz vmlinux deps deps-check
all: $(BUILD)/vigil

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# --------------------------------------------------------------- kernel half
$(BUILD)/vigil.bpf.o: bpf/vigil.bpf.c vmlinux.h
	@mkdir -p $(@D)
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@

$(SKEL): $(BUILD)/vigil.bpf.o
	$(BPFTOOL) gen skeleton $< name vigil_bpf > $@

# -------------------------------------------------------------- user space
# Every user object may include the skeleton (instance loading): it comes first.
$(BUILD)/%.o: %.c | $(SKEL)
	@mkdir -p $(@D)
	$(CC) $(USER_CFLAGS) -c $< -o $@

$(BUILD)/vigil: $(USER_OBJS)
	$(CC) $(USER_CFLAGS) $(INPUTS) -o $@ $(LIBS)

# ------------------------------------------------------------ agent library
# include/vigil/agent.h, built static and shared from one -fPIC object;
# only the vigil_agent_* API is exported. `vigil beat` links it too.
AGENT_LIBS := $(BUILD)/libvigil-agent.a $(BUILD)/libvigil-agent.so

$(BUILD)/libagent.pic.o: libagent/libagent.c
	@mkdir -p $(@D)
	$(CC) $(USER_CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

$(BUILD)/libvigil-agent.a: $(BUILD)/libagent.pic.o
	rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/libvigil-agent.so: $(BUILD)/libagent.pic.o
	$(CC) -shared -Wl,-soname,libvigil-agent.so -o $@ $^ -lpthread

all: $(AGENT_LIBS)

# ------------------------------------------------------------------- tests
TEST_CFLAGS := $(USER_CFLAGS) $(SAN)

# Host unit tests of include/ and of the parts they name, under ASan/UBSan.
$(BUILD)/test_logic: tests/unit/test_logic.c
	$(CC) $(TEST_CFLAGS) $< -o $@

$(BUILD)/test_auth: tests/unit/test_auth.c
	$(CC) $(TEST_CFLAGS) $< -o $@

$(BUILD)/test_policy: tests/unit/test_policy.c user/daemon/policy.c user/common/u64map.c
	$(CC) $(TEST_CFLAGS) $(INPUTS) -o $@ -lm

# The option tables, the JSON writer, the agents file and key file parsers,
# the fleet view's merge state.
COMMON_TESTED := $(addprefix user/common/,options.c json.c config.c keys.c registry.c util.c secret.c \
	log.c u64map.c event.c fleet.c)
$(BUILD)/test_common: tests/unit/test_common.c $(COMMON_TESTED)
	$(CC) $(TEST_CFLAGS) $(INPUTS) -o $@ -lbpf -lelf -lz

# The event log under a flood of rejections: rows, size and resident memory
# (without sanitizers, whose shadow memory would swamp the measurement).
EVENTLOG_TESTED := $(addprefix user/common/,eventlog.c event.c json.c util.c log.c u64map.c sql.c)
$(BUILD)/test_eventlog: tests/unit/test_eventlog.c $(EVENTLOG_TESTED)
	$(CC) $(USER_CFLAGS) $(INPUTS) -o $@ -lsqlite3 -lbpf

# The agent library against a scripted monitor on loopback (no root needed).
$(BUILD)/test_agent: tests/unit/test_agent.c libagent/libagent.c
	$(CC) $(TEST_CFLAGS) $(INPUTS) -o $@ -lpthread

# include/vigil/cadence.h driven by a script: the Python agent's cadence is
# compared with it decision for decision (agents/python/tests/test_cadence.py).
$(BUILD)/cadence_trace: tests/unit/cadence_trace.c
	$(CC) $(TEST_CFLAGS) $< -o $@

# BPF programs that exist only for tests (e.g. SipHash vectors in the kernel).
$(BUILD)/%.test.bpf.o: tests/prog/%.bpf.c vmlinux.h
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/%.test.skel.h: $(BUILD)/%.test.bpf.o
	$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_test > $@

# BPF_PROG_TEST_RUN tables and the differential test, against the daemon's parts.
$(BUILD)/test_prog: tests/prog/test_prog.c $(LIB_OBJS) $(BUILD)/siphash.test.skel.h
	$(CC) $(USER_CFLAGS) $< $(LIB_OBJS) -o $@ $(LIBS)

$(BUILD)/test_diff: tests/prog/test_diff.c $(LIB_OBJS)
	$(CC) $(USER_CFLAGS) $< $(LIB_OBJS) -o $@ $(LIBS)

# libFuzzer over the host build of the parser, verifier and replay window.
FUZZ_SECONDS ?= 60
$(BUILD)/fuzz_beat: tests/fuzz/fuzz_beat.c
	$(BPF_CLANG) -g -O1 -Iinclude -MMD -MP -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all $< -o $@

fuzz: $(BUILD)/fuzz_beat
	mkdir -p $(BUILD)/fuzz-corpus
	$(BUILD)/fuzz_beat -max_total_time=$(FUZZ_SECONDS) $(BUILD)/fuzz-corpus tests/fuzz/seeds

# The e2e tests' helpers: the NATS stream reader (90-nats.sh); a lease
# candidate built on the static library, a fenced resource and a no-op XDP
# program for the veth peers that receive acknowledgements (85-leases.sh).
$(BUILD)/nats_read: tests/e2e/nats_read.c
	$(CC) $(USER_CFLAGS) $< -o $@ -lnats

$(BUILD)/lease_candidate: tests/e2e/lease_candidate.c $(BUILD)/libvigil-agent.a
	$(CC) $(USER_CFLAGS) $(INPUTS) -o $@ -lpthread

$(BUILD)/fence_resource: tests/e2e/fence_resource.c
	$(CC) $(USER_CFLAGS) $< -o $@

$(BUILD)/xdp_pass.bpf.o: tests/e2e/xdp_pass.bpf.c vmlinux.h
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@

E2E_HELPERS := $(BUILD)/nats_read $(BUILD)/lease_candidate $(BUILD)/fence_resource \
	$(BUILD)/xdp_pass.bpf.o $(BUILD)/cadence_trace
TEST_BINS := $(addprefix $(BUILD)/,test_logic test_policy test_common test_auth test_agent test_eventlog \
	test_prog test_diff fuzz_beat)
BENCH_BINS := $(addprefix $(BUILD)/,vigil-trafficgen vigil-bench vigil-baseline vigil-scale \
	vigil-fleetgen)
all: $(E2E_HELPERS)

# The flood test (40-flood.sh) and the benchmark smoke run (50-bench-smoke.sh)
# need the benchmark tools.
test: deps-check $(BUILD)/vigil $(AGENT_LIBS) $(TEST_BINS) $(E2E_HELPERS) $(BENCH_BINS)
	@tests/run.sh

deps-check:
	@command -v $(BPF_CLANG) >/dev/null && command -v $(BPFTOOL) >/dev/null || \
		{ echo "missing build tools: run scripts/deps.sh first" >&2; exit 1; }

deps:
	@scripts/deps.sh

demo: $(BUILD)/vigil
	@scripts/demo.sh

vmlinux:
	{ echo "/* vmlinux.h: generated by 'make vmlinux' from the BTF of kernel $$(uname -r) ($$(uname -m)); do not edit. */"; \
	  $(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c; } > vmlinux.h.tmp && mv vmlinux.h.tmp vmlinux.h

clean:
	rm -rf $(BUILD)

# ------------------------------------------------------------------- bench
# The benchmark tools link what they use of user/common/ only.
BENCH_CFLAGS := $(USER_CFLAGS) -Ibench
BENCH_OBJS := $(COMMON_OBJS) $(BUILD)/bench/common.o
BENCH_LIBS := -lbpf -lelf -lz -lpthread -lm -lsqlite3

$(BUILD)/bench/%.o: bench/%.c | $(SKEL)
	@mkdir -p $(@D)
	$(CC) $(BENCH_CFLAGS) -c $< -o $@

$(BUILD)/%.bench.bpf.o: bench/%.bpf.c vmlinux.h
	$(BPF_CLANG) $(BPF_CFLAGS) -Ibench -c $< -o $@

$(BUILD)/trafficgen.skel.h: $(BUILD)/trafficgen.bench.bpf.o
	$(BPFTOOL) gen skeleton $< name trafficgen_bpf > $@

$(BUILD)/bench.skel.h: $(BUILD)/bench.bench.bpf.o
	$(BPFTOOL) gen skeleton $< name bench_bpf > $@

$(BUILD)/bench/scale.o $(BUILD)/bench/bench.o $(BUILD)/bench/fastpath.o \
	$(BUILD)/bench/baseline.o: $(BUILD)/bench.skel.h
$(BUILD)/bench/trafficgen.o: $(BUILD)/trafficgen.skel.h

$(BUILD)/vigil-scale: $(BUILD)/bench/scale.o $(BENCH_OBJS)
	$(CC) $(BENCH_CFLAGS) $(INPUTS) -o $@ $(BENCH_LIBS)

$(BUILD)/vigil-trafficgen: $(BUILD)/bench/trafficgen.o $(BENCH_OBJS)
	$(CC) $(BENCH_CFLAGS) $(INPUTS) -o $@ $(BENCH_LIBS)

$(BUILD)/vigil-bench: $(BUILD)/bench/bench.o $(BUILD)/bench/fastpath.o $(BENCH_OBJS)
	$(CC) $(BENCH_CFLAGS) $(INPUTS) -o $@ $(BENCH_LIBS)

# The AF_XDP baseline uses libxdp's xsk API (libxdp-dev).
$(BUILD)/vigil-baseline: $(BUILD)/bench/baseline.o $(BUILD)/bench/monitor.o $(BENCH_OBJS)
	$(CC) $(BENCH_CFLAGS) $(INPUTS) -o $@ $(BENCH_LIBS) -lxdp

# The fleet view's synthetic monitors and reader (bench/fleet.sh).
$(BUILD)/vigil-fleetgen: $(BUILD)/bench/fleetgen.o $(BENCH_OBJS)
	$(CC) $(BENCH_CFLAGS) $(INPUTS) -o $@ $(BENCH_LIBS) -lnats

bench: deps-check $(BUILD)/vigil $(BENCH_BINS) $(BUILD)/lease_candidate $(BUILD)/fence_resource
	@bench/run.sh
