# swift-vmd: the two commands a user needs are `make boot` and `make test`.
.PHONY: all setup build guest boot test bench clean

SWIFT ?= $(shell command -v swift || echo /opt/swift/usr/bin/swift)

all: setup

# Install Debian packages, build the guest kit and swift-vmd.
setup:
	@scripts/setup

build:
	$(SWIFT) build

guest:
	@$(MAKE) -C Guest --no-print-directory -s

# Boot the default guest (the guest kit) in the foreground.
boot: setup
	.build/debug/vmd boot examples/guest.conf --deadline 60

# Unit tests and integration tests (the latter need /dev/kvm and root, else they skip).
test: setup
	$(SWIFT) test

# swift-vmd against QEMU on this host (bench/run; root, /dev/kvm). Not a test: it asserts nothing.
# BENCH_ARGS="--quick" for a smoke run, "--runs 9", "--only blk,net", "--readme" to update README.md.
bench:
	@SWIFT_BUILD_FLAGS="-c release" scripts/setup
	bench/run --no-build $(BENCH_ARGS)

clean:
	$(SWIFT) package clean
	@$(MAKE) -C Guest --no-print-directory clean
