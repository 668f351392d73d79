# Pure Health build, test and demo entry points. See README.md.
GO       ?= go
BIN      := bin
PKGS     := ./...
LDFLAGS  := -s -w -X github.com/purehealth/purehealth/shared/version.Version=$(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: build test test-short fuzz bench cross demo vet fmt clean powerloss soak

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ph-agent ./agent
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ph-cloud ./cloud
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ph-sim ./firmware-sim

vet:
	$(GO) vet $(PKGS)
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

demo: build
	@scripts/demo.sh

clean:
	rm -rf $(BIN)
