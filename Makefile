# swift-vmd: the two commands a user needs are `make boot` and `make test`.
.PHONY: all setup build guest boot test linux-guest debian-disk nested fuzz bench clean install

SWIFT ?= $(shell command -v swift || echo /opt/swift/usr/bin/swift)

all: setup

# Install Debian packages, build the guest kit and swift-vmd.
setup:
	@scripts/setup

build:
	scripts/build

guest:
	@$(MAKE) -C Guest --no-print-directory -s

# Boot the default guest (the guest kit) in the foreground.
boot: setup
	.build/debug/vmd boot examples/guest.conf --deadline 60

# The stock-Linux guest from Debian packages (build/linux), made once.
linux-guest: build/linux/vmlinuz
build/linux/vmlinuz:
	scripts/linux-guest

# Unit tests and integration tests (the latter need /dev/kvm and root, else they skip).
test: setup linux-guest
	$(SWIFT) test

# A Debian 12 system disk that boots through SeaBIOS (examples/debian.conf).
debian-disk: setup
	scripts/debian-disk

# The nested rig by hand (scripts/nested --help): Linux guests under vmd inside an L1
# Linux with nested SVM under QEMU TCG. ARGS="--kernels 6.12 --cases linux-stop", say;
# the L1 console of each run is in build/nested/KERNEL/console.log.
nested: setup linux-guest
	scripts/nested $(ARGS)

# libFuzzer targets (Fuzz/README.md): each for SECONDS seconds, two at a time.
SECONDS ?= 60
fuzz:
	SWIFT=$(SWIFT) Fuzz/run.sh $(SECONDS)

# swift-vmd against QEMU on this host (bench/run; root, /dev/kvm). Not a test: it asserts nothing.
# BENCH_ARGS="--quick" for a smoke run, "--runs 9", "--only blk,net", "--readme" to update README.md.
bench:
	@VMD_BUILD_CONFIG=release scripts/setup
	bench/run --no-build $(BENCH_ARGS)

# Install (after `make setup`): vmctl and vmd in SBINDIR (vmd a link to LIBEXECDIR/vmd, which
# finds vm and the device programs beside itself), the manuals, vmd.service (vmd(8)) and a
# tmpfiles.d entry that sets shmem THP to advise at boot (guest RAM in 2 MiB pages).
# CONFIG=debug installs the debug build; NO_BUILD=1 installs what is built without building.
PREFIX ?= /usr/local
DESTDIR ?=
CONFIG ?= release
SBINDIR ?= $(PREFIX)/sbin
LIBEXECDIR ?= $(PREFIX)/libexec/swift-vmd
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
PROGRAMS = vmd vm virtio-blk virtio-net virtio-rng
install:
	@[ -n "$(NO_BUILD)" ] || scripts/build $(CONFIG)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(TMPFILESDIR)
	for program in $(PROGRAMS); do install -m 0755 .build/$(CONFIG)/$$program $(DESTDIR)$(LIBEXECDIR)/$$program || exit 1; done
	install -m 0755 .build/$(CONFIG)/vmctl $(DESTDIR)$(SBINDIR)/vmctl
	ln -sf $$(realpath -m --relative-to=$(SBINDIR) $(LIBEXECDIR))/vmd $(DESTDIR)$(SBINDIR)/vmd
	install -m 0644 man/vmd.8 man/vmctl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 man/vm.conf.5 $(DESTDIR)$(MANDIR)/man5/
	sed 's|@SBINDIR@|$(SBINDIR)|g' systemd/vmd.service.in > $(DESTDIR)$(UNITDIR)/vmd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/vmd.service
	install -m 0644 systemd/vmd.tmpfiles $(DESTDIR)$(TMPFILESDIR)/vmd.conf
	@echo "installed swift-vmd under $(DESTDIR)$(PREFIX); run scripts/setup once for the _vmd user, then: systemctl daemon-reload && systemctl enable --now vmd"

clean:
	$(SWIFT) package clean
	@$(MAKE) -C Guest --no-print-directory clean
