# hyperrep: make demo runs the main job on the built-in default, make test runs the tests.
# Both fetch what they need first (make setup: registries only, idempotent).

GO       ?= go
BIN      := bin/hyperrep
DEMO_OUT ?= out/demo

.PHONY: all setup build test demo bench fuzz clean generate

all: build

setup:
	@./scripts/setup.sh

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/hyperrep

test: setup
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m ./...

demo: setup build
	@./scripts/demo.sh $(BIN) $(DEMO_OUT)

# Benchmarks report domain units (params/s, peak memory); see README "Benchmarks".
bench: setup build
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 30m ./...
	@./scripts/bench_zoo.sh $(BIN)
	@./scripts/bench_hyperrep.sh

# Each fuzz target for FUZZTIME (make fuzz FUZZTIME=60s).
FUZZTIME ?= 60s
fuzz: setup
	$(GO) test ./onnx -run '^$$' -fuzz FuzzRead -fuzztime $(FUZZTIME)
	$(GO) test ./tokenizer -run '^$$' -fuzz FuzzTokenize -fuzztime $(FUZZTIME)
	$(GO) test ./convert -run '^$$' -fuzz FuzzReadSafetensors -fuzztime $(FUZZTIME)

# Regenerates the ONNX protobuf bindings (needs protoc and protoc-gen-go).
generate:
	$(GO) generate ./onnx/pb

clean:
	rm -rf bin out
