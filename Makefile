# cursus build. Plain make: every .c under a layer folder is picked up, so adding a
# module never needs an edit here. Objects go to build/ (or $(BUILD) for sanitizer runs).
BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
PYTHON   ?= /usr/bin/python3
CC       ?= cc
PKGS      = libevent libevent_openssl libevent_pthreads libgsasl sqlite3 libssl libcrypto libcrypt \
            libunbound libsystemd libcurl libpq zlib
CFLAGS   ?= -O2 -g
# Kept apart from CFLAGS so that `make CFLAGS=...` (the sanitizer build) keeps them.
# The file the programs read without -c (config/config.h); the installed ones are built
# apart, with $(SYSCONFDIR)/cursus/cursus.conf (see install).
DEFAULT_CONFIG ?= etc/cursus-dev.conf
ALL_CFLAGS = $(CFLAGS) -DCURSUS_DEFAULT_CONFIG='"$(DEFAULT_CONFIG)"' -std=c17 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter \
            -Isrc $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -MMD -MP
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread

LIB_SRC   = $(wildcard src/util/*.c src/config/*.c src/net/*.c src/smtp/*.c src/store/*.c \
                       src/sasl/*.c src/queue/*.c src/route/*.c src/deliver/*.c src/dsn/*.c \
                       src/relay/*.c src/client/*.c src/auth/*.c src/dkim/*.c \
                       src/metrics/*.c src/oauth/*.c)
D_SRC     = $(wildcard src/daemon/*.c)
A_SRC     = $(wildcard src/admin/*.c)
UNIT_SRC  = $(wildcard tests/unit/test_*.c)

LIB_OBJ   = $(LIB_SRC:%.c=$(BUILD)/%.o)
D_OBJ     = $(D_SRC:%.c=$(BUILD)/%.o)
A_OBJ     = $(A_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN  = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps run check check-sanitize bench bench-relay bench-big install clean
# Keep the unit tests' objects: they are not intermediate files to delete.
.SECONDARY:
all: $(BUILD)/cursusd $(BUILD)/cursus $(BUILD)/smtp-bench $(UNIT_BIN) $(BUILD)/tests/relay-one \
     $(BUILD)/tests/config-options

deps:
	@sh scripts/deps.sh

# pkg-config fails as a whole when one module (or one it requires, as libunbound.pc
# requires nettle's) is missing, and the flags would silently be empty: say which.
$(BUILD)/.pkgconfig-ok:
	@pkg-config --exists --print-errors $(PKGS) || \
		{ echo "pkg-config cannot find the libraries above: run sh scripts/deps.sh" >&2; exit 1; }
	@mkdir -p $(dir $@) && touch $@

$(BUILD)/%.o: %.c | $(BUILD)/.pkgconfig-ok
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

# Made afresh: ar would keep the object of a source file since renamed or removed.
$(BUILD)/libcursus.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/cursusd: $(D_OBJ) $(BUILD)/libcursus.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/cursus: $(A_OBJ) $(BUILD)/libcursus.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/smtp-bench: $(BUILD)/bench/smtp-bench.o $(BUILD)/libcursus.a
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Test drivers (tests/tools/): small programs the integration tests run.
$(BUILD)/tests/relay-one: $(BUILD)/tests/tools/relay_one.o $(BUILD)/libcursus.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/config-options: $(BUILD)/tests/tools/config_options.o $(BUILD)/libcursus.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/tests/unit/unit.o $(BUILD)/libcursus.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The two commands of the README: both install what they need first.
run: deps all
	$(BUILD)/cursusd -d -c etc/cursus-dev.conf

check: deps all
	CURSUS_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests

# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer.
check-sanitize:
	$(MAKE) BUILD=build-san CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" check

bench: deps all
	$(PYTHON) bench/run.py --build $(abspath $(BUILD))

# Relay to a smart host (smtp-sink), cursusd against Postfix 3.7; as root (bench/README.md).
bench-relay: deps all
	$(PYTHON) bench/relay.py --build $(abspath $(BUILD))

# Messages of 1, 9 and 30 MiB, cursusd against Postfix 3.7; as root (bench/README.md).
bench-big: deps all
	$(PYTHON) bench/bigmsg.py --build $(abspath $(BUILD))

# Installed layout (docs/install.md): programs in sbin, sendmail/mailq/newaliases as
# links to cursus where Debian puts them, man pages, the systemd unit, the production
# configuration (kept when one is there), and the state directory.
SYSCONFDIR    ?= /etc
LOCALSTATEDIR ?= /var
MANDIR        ?= $(PREFIX)/share/man
DOCDIR        ?= $(PREFIX)/share/doc/cursus
UNITDIR       ?= $(PREFIX)/lib/systemd/system
MAN_PAGES      = $(wildcard man/*.[1-8])

IBUILD         = $(BUILD)/installed$(subst /,-,$(SYSCONFDIR))

.PHONY: installed-programs
installed-programs:
	$(MAKE) BUILD=$(IBUILD) DEFAULT_CONFIG=$(SYSCONFDIR)/cursus/cursus.conf \
		$(IBUILD)/cursusd $(IBUILD)/cursus

install: installed-programs
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSCONFDIR)/cursus
	install -d -m 755 $(DESTDIR)$(LOCALSTATEDIR)/lib/cursus
	install -m 755 $(IBUILD)/cursusd $(DESTDIR)$(PREFIX)/sbin/cursusd
	install -m 755 $(IBUILD)/cursus $(DESTDIR)$(PREFIX)/sbin/cursus
	ln -sf cursus $(DESTDIR)$(PREFIX)/sbin/sendmail
	ln -sf ../sbin/cursus $(DESTDIR)$(PREFIX)/bin/mailq
	ln -sf ../sbin/cursus $(DESTDIR)$(PREFIX)/bin/newaliases
	for p in $(MAN_PAGES); do \
		install -m 644 $$p $(DESTDIR)$(MANDIR)/man$${p##*.}/$${p#man/} || exit 1; done
	sed -e 's#/usr/sbin/#$(PREFIX)/sbin/#g' -e 's#/etc/cursus/#$(SYSCONFDIR)/cursus/#g' \
		-e 's#/var/lib/cursus#$(LOCALSTATEDIR)/lib/cursus#g' systemd/cursusd.service \
		>$(DESTDIR)$(UNITDIR)/cursusd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/cursusd.service
	install -m 644 etc/cursus.conf.example $(DESTDIR)$(DOCDIR)/cursus.conf.example
	install -d $(DESTDIR)$(DOCDIR)/fail2ban
	install -m 644 fail2ban/filter.d/cursus.conf fail2ban/jail.d/cursus.local.example \
		$(DESTDIR)$(DOCDIR)/fail2ban/
	test -e $(DESTDIR)$(SYSCONFDIR)/cursus/cursus.conf || \
		sed 's#/var/lib/cursus#$(LOCALSTATEDIR)/lib/cursus#g' etc/cursus.conf \
		>$(DESTDIR)$(SYSCONFDIR)/cursus/cursus.conf

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- Fuzz targets (tests/fuzz/): clang + libFuzzer, apart from the gcc build. ----
# Each target compiles the few src/ files it needs itself, instrumented for the
# fuzzer, into build-fuzz/. `make fuzz` runs each for a bounded, seeded number of runs
# over the committed seeds; new inputs go to build-fuzz/corpus/, crashes to build-fuzz/.
FUZZ_BUILD   = build-fuzz
FUZZ_CC      = clang
FUZZ_RUNS    = 200000
FUZZ_SAN     = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  = -O1 -g $(FUZZ_SAN) -std=c17 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wformat=2 \
               -Wno-unused-parameter -Isrc -Itests/fuzz $(shell pkg-config --cflags $(PKGS) 2>/dev/null) -MMD -MP
FUZZ_TARGETS = linereader command address params smtpc sasl oauth dkim
FUZZ_UTIL    = src/util/xmalloc.c src/util/log.c
FUZZ_SRC_linereader = src/util/linereader.c
FUZZ_SRC_command    = src/smtp/command.c
FUZZ_SRC_address    = src/smtp/address.c $(FUZZ_UTIL)
FUZZ_SRC_params     = src/smtp/params.c src/util/xtext.c $(FUZZ_UTIL)
FUZZ_SRC_smtpc      = $(wildcard src/client/*.c) src/net/conn.c src/util/linereader.c src/oauth/oauth_sasl.c \
                      src/util/jsonscan.c $(FUZZ_UTIL)
FUZZ_SRC_oauth      = src/oauth/oauth_token.c src/oauth/oauth_sasl.c src/util/jsonscan.c $(FUZZ_UTIL)
FUZZ_SRC_sasl       = src/sasl/sasl.c $(wildcard src/store/*.c) src/util/strset.c $(FUZZ_UTIL)
FUZZ_SRC_dkim       = $(wildcard src/dkim/*.c) src/util/strbuf.c src/smtp/addrlist.c $(FUZZ_UTIL)
FUZZ_BIN     = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BIN)

fuzz: deps fuzz-build
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz: $$t ($(FUZZ_RUNS) runs)"; \
		mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
		$(FUZZ_BUILD)/fuzz_$$t -runs=$(FUZZ_RUNS) -seed=1 -artifact_prefix=$(FUZZ_BUILD)/crash-$$t- \
			-print_final_stats=1 $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

# Library sources are built for linking into a fuzzer; the harness gets the fuzzer's main.
$(FUZZ_BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/tests/fuzz/%.o: tests/fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

define FUZZ_LINK_RULE
$(FUZZ_BUILD)/fuzz_$(1): $(FUZZ_BUILD)/tests/fuzz/fuzz_$(1).o $(FUZZ_SRC_$(1):%.c=$(FUZZ_BUILD)/%.o)
	$$(FUZZ_CC) $$(FUZZ_CFLAGS) -fsanitize=fuzzer -o $$@ $$^ $$(LDLIBS)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_LINK_RULE,$(t))))

-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
