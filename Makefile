# The two commands of the README: `make test` runs every test, `make local` runs the whole pipeline on local
# emulators. Both install what they need first (pinned npm packages with `npm ci`, Go modules on demand).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true

# Packages that import the CDK start node through jsii: they run without the race detector (it multiplies their
# memory and time and finds nothing in generated bindings). Everything else runs with -race.
CDK_PACKAGES = $(shell go list . ./stacks/... ./constructs/... 2>/dev/null)
RACE_PACKAGES = $(shell go list ./services/... ./lambda/... ./internal/... 2>/dev/null)

.PHONY: test local figures synth deps vet bench clean browser

## deps: install the pinned Node tools (CDK CLI, emulators) when package-lock.json changed. Go modules are
## fetched by the go command on first use (module graph pruning keeps the services' builds free of the CDK).
deps: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

## vet: static checks on every package.
vet: deps
	go vet ./...

## browser: Debian's Chromium, which the local dashboard's browser test drives; installed when missing and this runs
## as root (as CI does), otherwise a message says how to install it.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the dashboard's browser test ..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	  else \
	    echo "Chromium is missing and the dashboard's browser test needs it: sudo apt-get install chromium" >&2; exit 1; \
	  fi; }

## test: every test of the project (vet, race-detected unit and integration tests on emulators, the dashboard in a
## headless browser, CDK tests).
test: vet browser
	go test -race -timeout 30m $(RACE_PACKAGES)
	$(if $(strip $(CDK_PACKAGES)),go test -timeout 30m $(CDK_PACKAGES),@true)

## local: the pipeline on this machine (emulators, a 5-shard stream, the producer on 127.0.0.1:8080, two fan-out
## consumer workers landing the records in a bucket on the S3 emulator, the autoscaler every minute). Ctrl-C stops
## it all. LOCAL_FLAGS passes flags, e.g. LOCAL_FLAGS="-port 9090 -consumers 3 -read-mode polling -sink log";
## `.local/bin/local -h` lists them.
local: deps
	go build -o .local/bin/local ./services/local
	exec .local/bin/local $(LOCAL_FLAGS)

## figures: the README's local figures on this machine: ingest rate and end-to-end latency with fan-out and with
## polling consumers (20,000 records in batches of 50 from 8 senders, each through a private pipeline; polling once
## more into the S3 sink, verified against its objects), then the fault run (worker SIGKILL, producer SIGTERM
## restart, resharding) with the acknowledged records lost.
figures: deps
	go build -o .local/bin/loadgen ./services/loadgen
	.local/bin/loadgen -local fanout -records 20000 -batch 50 -concurrency 8 2>/dev/null
	.local/bin/loadgen -local polling -records 20000 -batch 50 -concurrency 8 2>/dev/null
	.local/bin/loadgen -local polling -local-sink s3 -records 20000 -batch 50 -concurrency 8 2>/dev/null
	go test -count=1 -v -run TestPipelineLosesNothingUnderFaults ./services/e2e | grep -E 'fault run|autoscaler:|^(---|ok|FAIL)'

## bench: the benchmarks of the pure-Go packages (figures only; nothing is asserted).
bench: deps
	go test -run '^$$' -bench . -benchmem $(RACE_PACKAGES)

## synth: the CloudFormation template in cdk.out (the stack, its Lambda bundle and the staged Docker contexts),
## checked by cdk-nag, with no AWS credentials and no Docker engine.
synth: deps
	node_modules/.bin/cdk synth --quiet

clean:
	rm -rf cdk.out .local
