# Pure Health build, test and demo entry points. See README.md.
GO       ?= go
BIN      := bin
PKGS     := ./...
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/purehealth/purehealth/shared/version.Version=$(VERSION)

.PHONY: build test test-short fuzz bench cross cross-smoke deb deb-check balena-check cloud-image-check demo vet fmt clean powerloss soak

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ph-agent ./agent
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ph-cloud ./cloud
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ph-sim ./firmware-sim

# The agent runs on 32-bit Pis: its packages and their tests are also vetted for armv7, so
# a constant that overflows a 32-bit int fails here, not in the cross build after the suite.
vet:
	$(GO) vet $(PKGS)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) vet $$(GOOS=linux GOARCH=arm $(GO) list -deps ./agent | grep '^github.com/purehealth/')
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

# The whole suite: vet, race-enabled tests (integration tests start real processes from
# bin/), then every fuzz target briefly.
test: build vet
	$(GO) test -race -count=1 -timeout 12m $(PKGS)
	$(MAKE) --no-print-directory fuzz FUZZTIME=$${FUZZTIME:-20000x}

test-short:
	$(GO) test -short -count=1 $(PKGS)

FUZZTIME ?= 200000x
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

bench: build
	@scripts/bench.sh

# The long power-loss run (e2e/powerloss_test.go; the suite runs 3 cuts): the agent's buffer
# on a FUSE filesystem that drops unsynced data, cut POWERLOSS_CUTS times under load. Its last
# line: powerloss: <cuts> cuts, <acked> readings acked, <lost> lost
POWERLOSS_CUTS ?= 100
powerloss:
	@mkdir -p $(BIN) && rm -f $(BIN)/powerloss.txt
	@PH_POWERLOSS_CUTS=$(POWERLOSS_CUTS) PH_POWERLOSS_SUMMARY=$(CURDIR)/$(BIN)/powerloss.txt \
	  $(GO) test -count=1 -timeout 60m -run '^TestPowerLoss$$' -v ./e2e/; status=$$?; \
	  if [ -f $(BIN)/powerloss.txt ]; then cat $(BIN)/powerloss.txt; \
	  else echo "powerloss: no figures: the test stopped before it could count (see above)"; fi; \
	  exit $$status

# The long soak (e2e/soak_test.go; the suite runs a sparser week): a station's week compressed
# into minutes, with a fault every few simulated hours, then counted end to end. Its last
# line: soak: <readings> readings, <lost> lost, <duplicated> duplicated
soak:
	@mkdir -p $(BIN) && rm -f $(BIN)/soak.txt
	@PH_SOAK=week PH_SOAK_SUMMARY=$(CURDIR)/$(BIN)/soak.txt \
	  $(GO) test -count=1 -timeout 60m -run '^TestSoak$$' -v ./e2e/; status=$$?; \
	  if [ -f $(BIN)/soak.txt ]; then cat $(BIN)/soak.txt; \
	  else echo "soak: no figures: the test stopped before it could count (see above)"; fi; \
	  exit $$status

cross:
	@mkdir -p $(BIN)/cross
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/cross/ph-agent-linux-arm64 ./agent
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/cross/ph-agent-linux-armv7 ./agent
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/cross/ph-agent-linux-armv6 ./agent

# The ARM builds run under Debian's qemu-user-static: --version, config check, and a broker
# smoke run with kill -9 and restart, for each architecture.
cross-smoke: cross
	PH_CROSS_DIR=$(CURDIR)/$(BIN)/cross PH_CROSS_VERSION='$(VERSION)' \
	  $(GO) test -count=1 -timeout 15m -v -run 'TestCross' ./deploy/cross

# Debian packages for Raspberry Pi OS (arm64, armhf) and amd64: bin/deb/ph-agent_<version>_<arch>.deb.
deb: cross
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/cross/ph-agent-linux-amd64 ./agent
	@rm -rf $(BIN)/deb
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) \
	  $(GO) run ./deploy/deb -version '$(VERSION)' -bin $(BIN)/cross -out $(BIN)/deb

# Checks the packages' contents and metadata, then installs, runs, upgrades and purges the
# amd64 package on this machine (root or sudo): meant for CI's throwaway machine.
deb-check: deb
	scripts/deb-check.sh $(BIN)/deb '$(VERSION)'

# Assembles the balena build context from deploy/balena/context.list, as push.sh does,
# and runs the Dockerfile's build stage from it for every balena architecture.
balena-check:
	PH_BALENA_ALL_ARCHS=1 $(GO) test -count=1 -timeout 10m -v -run 'TestBalena' ./deploy/balena

# Stages ph-cloud's image build context from deploy/cloud/Dockerfile.dockerignore and runs
# the Dockerfile's build stage from it for every platform the image is published for,
# linux/amd64 and linux/arm64 (run under qemu-user-static). `make test` runs the rest of
# ./deploy/cloud: the compose lint, and the README's steps with every query of the Grafana
# dashboard on a throwaway PostgreSQL.
cloud-image-check:
	PH_CLOUD_ALL_ARCHS=1 $(GO) test -count=1 -timeout 10m -v -run 'TestCloudImageBuilds' ./deploy/cloud

demo: build
	@scripts/demo.sh

clean:
	rm -rf $(BIN)
